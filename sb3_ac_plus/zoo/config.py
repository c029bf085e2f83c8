"""rl-baselines3-zoo hyperparameter files: find one env's block and check every key of it.

A block is what a zoo user writes::

    CartPole-v1:
      n_envs: 8
      n_timesteps: !!float 1e5
      policy: 'MlpPolicy'
      normalize: "dict(norm_obs=True, norm_reward=False)"
      learning_rate: lin_0.001
      policy_kwargs: "dict(net_arch=[64, 64], activation_fn=nn.Tanh)"

:func:`parse_config` splits it into the experiment's settings (``n_envs``, ``n_timesteps``, ``normalize``,
``frame_stack``, ``env_kwargs``) and the constructor's keyword arguments. Nothing in a file is evaluated: YAML is read
with ``yaml.safe_load`` and Python-looking strings with :func:`~sb3_ac_plus.zoo.policy_kwargs.parse_dict_literal`.
Every error is a ``ValueError`` that starts with the env id and the key.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ac_plus.zoo.algorithms import DEFAULTS_ONLY, constructor_parameters, get_algorithm_class
from sb3_ac_plus.zoo.policy_kwargs import parse_dict_literal, parse_policy_kwargs


def _default_config_dir() -> Path:
    """The repository's ``zoo_configs/``: inside the package where a wheel installed it (``pip install .`` copies it to
    ``sb3_ac_plus/zoo_configs/``, see setup.py), else beside the package folder (a source checkout, an editable install)."""
    package = Path(__file__).resolve().parent.parent
    shipped, repository = package / "zoo_configs", package.parent / "zoo_configs"
    return shipped if shipped.is_dir() or not repository.is_dir() else repository


DEFAULT_CONFIG_DIR = _default_config_dir()

EXPERIMENT_KEYS = ("n_envs", "n_timesteps", "policy", "normalize", "frame_stack", "env_kwargs")
# rl-zoo keys that name Python objects to import or evaluate: refused rather than run.
REFUSED_KEYS = {
    "env_wrapper": "names wrapper classes to import",
    "vec_env_wrapper": "names wrapper classes to import",
    "callback": "names callback classes to import",
    "monitor_kwargs": "is evaluated as Python by rl-zoo",
}
# Constructor arguments that the caller gives, not the file.
RESERVED_KEYS = {"seed": "pass seed= to make_model_and_env", "env": "the env is built from the block's env id"}
# Keys that take a float or rl-zoo's "lin_<float>" (linear decay to 0 over training), besides any "*_rate".
SCHEDULE_KEYS = ("clip_range", "clip_range_vf")
VEC_NORMALIZE_KEYS = set(inspect.signature(VecNormalize.__init__).parameters) - {"self", "venv"}


@dataclass
class ZooConfig:
    """One env's block, checked and split.

    :param algo: the algorithm's name (see :func:`~sb3_ac_plus.zoo.algorithms.get_algorithm_class`)
    :param env_id: the Gymnasium id
    :param policy: the policy alias (``"MlpPolicy"``...) or class
    :param n_envs: the number of environments of the VecEnv
    :param n_timesteps: the training budget
    :param normalize_kwargs: VecNormalize's keyword arguments, or None for no VecNormalize
    :param frame_stack: the number of stacked frames (VecFrameStack), or None
    :param env_kwargs: keyword arguments for ``gymnasium.make``
    :param kwargs: the algorithm's constructor arguments, schedules and ``policy_kwargs`` parsed
    """

    algo: str
    env_id: str
    policy: str | type
    n_envs: int
    n_timesteps: int
    normalize_kwargs: dict[str, Any] | None = None
    frame_stack: int | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)


def _error(env_id: str, key: str, message: str) -> ValueError:
    return ValueError(f"{env_id}: {key}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(env_id: str, key: str, value: Any) -> int:
    if not _is_number(value) or not math.isfinite(value) or value != int(value) or value < 1:
        raise _error(env_id, key, f"expected an integer >= 1, got {value!r}")
    return int(value)


def parse_schedule(env_id: str, key: str, value: Any) -> Any:
    """A float, or rl-zoo's ``"lin_<float>"``: a schedule decaying linearly from that value to 0 over training.

    :param env_id: for error messages
    :param key: for error messages
    :param value: the value from the file (a callable, given as an override, passes through)
    :return: a float or an SB3 schedule
    :raises ValueError: for anything else, e.g. ``"lin_abc"`` or a string such as ``"1e-3"`` that YAML left unread
    """
    if callable(value):
        return value
    if _is_number(value) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            start = float(value.removeprefix("lin_"))
        except ValueError:
            start = math.nan
        if math.isfinite(start) and start >= 0:
            return LinearSchedule(start=start, end=0.0, end_fraction=1.0)
    raise _error(
        env_id, key, f"expected a number or 'lin_<number>' (e.g. lin_7e-4), got {value!r}; write floats as !!float 1e-3"
    )


def _normalize_kwargs(config: ZooConfig, value: Any, gamma: Any) -> dict[str, Any] | None:
    if value is None or value is False:
        return None
    if config.algo == "one_step_ac":
        raise _error(
            config.env_id,
            "normalize",
            "OneStepAC normalises observations and rewards itself (normalize_observations, normalize_rewards); "
            "remove normalize or set it to false",
        )
    if value is True:
        kwargs: dict[str, Any] = {}
    else:
        try:
            kwargs = dict(parse_dict_literal(value, "normalize"))
        except ValueError as error:
            raise _error(config.env_id, "normalize", f'expected true, false or "dict(...)": {error}') from None
        unknown = sorted(set(kwargs) - VEC_NORMALIZE_KEYS)
        if unknown:
            raise _error(
                config.env_id, "normalize", f"unknown VecNormalize argument(s) {unknown}; known {sorted(VEC_NORMALIZE_KEYS)}"
            )
    if gamma is not None and not callable(gamma):
        # as rl-zoo does: VecNormalize scales rewards by a return discounted with the algorithm's gamma
        kwargs["gamma"] = gamma
    return kwargs


def _experiment_settings(config: ZooConfig, block: dict[str, Any]) -> None:
    env_id = config.env_id
    if "n_envs" in block:
        config.n_envs = _positive_int(env_id, "n_envs", block["n_envs"])
    if "frame_stack" in block and block["frame_stack"] is not None:
        config.frame_stack = _positive_int(env_id, "frame_stack", block["frame_stack"])
    if "env_kwargs" in block:
        try:
            config.env_kwargs = dict(parse_dict_literal(block["env_kwargs"], "env_kwargs"))
        except ValueError as error:
            raise _error(env_id, "env_kwargs", str(error)) from None
    config.normalize_kwargs = _normalize_kwargs(config, block.get("normalize"), block.get("gamma"))
    policy = block.get("policy", "MlpPolicy")
    aliases = getattr(get_algorithm_class(config.algo), "policy_aliases", {})
    if isinstance(policy, str) and policy not in aliases:
        raise _error(
            env_id, "policy", f"unknown policy {policy!r}; use one of {sorted(aliases)} (class paths are not imported)"
        )
    if not isinstance(policy, (str, type)):
        raise _error(env_id, "policy", f"expected a policy name, got {policy!r}")
    config.policy = policy


def _constructor_kwargs(config: ZooConfig, block: dict[str, Any]) -> dict[str, Any]:
    env_id = config.env_id
    algorithm_class = get_algorithm_class(config.algo)
    accepted = constructor_parameters(algorithm_class)
    kwargs: dict[str, Any] = {}
    for key, value in block.items():
        if key in EXPERIMENT_KEYS:
            continue
        if key in REFUSED_KEYS:
            raise _error(env_id, key, f"not supported: this rl-zoo key {REFUSED_KEYS[key]}; train through rl_zoo3 to use it")
        if key in RESERVED_KEYS:
            raise _error(env_id, key, f"not allowed in a config: {RESERVED_KEYS[key]}")
        if key not in accepted:
            raise _error(env_id, key, f"unknown key: neither an rl-zoo key nor a parameter of {algorithm_class.__name__}")
        if key == "policy_kwargs":
            try:
                value = parse_policy_kwargs(value)
            except ValueError as error:
                raise _error(env_id, key, str(error)) from None
        elif key.endswith("_rate") or key in SCHEDULE_KEYS:
            value = None if value is None and key == "critic_learning_rate" else parse_schedule(env_id, key, value)
        kwargs[key] = value
    return kwargs


def parse_config(algo: str, env_id: str, block: dict[str, Any]) -> ZooConfig:
    """Check one env's block and split it into experiment settings and constructor arguments.

    :param algo: the algorithm's name (see :func:`~sb3_ac_plus.zoo.algorithms.get_algorithm_class`)
    :param env_id: the Gymnasium id (the block's key)
    :param block: the block, as read from YAML (overrides merged in)
    :return: the checked config
    :raises ValueError: naming the env id and the key, for an unknown key or a malformed value
    """
    get_algorithm_class(algo)
    if not isinstance(block, dict):
        raise ValueError(f"{env_id}: expected a mapping of hyperparameters, got {block!r}")
    if "n_timesteps" not in block:
        raise _error(env_id, "n_timesteps", "missing: every block needs a training budget")
    config = ZooConfig(
        algo=algo,
        env_id=env_id,
        policy="MlpPolicy",
        n_envs=1,
        n_timesteps=_positive_int(env_id, "n_timesteps", block["n_timesteps"]),
    )
    _experiment_settings(config, block)
    config.kwargs = _constructor_kwargs(config, block)
    return config


def config_path(algo: str, config_dir: str | Path | None = None) -> Path:
    """The YAML file of an algorithm, ``<config_dir>/<algo>.yml``.

    :param algo: the algorithm's name
    :param config_dir: the folder; defaults to the package's configs (the repository's ``zoo_configs/``)
    :return: the path
    :raises ValueError: when the algorithm is unknown or its file is missing (for ``DEFAULTS_ONLY``, saying so)
    """
    get_algorithm_class(algo)
    folder = DEFAULT_CONFIG_DIR if config_dir is None else Path(config_dir)
    path = folder / f"{algo}.yml"
    if not path.is_file():
        found = sorted(p.stem for p in folder.glob("*.yml")) if folder.is_dir() else []
        shipped = f"; {algo} ships without one: start from its defaults (block={{}}, {algo}@defaults in a --variant)"
        listed = ", ".join(found) or "no .yml file"
        raise ValueError(f"no config file {path}; {folder} has: {listed}{shipped if algo in DEFAULTS_ONLY else ''}")
    return path


def _load_yaml(path: Path) -> Any:
    """The file's YAML, read with ``yaml.safe_load``; a YAML error becomes a ValueError naming the file and the line."""
    try:
        with open(path) as file:
            return yaml.safe_load(file)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        if "python/" in problem:
            problem += " (Python tags such as !!python/object are refused: configs are read without running code)"
        raise ValueError(f"{where}: not valid YAML: {problem}") from None


