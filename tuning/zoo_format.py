"""Hyperparameters in the rl-baselines3-zoo YAML format, both ways.

A block looks like::

    CartPole-v1:
      n_envs: 1
      n_timesteps: !!float 12000
      policy: 'MlpPolicy'
      learning_rate: 0.5
      policy_kwargs: "dict(net_arch=[64, 64], activation_fn=nn.Tanh)"

``policy_kwargs`` is a string of Python code in the zoo. It is read here with :mod:`ast`, never ``eval``: only
``dict(...)`` calls, literals and the class names listed in :data:`SAFE_NAMES` are accepted.
"""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch as th
import yaml
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from torch import nn

from tuning.algorithms import get_algorithm_class

if TYPE_CHECKING:
    import gymnasium as gym
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv

# The names a policy_kwargs string may use. The first name of an object is the one written out.
SAFE_NAMES: dict[str, Any] = {
    "nn.Tanh": nn.Tanh,
    "nn.ReLU": nn.ReLU,
    "nn.ELU": nn.ELU,
    "nn.LeakyReLU": nn.LeakyReLU,
    "nn.SiLU": nn.SiLU,
    "nn.GELU": nn.GELU,
    "nn.Sigmoid": nn.Sigmoid,
    "nn.Identity": nn.Identity,
    "th.optim.Adam": th.optim.Adam,
    "th.optim.AdamW": th.optim.AdamW,
    "th.optim.SGD": th.optim.SGD,
    "th.optim.RMSprop": th.optim.RMSprop,
    "torch.optim.Adam": th.optim.Adam,
    "torch.optim.AdamW": th.optim.AdamW,
    "torch.optim.SGD": th.optim.SGD,
    "torch.optim.RMSprop": th.optim.RMSprop,
    "RMSpropTFLike": RMSpropTFLike,
}

# Keys of a zoo block that configure the experiment rather than the algorithm's constructor.
ZOO_EXPERIMENT_KEYS = (
    "n_envs",
    "n_timesteps",
    "policy",
    "normalize",
    "normalize_kwargs",
    "env_wrapper",
    "vec_env_wrapper",
    "frame_stack",
    "callback",
    "env_kwargs",
)


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parent = _dotted_name(node.value)
        return None if parent is None else f"{parent}.{node.attr}"
    return None


def _literal(node: ast.expr, source: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand, source)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List):
        return [_literal(element, source) for element in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(element, source) for element in node.elts)
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        return {_literal(key, source): _literal(value, source) for key, value in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        if any(keyword.arg is None for keyword in node.keywords):
            raise ValueError(f"policy_kwargs {source!r}: '**' is not allowed")
        return {keyword.arg: _literal(keyword.value, source) for keyword in node.keywords}
    name = _dotted_name(node)
    if name is not None and name in SAFE_NAMES:
        return SAFE_NAMES[name]
    raise ValueError(
        f"policy_kwargs {source!r}: {ast.unparse(node)!r} is not allowed; use dict(...), literals and the names "
        f"{', '.join(SAFE_NAMES)}"
    )


def parse_policy_kwargs(source: str | dict[str, Any]) -> dict[str, Any]:
    """Read a zoo ``policy_kwargs`` string such as ``"dict(net_arch=[64, 64], activation_fn=nn.Tanh)"``.

    :param source: the string (a dict passes through)
    :return: the keyword arguments for the policy
    :raises ValueError: when the string holds anything but ``dict(...)``, literals and :data:`SAFE_NAMES`
    """
    if isinstance(source, dict):
        return source
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"policy_kwargs {source!r} is not valid Python: {error.msg}") from error
    value = _literal(tree.body, source)
    if not isinstance(value, dict):
        raise ValueError(f"policy_kwargs {source!r} must be a dict(...)")
    return value


