"""Tests of sb3_ac_plus.zoo: the zoo config files, the safe loader, and training through rl_zoo3."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch as th
import yaml
from stable_baselines3 import SAC
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize

from sb3_ac_plus import OneStepAC
from sb3_ac_plus.zoo import ALGOS, load_hyperparameters, make_model_and_env, parse_config, parse_policy_kwargs
from sb3_ac_plus.zoo.algorithms import get_algorithm_class
from sb3_ac_plus.zoo.config import DEFAULT_CONFIG_DIR, config_path

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "zoo_configs"
ENV_IDS = ["CartPole-v1", "Acrobot-v1", "LunarLander-v3", "Pendulum-v1", "MountainCarContinuous-v0"]
try:
    import Box2D  # noqa: F401

    HAS_BOX2D = True
except ImportError:
    HAS_BOX2D = False

# Strings that would run code if a loader evaluated them; each writes a marker file.
MALICIOUS = [
    "__import__('pathlib').Path({marker!r}).touch()",
    "dict(net_arch=__import__('pathlib').Path({marker!r}).touch())",
    "dict(activation_fn=exec(\"open({marker!r}, 'w')\"))",
    "dict(net_arch=[64], x=[c for c in ().__class__.__base__.__subclasses__()])",
    "dict(net_arch=(lambda: open({marker!r}, 'w'))())",
    "dict(**{{'a': open({marker!r}, 'w')}})",
    "nn.Tanh.__init__.__globals__['os'].system('touch {marker}')",
]


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    th.set_num_threads(1)


def write_config(tmp_path: Path, algo: str, text: str) -> Path:
    (tmp_path / f"{algo}.yml").write_text(text)
    return tmp_path


def test_default_config_dir_is_the_repository_folder() -> None:
    """From a source checkout or an editable install, the configs are read from the repository's zoo_configs/."""
    assert DEFAULT_CONFIG_DIR == CONFIG_DIR
    for algo in ALGOS:
        assert config_path(algo).parent == DEFAULT_CONFIG_DIR
        assert load_hyperparameters(algo, "CartPole-v1")["n_timesteps"] >= 1
    assert load_hyperparameters("ppo", "CartPole-v1") == load_hyperparameters("ppo", "CartPole-v1", CONFIG_DIR)
    assert set(ALGOS) == {"one_step_ac", "a2c", "ppo", "trpo"} and ALGOS["one_step_ac"] is OneStepAC


@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_config_loads(algo: str, env_id: str) -> None:
    block = load_hyperparameters(algo, env_id)
    config = parse_config(algo, env_id, block)
    assert config.n_timesteps >= 1 and config.n_envs >= 1
    if algo == "one_step_ac":
        assert config.normalize_kwargs is None
    if env_id.startswith("LunarLander") and not HAS_BOX2D:
        pytest.skip("Box2D is not installed: the config parses, the env cannot be built")
    _model, env, n_timesteps = make_model_and_env(algo, env_id, device="cpu")
    assert n_timesteps == config.n_timesteps
    assert env.num_envs == config.n_envs
    assert isinstance(env, VecNormalize) == (config.normalize_kwargs is not None)
    env.close()