def read_block(path: str | Path, env_id: str | None = None) -> tuple[str, dict[str, Any]]:
    """The raw block of ``env_id`` in any zoo YAML file, as written (e.g. the tuner's ``best_hyperparameters.yml``).

    :param path: the YAML file
    :param env_id: the block to read; may be omitted when the file holds a single block
    :return: the env id and its block (a new dict)
    :raises ValueError: when the file is not valid YAML (file and line named) or not a mapping of blocks, or the block is
        missing (the known ones listed)
    """
    path = Path(path)
    blocks = _load_yaml(path)
    if not isinstance(blocks, dict) or not blocks:
        raise ValueError(f"{path}: expected a mapping from env id to hyperparameters")
    if env_id is None:
        if len(blocks) != 1:
            raise ValueError(f"{path} has several blocks ({', '.join(map(str, blocks))}): say which env_id to read")
        env_id = str(next(iter(blocks)))
    if env_id not in blocks:
        raise ValueError(f"no block for {env_id!r} in {path}; it has: {', '.join(map(str, blocks))}")
    block = blocks[env_id]
    if not isinstance(block, dict):
        raise ValueError(f"{env_id}: expected a mapping of hyperparameters in {path}, got {block!r}")
    return env_id, dict(block)


def load_hyperparameters(algo: str, env_id: str, config_dir: str | Path | None = None) -> dict[str, Any]:
    """The raw block of ``env_id`` in ``<config_dir>/<algo>.yml``, as written in the file.

    :param algo: the algorithm's name, a key of :data:`~sb3_ac_plus.zoo.algorithms.ALGOS`
    :param env_id: the Gymnasium id
    :param config_dir: the folder of the YAML files; defaults to the package's configs (the repository's ``zoo_configs/``)
    :return: the block (a new dict)
    :raises ValueError: for an unknown algorithm or env id, listing the known ones
    """
    return read_block(config_path(algo, config_dir), env_id)[1]