def format_policy_kwargs(policy_kwargs: dict[str, Any]) -> str:
    """Write policy kwargs as a zoo string, the inverse of :func:`parse_policy_kwargs`.

    :param policy_kwargs: the keyword arguments for the policy
    :return: a string such as ``"dict(net_arch=[64, 64], activation_fn=nn.Tanh)"``
    :raises ValueError: when a value is neither a literal nor one of :data:`SAFE_NAMES`
    """

    def render(value: Any) -> str:
        if isinstance(value, dict):
            if all(isinstance(key, str) and key.isidentifier() for key in value):
                return "dict(" + ", ".join(f"{key}={render(item)}" for key, item in value.items()) + ")"
            return "{" + ", ".join(f"{render(key)}: {render(item)}" for key, item in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(render(item) for item in value) + "]"
        if isinstance(value, tuple):
            return "(" + ", ".join(render(item) for item in value) + ("," if len(value) == 1 else "") + ")"
        if value is None or isinstance(value, (bool, int, float, str)):
            return repr(value)
        for name, safe in SAFE_NAMES.items():
            if value is safe:
                return name
        raise ValueError(f"cannot write {value!r} in policy_kwargs; add it to tuning.zoo_format.SAFE_NAMES")

    return render(policy_kwargs)


def to_yaml_ready(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs with ``policy_kwargs`` as a zoo string, so they can be stored as JSON or written as YAML.

    :param hyperparameters: constructor kwargs
    :return: a copy where every value is a literal
    """
    ready = dict(hyperparameters)
    if "policy_kwargs" in ready and not isinstance(ready["policy_kwargs"], str):
        ready["policy_kwargs"] = format_policy_kwargs(ready["policy_kwargs"])
    return ready


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        text = repr(value)
        # YAML 1.1 (PyYAML) reads "1e-05" as a string: a float needs a dot in its mantissa
        mantissa, _, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        return mantissa + (f"e{exponent}" if exponent else "")
    dumped = yaml.safe_dump(value, default_flow_style=True, width=math.inf)  # type: ignore[call-overload]
    return dumped.removesuffix("\n").removesuffix("\n...").strip()


def format_zoo_block(
    env_id: str,
    hyperparameters: dict[str, Any],
    n_timesteps: int,
    n_envs: int = 1,
    comments: list[str] | None = None,
) -> str:
    """One env's block of a zoo hyperparameter file.

    :param env_id: the Gymnasium id, the block's key
    :param hyperparameters: constructor kwargs, ``policy`` included or defaulting to ``"MlpPolicy"``
    :param n_timesteps: training budget written as ``n_timesteps``
    :param n_envs: number of environments written as ``n_envs``
    :param comments: lines written as YAML comments above the block
    :return: the YAML text, ending with a newline
    """
    ready = to_yaml_ready(hyperparameters)
    policy = ready.pop("policy", "MlpPolicy")
    policy_kwargs = ready.pop("policy_kwargs", None)
    lines = [f"# {comment}" for comment in comments or []]
    lines.append(f"{env_id}:")
    lines.append(f"  n_envs: {n_envs}")
    lines.append(f"  n_timesteps: !!float {n_timesteps:g}")
    lines.append(f"  policy: '{policy}'")
    lines.extend(f"  {name}: {_yaml_scalar(ready[name])}" for name in sorted(ready))
    if policy_kwargs is not None:
        lines.append(f"  policy_kwargs: {json.dumps(policy_kwargs)}")
    return "\n".join(lines) + "\n"


@dataclass
class ZooHyperparameters:
    """A zoo block split into what the experiment needs and what the constructor takes.

    :param env_id: the block's key
    :param policy: the policy name or class
    :param n_timesteps: the training budget, or None when the block has none
    :param n_envs: the number of environments
    :param kwargs: constructor kwargs, ``policy_kwargs`` parsed
    :param experiment: the other zoo keys (``normalize``, ``env_wrapper``, ...), which the caller must apply itself
    """

    env_id: str
    policy: str
    n_timesteps: int | None
    n_envs: int
    kwargs: dict[str, Any]
    experiment: dict[str, Any] = field(default_factory=dict)


def parse_zoo_yaml(text: str, env_id: str | None = None) -> ZooHyperparameters:
    """Read one block of zoo YAML text into constructor kwargs.

    :param text: the YAML text
    :param env_id: the block to read; may be omitted when the text holds a single block
    :return: the block, ready to build a model
    :raises ValueError: when the block is missing or its policy_kwargs is not allowed
    """
    blocks = yaml.safe_load(text)
    if not isinstance(blocks, dict) or not blocks:
        raise ValueError("expected a YAML mapping from env id to hyperparameters")
    if env_id is None:
        if len(blocks) != 1:
            raise ValueError(f"several blocks ({', '.join(blocks)}): say which env_id to read")
        env_id = next(iter(blocks))
    if env_id not in blocks:
        raise ValueError(f"no block for {env_id!r}; the file has {', '.join(blocks)}")
    block = dict(blocks[env_id])
    kwargs = {name: value for name, value in block.items() if name not in ZOO_EXPERIMENT_KEYS}
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = parse_policy_kwargs(kwargs["policy_kwargs"])
    experiment = {name: block[name] for name in ZOO_EXPERIMENT_KEYS if name in block}
    n_timesteps = experiment.pop("n_timesteps", None)
    return ZooHyperparameters(
        env_id=env_id,
        policy=experiment.pop("policy", "MlpPolicy"),
        n_timesteps=None if n_timesteps is None else int(n_timesteps),
        n_envs=int(experiment.pop("n_envs", 1)),
        kwargs=kwargs,
        experiment=experiment,
    )


def load_hyperparameters(path: str | Path, env_id: str | None = None) -> ZooHyperparameters:
    """Read one block of a zoo YAML file into constructor kwargs.

    :param path: the YAML file, e.g. ``tuning_output/<study>/best_hyperparameters.yml``
    :param env_id: the block to read; may be omitted when the file holds a single block
    :return: the block, ready to build a model
    """
    return parse_zoo_yaml(Path(path).read_text(), env_id)


def make_model(
    algo: str,
    hyperparameters: ZooHyperparameters | str | Path,
    env: gym.Env | VecEnv | str | None = None,
    **overrides: Any,
) -> BaseAlgorithm:
    """Build a model from a zoo block, e.g. the ``best_hyperparameters.yml`` the tuner writes.

    :param algo: command-line name of the algorithm (``one_step_ac``, ``a2c``, ``ppo``)
    :param hyperparameters: a loaded block, or the path of a file with one block
    :param env: the environment; defaults to the block's env id
    :param overrides: constructor kwargs that replace the block's (``seed``, ``verbose``, ``device``...)
    :return: the untrained model
    """
    if not isinstance(hyperparameters, ZooHyperparameters):
        hyperparameters = load_hyperparameters(hyperparameters)
    algorithm_class = get_algorithm_class(algo)
    kwargs = {**hyperparameters.kwargs, **overrides}
    return algorithm_class(hyperparameters.policy, env if env is not None else hyperparameters.env_id, **kwargs)