def test_mujoco_blocks_are_the_zoos_v4_blocks() -> None:
    """ppo.yml's HalfCheetah-v5, Hopper-v5 and Walker2d-v5 are rl-baselines3-zoo's -v4 blocks, only renamed."""
    rl_zoo3 = pytest.importorskip("rl_zoo3")
    with open(Path(rl_zoo3.__file__).parent / "hyperparams" / "ppo.yml") as file:
        zoo = yaml.safe_load(file)
    for name in ("HalfCheetah", "Hopper", "Walker2d"):
        block = load_hyperparameters("ppo", f"{name}-v5")
        assert block == zoo[f"{name}-v4"]
        config = parse_config("ppo", f"{name}-v5", block)
        assert config.normalize_kwargs == {"gamma": block["gamma"]} and config.n_timesteps == 1_000_000
    policy_kwargs = parse_config("ppo", "Hopper-v5", load_hyperparameters("ppo", "Hopper-v5")).kwargs["policy_kwargs"]
    assert policy_kwargs["activation_fn"] is th.nn.ReLU and policy_kwargs["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}


def test_sac_is_known_from_its_defaults_only() -> None:
    """SAC has no config file: not a choice of compare, run or the tuner, but ``block={}`` builds it."""
    assert "sac" not in ALGOS and get_algorithm_class("sac") is SAC
    with pytest.raises(ValueError, match=r"sac\.yml.*sac ships without one: start from its defaults \(block=\{\}, sac@"):
        load_hyperparameters("sac", "Pendulum-v1")
    model, env, n_timesteps = make_model_and_env("sac", "Pendulum-v1", block={}, n_timesteps=100, buffer_size=100)
    assert isinstance(model, SAC) and n_timesteps == 100 and model.buffer_size == 100
    env.close()


def test_zoo_values_are_read_as_the_zoo_reads_them() -> None:
    model, env, n_timesteps = make_model_and_env("ppo", "CartPole-v1", device="cpu")
    assert n_timesteps == 100_000 and env.num_envs == 8
    assert isinstance(model.learning_rate, LinearSchedule)
    assert model.learning_rate(1.0) == pytest.approx(1e-3) and model.learning_rate(0.0) == 0.0
    assert model.clip_range(0.5) == pytest.approx(0.1)
    env.close()
    model, env, _ = make_model_and_env("a2c", "Pendulum-v1", device="cpu", n_envs=1)
    assert isinstance(env, VecNormalize) and env.gamma == 0.9  # rl-zoo gives VecNormalize the algorithm's gamma
    assert model.policy_kwargs["log_std_init"] == -2 and model.policy_kwargs["ortho_init"] is False
    env.close()


@pytest.mark.parametrize(
    ("algo", "env_id"), [("one_step_ac", "CartPole-v1"), ("one_step_ac", "Pendulum-v1"), ("a2c", "Pendulum-v1")]
)
def test_models_train(algo: str, env_id: str) -> None:
    model, env, n_timesteps = make_model_and_env(algo, env_id, seed=1, n_timesteps=200, device="cpu", n_envs=1)
    assert n_timesteps == 200
    model.learn(n_timesteps)
    assert model.num_timesteps >= 200
    env.close()


def test_overrides_win_and_are_checked() -> None:
    model, env, _ = make_model_and_env("one_step_ac", "CartPole-v1", learning_rate="lin_0.5", gamma=0.9, device="cpu")
    assert isinstance(model.learning_rate, LinearSchedule) and model.gamma == 0.9
    env.close()
    with pytest.raises(ValueError, match="CartPole-v1: gama: unknown key"):
        make_model_and_env("one_step_ac", "CartPole-v1", gama=0.9)


def test_frame_stack_and_env_kwargs(tmp_path: Path) -> None:
    config_dir = write_config(
        tmp_path,
        "ppo",
        'Pendulum-v1:\n  n_timesteps: 1000\n  frame_stack: 3\n  env_kwargs: "dict(g=9.0)"\n'
        '  normalize: "dict(norm_obs=True, norm_reward=False)"\n',
    )
    _model, env, _ = make_model_and_env("ppo", "Pendulum-v1", config_dir=config_dir, device="cpu")
    assert isinstance(env, VecNormalize) and not env.norm_reward
    assert isinstance(env.venv, VecFrameStack) and env.observation_space.shape == (9,)
    assert env.get_attr("g")[0] == 9.0
    env.close()


BAD_BLOCKS: list[tuple[str, str, str]] = [
    ("one_step_ac", "n_timesteps: 1000\n  learning_rate: lin_abc", "learning_rate"),
    ("one_step_ac", "n_timesteps: 1000\n  learning_rate: 1e-3", "learning_rate"),  # YAML 1.1 reads it as a string
    ("one_step_ac", "n_timesteps: 1000\n  critic_learning_rate: cos_0.1", "critic_learning_rate"),
    ("ppo", "n_timesteps: 1000\n  clip_range: lin_-0.2", "clip_range"),
    ("one_step_ac", "n_timesteps: 1000\n  gama: 0.9", "gama"),
    ("one_step_ac", "n_timesteps: 1000\n  policy_kwargs: '[64, 64]'", "policy_kwargs"),
    ("one_step_ac", "n_timesteps: 1000\n  policy_kwargs: 42", "policy_kwargs"),
    ("one_step_ac", "n_timesteps: 1000\n  policy_kwargs: 'dict(net_arch=[64]'", "policy_kwargs"),
    ("one_step_ac", "n_timesteps: 1000\n  policy_kwargs: 'dict(activation_fn=os.system)'", "policy_kwargs"),
    ("one_step_ac", "n_timesteps: 1000\n  normalize: true", "normalize"),
    ("ppo", "n_timesteps: 1000\n  normalize: 'dict(norm_obs=True, scale=2)'", "normalize"),
    ("ppo", "n_timesteps: 1000\n  normalize: 'os.system(1)'", "normalize"),
    ("ppo", "n_timesteps: 1000\n  env_wrapper: gymnasium.wrappers.TimeLimit", "env_wrapper"),
    ("ppo", "n_timesteps: 1000\n  callback: rl_zoo3.callbacks.ParallelTrainCallback", "callback"),
    ("ppo", "n_timesteps: 1000\n  policy: 'my_module.MyPolicy'", "policy"),
    ("ppo", "n_timesteps: 1000\n  n_envs: 0", "n_envs"),
    ("ppo", "n_timesteps: 1000\n  n_envs: 2.5", "n_envs"),
    ("ppo", "n_timesteps: 1000\n  frame_stack: -1", "frame_stack"),
    ("ppo", "n_timesteps: 1000\n  seed: 3", "seed"),
    ("ppo", "n_timesteps: lots", "n_timesteps"),
    ("ppo", "n_envs: 2", "n_timesteps"),
    ("ppo", "n_timesteps: 1000\n  _init_setup_model: false", "_init_setup_model"),
]


@pytest.mark.parametrize(("algo", "body", "key"), BAD_BLOCKS)
def test_bad_keys_and_values_name_env_and_key(tmp_path: Path, algo: str, body: str, key: str) -> None:
    config_dir = write_config(tmp_path, algo, f"Pendulum-v1:\n  {body}\n")
    with pytest.raises(ValueError, match=f"^Pendulum-v1: {key}: "):
        make_model_and_env(algo, "Pendulum-v1", config_dir=config_dir, device="cpu")


def test_constructor_errors_name_the_env(tmp_path: Path) -> None:
    config_dir = write_config(tmp_path, "one_step_ac", "CartPole-v1:\n  n_timesteps: 1000\n  trace_lambda: 1.5\n")
    with pytest.raises(ValueError, match=r"^CartPole-v1: .*trace_lambda"):
        make_model_and_env("one_step_ac", "CartPole-v1", config_dir=config_dir, device="cpu")


def test_unknown_algo_env_or_folder_lists_what_exists(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'dqn'; known: one_step_ac, a2c, ppo"):
        load_hyperparameters("dqn", "CartPole-v1")
    with pytest.raises(ValueError, match=r"no block for 'CartPole-v0'.*CartPole-v1, Acrobot-v1"):
        load_hyperparameters("ppo", "CartPole-v0")
    with pytest.raises(ValueError, match=r"no config file .*one_step_ac\.yml"):
        load_hyperparameters("one_step_ac", "CartPole-v1", tmp_path)
    write_config(tmp_path, "ppo", "CartPole-v1: 3\n")
    with pytest.raises(ValueError, match="CartPole-v1: expected a mapping"):
        load_hyperparameters("ppo", "CartPole-v1", tmp_path)


@pytest.mark.parametrize("template", MALICIOUS)
def test_malicious_strings_never_run(tmp_path: Path, template: str) -> None:
    marker = tmp_path / "pwned"
    code = template.format(marker=str(marker))
    with pytest.raises(ValueError, match="policy_kwargs"):
        parse_policy_kwargs(code)
    for key in ("policy_kwargs", "normalize", "env_kwargs"):
        block: dict[str, Any] = {"n_timesteps": 1000, key: code}
        with pytest.raises(ValueError, match=f"^CartPole-v1: {key}: "):
            parse_config("ppo", "CartPole-v1", block)
    # and through a YAML file, with YAML's own Python tags, which yaml.safe_load refuses
    config_dir = write_config(tmp_path, "ppo", f"CartPole-v1:\n  n_timesteps: 1000\n  policy_kwargs: {json.dumps(code)}\n")
    with pytest.raises(ValueError, match="policy_kwargs"):
        make_model_and_env("ppo", "CartPole-v1", config_dir=config_dir, device="cpu")
    write_config(tmp_path, "ppo", f"CartPole-v1: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError, match="python/object/apply"):
        load_hyperparameters("ppo", "CartPole-v1", tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("CartPole-v1:\n  n_timesteps: 1000\n  policy_kwargs: !!python/object/apply:os.system ['true']\n", 3, "refused"),
        ("CartPole-v1:\n  n_timesteps: 1000\n   gamma: 0.9\n", 3, "mapping values are not allowed"),
        ("CartPole-v1:\n  n_timesteps: [1000\n", 3, "expected ',' or ']'"),
    ],
)
def test_yaml_errors_name_the_file_and_the_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = write_config(tmp_path, "ppo", text) / "ppo.yml"
    with pytest.raises(ValueError) as error:
        load_hyperparameters("ppo", "CartPole-v1", tmp_path)
    message = str(error.value)
    assert message.startswith(f"{path}, line {line}: not valid YAML: ") and problem in message, message
    assert "<unicode string>" not in message


def test_tuning_uses_the_package_parser_and_reader() -> None:
    from sb3_ac_plus import zoo
    from sb3_ac_plus.tuning import zoo_format

    assert zoo_format.parse_policy_kwargs is parse_policy_kwargs
    assert zoo_format.read_block is zoo.read_block


def test_read_block_of_any_file(tmp_path: Path) -> None:
    from sb3_ac_plus.zoo import read_block

    path = tmp_path / "best.yml"
    path.write_text("Pendulum-v1:\n  n_timesteps: 100\n  gamma: 0.9\n")
    assert read_block(path) == ("Pendulum-v1", {"n_timesteps": 100, "gamma": 0.9})
    assert read_block(path, "Pendulum-v1")[1]["gamma"] == 0.9
    with pytest.raises(ValueError, match=r"no block for 'CartPole-v1'.*Pendulum-v1"):
        read_block(path, "CartPole-v1")
    path.write_text("A-v0:\n  n_timesteps: 1\nB-v0:\n  n_timesteps: 1\n")
    with pytest.raises(ValueError, match=r"several blocks.*say which env_id"):
        read_block(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        read_block(path)


def test_rl_zoo3_trains_one_step_ac_with_the_package_config_then_replays_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("rl_zoo3")
    from rl_zoo3 import hyperparams_opt, utils

    from sb3_ac_plus.zoo.rl_zoo3_plugin import main, register

    register()
    assert utils.ALGOS["one_step_ac"] is OneStepAC and "one_step_ac" in hyperparams_opt.HYPERPARAMS_SAMPLER
    # no --conf-file: the package's one_step_ac.yml (rl_zoo3 has none), as the module's docstring shows
    common = ["--algo", "one_step_ac", "--env", "CartPole-v1", "-f", str(tmp_path / "logs"), "--seed", "0", "--device", "cpu"]
    main([*common, "-n", "300", "--eval-freq", "-1", "--verbose", "0"])
    saved = tmp_path / "logs" / "one_step_ac" / "CartPole-v1_1" / "CartPole-v1.zip"
    model = OneStepAC.load(saved, device="cpu")
    assert model.n_envs == load_hyperparameters("one_step_ac", "CartPole-v1")["n_envs"]
    assert model.num_timesteps == 300 + (-300 % model.n_envs)  # whole VecEnv steps (the block has 8 envs)
    capsys.readouterr()

    main(["enjoy", *common, "-n", "30", "--no-render", "--deterministic"])  # rl_zoo3's enjoy loads the run
    printed = capsys.readouterr().out
    assert f"Loading {saved}" in printed and "Episode Reward" in printed


def test_the_default_config_is_added_for_one_step_ac_only() -> None:
    from sb3_ac_plus.zoo.rl_zoo3_plugin import with_default_config

    assert with_default_config(["--algo", "one_step_ac"]) == [
        "--algo",
        "one_step_ac",
        "--conf-file",
        str(CONFIG_DIR / "one_step_ac.yml"),
    ]
    for given in (
        ["--algo", "one_step_ac", "-conf", "my.yml"],
        ["--algo=one_step_ac", "--conf-file=my.yml"],
        ["--algo", "ppo"],
    ):
        assert with_default_config(given) == given


def test_rl_zoo3_tunes_one_step_ac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rl_zoo3")
    from sb3_ac_plus.zoo.rl_zoo3_plugin import main

    args = ["--algo", "one_step_ac", "--env", "CartPole-v1", "-n", "200", "--conf-file", str(CONFIG_DIR / "one_step_ac.yml")]
    args += ["-f", str(tmp_path / "logs"), "--seed", "0", "--device", "cpu", "--verbose", "0", "-optimize"]
    args += ["--n-trials", "2", "--n-jobs", "1", "--sampler", "random", "--pruner", "none", "--n-evaluations", "1"]
    args += ["--eval-episodes", "1", "--no-optim-plots"]
    monkeypatch.setattr(sys, "argv", ["train", *args])
    main()
    assert list((tmp_path / "logs" / "one_step_ac").glob("report_CartPole-v1_2-trials-*.csv"))


def test_rl_zoo3_sampler_is_the_tuning_search_space() -> None:
    from sb3_ac_plus.zoo.search_spaces import sample_hyperparameters, searched_names
    from sb3_ac_plus.zoo.rl_zoo3_plugin import _convert_one_step_ac_params, sample_one_step_ac_params

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    asked = set()
    for index in range(60):
        trial = study.ask()
        n_actions = index % 2  # rl_zoo3 passes 0 for Discrete actions, the action dimension for Box
        ours = sample_one_step_ac_params(trial, n_actions, 1, {})
        asked |= set(trial.params)
        tuner = sample_hyperparameters(optuna.trial.FixedTrial(trial.params), "one_step_ac", continuous_actions=n_actions > 0)
        assert ours == {key: value for key, value in tuner.items() if key != "n_envs"}  # rl_zoo3 sets n_envs itself
        assert _convert_one_step_ac_params(trial.params) == ours  # a stored trial converts back to the same kwargs
    assert asked == set(searched_names("one_step_ac"))  # both directions: every searched name is asked, and no other


def test_each_config_file_is_kept_once() -> None:
    """One copy of each YAML file, in zoo_configs/ (the wheel's sb3_ac_plus/zoo_configs/ is built from it)."""
    import subprocess

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    names = [f"{algo}.yml" for algo in sorted(ALGOS)]
    assert sorted(path for path in tracked if Path(path).name in names) == [f"zoo_configs/{name}" for name in names]


@pytest.mark.slow
def test_a_non_editable_install_finds_the_configs(tmp_path: Path) -> None:
    """pip install . (no -e) ships zoo_configs/ inside the package, where the installed package finds it."""
    import os
    import shutil
    import subprocess

    source = tmp_path / "source"  # what the build needs, copied so that it leaves no build/ in the repository
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("sb3_ac_plus", "zoo_configs"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target", str(target), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(source)  # the installed package cannot fall back on the source tree
    assert sorted(path.name for path in (target / "sb3_ac_plus" / "zoo_configs").glob("*.yml")) == sorted(
        path.name for path in CONFIG_DIR.glob("*.yml")
    )
    assert list(target.glob("sb3_ac_plus-*.dist-info/licenses/LICENSE"))
    script = (
        "import json, sb3_ac_plus\n"
        "from sb3_ac_plus.zoo import ALGOS, DEFAULT_CONFIG_DIR, load_hyperparameters\n"
        "blocks = {algo: load_hyperparameters(algo, 'CartPole-v1') for algo in ALGOS}\n"
        "print(json.dumps([sb3_ac_plus.__file__, str(DEFAULT_CONFIG_DIR), sorted(blocks)]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    package_file, config_dir, algos = json.loads(done.stdout.splitlines()[-1])
    assert Path(package_file).is_relative_to(target) and Path(config_dir) == target / "sb3_ac_plus" / "zoo_configs"
    assert algos == sorted(ALGOS)
