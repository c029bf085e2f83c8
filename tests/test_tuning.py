"""Tests of the Optuna tuner (tuning/): search spaces, zoo YAML, flags, embedded and PostgreSQL storages, workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

# `tuning` is a folder of the repository, not part of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sb3_ac_plus.tuning import make_model, read_block
from sb3_ac_plus.tuning.cli import main, parse_arguments
from sb3_ac_plus.zoo.search_spaces import sample_hyperparameters, searched_names
from sb3_ac_plus.tuning.storage import StorageSpec, open_storage
from sb3_ac_plus.tuning.zoo_format import format_policy_kwargs, format_zoo_block, parse_policy_kwargs

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tuning" / "optimize.py"
# The URL form the README documents (postgresql://, which SQLAlchemy serves with psycopg 3).
POSTGRES_URL = os.environ.get("TUNING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
JOURNAL = "optuna_journal.log"

# A trial of about a second: A2C on CartPole, 2 seeds x 600 steps, 2 evaluations of 2 episodes.
TINY = ["--n-timesteps", "600", "--n-evaluations", "2", "--eval-episodes", "2", "--n-seeds", "2", "--no-plots"]
TINY += ["--verbose", "0"]


def journal_study(output_dir: Path, study_name: str) -> optuna.Study:
    storage = open_storage(StorageSpec(journal_path=str(output_dir / study_name / JOURNAL)))
    return optuna.load_study(study_name=study_name, storage=storage)


def states(study: optuna.Study) -> dict[int, TrialState]:
    return {trial.number: trial.state for trial in study.get_trials(deepcopy=False)}


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---------------------------------------------------------------- search spaces and zoo YAML


@pytest.mark.parametrize("algo", ["one_step_ac", "a2c", "ppo"])
def test_sampled_hyperparameters_build_the_model(algo: str, tmp_path: Path) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(6):
        trial = study.ask()
        kwargs = sample_hyperparameters(trial, algo)
        assert set(trial.params) <= set(searched_names(algo))
        if algo == "one_step_ac":
            assert kwargs["update_rule"] in ("obgd", "adaptive_obgd")
            assert kwargs["noise_beta"] == 0.0 and kwargs["use_sde"] is False  # Discrete actions: no noise to colour
            assert kwargs["n_steps"] == 1 or kwargs["trace_lambda"] == 0.0
        if algo == "ppo":
            assert kwargs["batch_size"] <= kwargs["n_steps"]
        path = tmp_path / f"{algo}.yml"
        path.write_text(format_zoo_block("CartPole-v1", kwargs, n_timesteps=1000))
        model = make_model(algo, path, "CartPole-v1", device="cpu")
        assert model.gamma == kwargs["gamma"]
        study.tell(trial, 0.0)


@pytest.mark.parametrize(
    ("algo", "env_id", "n_envs", "normalized"),
    [("a2c", "CartPole-v1", 8, False), ("a2c", "Acrobot-v1", 16, True), ("ppo", "CartPole-v1", 8, False)],
)
def test_a_trial_builds_its_model_from_the_zoo_block_as_compare_does(
    algo: str, env_id: str, n_envs: int, normalized: bool
) -> None:
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_ac_plus.tuning.objective import Objective, TrialSettings
    from sb3_ac_plus.zoo import load_hyperparameters, make_model_and_env

    block = load_hyperparameters(algo, env_id)
    assert block["n_envs"] == n_envs and bool(block.get("normalize")) == normalized
    settings = TrialSettings(algo, env_id, n_timesteps=1000, n_seeds=1, n_evaluations=1, eval_episodes=1, objective="last")
    sampled = {"gamma": 0.95}  # what a trial sampled
    model, eval_env = Objective(settings, "test")._build(sampled, seed=3)
    compared, _, _ = make_model_and_env(algo, env_id, seed=3, n_timesteps=1000, device="cpu", verbose=0, **sampled)
    assert model.n_envs == compared.n_envs == n_envs  # the block's VecEnv, as compare builds it
    assert isinstance(model.get_env(), VecNormalize) == isinstance(eval_env, VecNormalize) == normalized
    assert model.gamma == 0.95  # sampled values on top of the block
    for key in ("n_steps", "ent_coef"):
        if key in block and key not in sampled:
            assert getattr(model, key) == block[key]


def test_one_step_ac_searches_exploration_noise_for_box_actions_only() -> None:
    from sb3_ac_plus.tuning.objective import Objective, TrialSettings

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: dict[str, set] = {"noise_beta": set(), "use_sde": set(), "log_std_init": set()}
    for _ in range(40):
        trial = study.ask()
        kwargs = sample_hyperparameters(trial, "one_step_ac", continuous_actions=True)
        for key in seen:
            seen[key].add(kwargs["policy_kwargs"][key] if key == "log_std_init" else kwargs[key])
        assert not (kwargs["use_sde"] and kwargs["noise_beta"] > 0.0)  # one kind of correlated noise at a time
        study.tell(trial, 0.0)
    assert seen == {
        "noise_beta": {0.0, 0.5, 1.0, 2.0},
        "use_sde": {False, True},
        "log_std_init": {-2.0, -1.0, 0.0, 1.0},
    }
    assert {"noise_beta", "use_sde", "update_rule", "log_std_init"} <= set(searched_names("one_step_ac"))
    assert "combine_envs" not in searched_names("one_step_ac")  # OneStepAC learns from a VecEnv's envs in turn
    discrete = sample_hyperparameters(study.ask(), "one_step_ac", continuous_actions=False)
    assert "log_std_init" not in discrete["policy_kwargs"] and not discrete["use_sde"] and discrete["noise_beta"] == 0.0
    fixed = sample_hyperparameters(study.ask(), "one_step_ac", {"log_std_init": -0.5}, continuous_actions=True)
    assert fixed["policy_kwargs"]["log_std_init"] == -0.5

    settings = TrialSettings(
        "one_step_ac", "Pendulum-v1", n_timesteps=500, n_seeds=1, n_evaluations=1, eval_episodes=1, objective="last"
    )
    assert Objective(settings, "test").continuous_actions
    settings = TrialSettings(
        "one_step_ac", "CartPole-v1", n_timesteps=500, n_seeds=1, n_evaluations=1, eval_episodes=1, objective="last"
    )
    assert not Objective(settings, "test").continuous_actions


def test_one_step_ac_searches_n_envs_and_falls_back_to_one_env_without_a_block() -> None:
    from sb3_ac_plus.tuning.objective import Objective, TrialSettings

    assert "n_envs" in searched_names("one_step_ac")
    settings = TrialSettings(
        "one_step_ac", "MountainCar-v0", n_timesteps=500, n_seeds=1, n_evaluations=1, eval_episodes=1, objective="last"
    )
    model, _ = Objective(settings, "test")._build(sample_hyperparameters(None, "one_step_ac", fixed={"n_envs": 4}), 0)
    assert model.n_envs == 4  # no MountainCar-v0 block: SB3's defaults, with the sampled n_envs


def test_fixed_hyperparameters_replace_and_complete_the_search() -> None:
    trial = optuna.create_study().ask()
    fixed = {"gamma": 0.95, "net_arch": "tiny", "normalize_advantage": True, "policy_kwargs": {"ortho_init": False}}
    kwargs = sample_hyperparameters(trial, "ppo", fixed)
    assert kwargs["gamma"] == 0.95 and "gamma" not in trial.params
    assert kwargs["policy_kwargs"]["net_arch"] == [64] and kwargs["policy_kwargs"]["ortho_init"] is False
    assert kwargs["normalize_advantage"] is True  # not searched for PPO: passed to the constructor as is
    assert "learning_rate" in trial.params


def test_policy_kwargs_round_trip_and_refuse_code() -> None:
    text = "dict(net_arch=dict(pi=[64], vf=[64, 64]), activation_fn=nn.ReLU, optimizer_class=th.optim.Adam)"
    assert format_policy_kwargs(parse_policy_kwargs(text)) == text
    for code in ["__import__('os').system('true')", "dict(activation_fn=open)", "dict(**x)", "[64, 64]"]:
        with pytest.raises(ValueError, match="policy_kwargs"):
            parse_policy_kwargs(code)


def test_zoo_block_keeps_types() -> None:
    block = format_zoo_block(
        "CartPole-v1",
        {"learning_rate": 1e-05, "ent_coef": 0.0, "n_steps": 8, "normalize_advantage": False, "update_rule": "obgd"},
        n_timesteps=20_000,
    )
    loaded = yaml.safe_load(block)["CartPole-v1"]
    assert loaded["learning_rate"] == 1e-05 and isinstance(loaded["learning_rate"], float)  # "1e-05" would be a str
    assert loaded["n_timesteps"] == 20_000.0 and loaded["policy"] == "MlpPolicy"
    assert loaded["normalize_advantage"] is False and loaded["update_rule"] == "obgd" and loaded["n_envs"] == 1


# ---------------------------------------------------------------- flags


@pytest.mark.parametrize(
    ("argv", "flag", "hint"),
    [
        (["--algo", "sac"], "--algo", "one_step_ac"),
        (["--n-seeds", "0"], "--n-seeds", ">= 1"),
        (["--n-trials", "-3"], "--n-trials", ">= 1"),
        (["--max-total-trials", "many"], "--max-total-trials", ">= 1"),
        (["--storage", "postgres://u@h/db"], "--storage", "postgresql://"),
        (["--storage", "postgresql://"], "--storage", "host and a database"),
        (["--storage", "postgresql+psycopg2://u@h/db"], "--storage", "psycopg2"),
        (["--storage", "results"], "--storage", ".journal"),
        (["--sampler", "cmaes"], "--sampler", "tpe"),
        (["--pruner", "patient"], "--pruner", "hyperband"),
        (["--objective", "median"], "--objective", "last"),
        (["--fix", "not_a_hyperparameter=1"], "--fix", "learning_rate"),
        (["--fix", "seed=3"], "--fix", "--seed"),
        (["--fix", "gamma"], "--fix", "NAME=VALUE"),
        (["--fix", "net_arch=huge"], "--fix", "small"),
        (["--fix", "policy_kwargs=dict(activation_fn=os.system)"], "--fix", "not allowed"),
        (["--env", "CartPol-v1"], "--env", "CartPole-v1"),
        (["--n-timesteps", "3", "--n-evaluations", "5"], "--n-evaluations", "at most"),
        (["--enqueue", "not_searched=1"], "--enqueue", "searched: "),
        (["--enqueue", "n_epochs=5"], "--enqueue", "--fix"),
        (["--enqueue", "gamma=0.5"], "--enqueue", "one of [0.9"),
        (["--enqueue", "learning_rate=10"], "--enqueue", "[0.03, 3]"),
        (["--enqueue", "use_sde=1"], "--enqueue", "[False, True]"),
        (["--fix", "gamma=0.99", "--enqueue", "gamma=0.99"], "--enqueue", "fixed by --fix"),
        (["--enqueue", "gamma"], "--enqueue", "NAME=VALUE"),
        # values, before the first trial: the search space's kinds, the zoo loader's and OneStepAC's own checks
        (["--fix", "learning_rate=abc"], "--fix", "learning_rate must be a number or lin_<number>"),
        (["--fix", "gamma=abc"], "--fix", "gamma must be a number, got 'abc'; the search chooses from [0.9"),
        (["--fix", "use_sde=1"], "--fix", "use_sde must be true or false"),
        (["--fix", "update_rule=adam"], "--fix", "update_rule must be one of ('obgd', 'adaptive_obgd', 'sgd'"),
        (["--fix", "trace_lambda=1.5"], "--fix", "trace_lambda must be a float in [0, 1], got 1.5"),
        (["--fix", "clip_obs=-1"], "--fix", "clip_obs must be a positive finite float"),
        (["--fix", "n_envs=0"], "--fix", "n_envs: expected an integer >= 1"),
        (["--fix", "n_steps=4"], "--fix", "search draws trace_lambda=0.5: fix trace_lambda as well"),
        (["--env", "Pendulum-v1", "--fix", "noise_beta=1.0"], "--fix", "draws use_sde=True: fix use_sde as well"),
        (["--algo", "ppo", "--fix", "n_epochs=2.5"], "--fix", "n_epochs must be an integer, got 2.5"),
        (["--algo", "ppo", "--fix", "vf_coef=abc"], "--fix", "vf_coef must be a number, got 'abc'"),
        (["--algo", "a2c", "--fix", "normalize_advantage=maybe"], "--fix", "must be true or false"),
    ],
)
def test_invalid_flags_name_the_flag(argv: list[str], flag: str, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert flag in error and hint in error, error


@pytest.mark.parametrize(
    "argv",
    [
        ["--fix", "n_steps=4", "trace_lambda=0", "update_rule=sgd", "learning_rate=1e6"],  # outside the search: allowed
        ["--fix", "learning_rate=lin_0.5", "critic_learning_rate=None", "n_envs=3", "normalize_rewards=false"],
        ["--env", "Pendulum-v1", "--fix", "noise_beta=1.0", "use_sde=false"],
        ["--algo", "ppo", "--fix", "vf_coef=1", "net_arch=[32, 32]", "--enqueue", "gamma=0.99", "n_epochs=5"],
    ],
)
def test_valid_fixed_values_are_accepted(argv: list[str]) -> None:
    _, settings = parse_arguments(argv)
    assert settings.fixed


def test_invalid_flag_exit_code_from_the_command_line() -> None:
    result = run_cli("--n-seeds", "0")
    assert result.returncode == 2
    assert "argument --n-seeds: expected an integer >= 1, got '0'" in result.stderr


def test_help_explains_the_flags() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ["--max-total-trials", "--n-seeds", "--objective", "--pruner", "--storage", "--n-jobs", "--fix"]:
        assert flag in result.stdout
    named = re.findall(r"[\w/]+\.py", " ".join(result.stdout.split()))  # argparse may wrap a path at a space only
    assert "sb3_ac_plus/zoo/search_spaces.py" in named
    for path in named:
        assert (REPO / path).is_file(), f"--help names {path}, which does not exist"


# ---------------------------------------------------------------- embedded storage


def test_default_algorithm_end_to_end_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [*TINY, "--output-dir", str(tmp_path), "--verbose", "1"]  # default algo and env: OneStepAC on CartPole
    assert main([*args, "--n-trials", "3"]) == 0
    study_dir = tmp_path / "one_step_ac-CartPole-v1"
    printed = capsys.readouterr().out
    assert "Best hyperparameters" in printed and "CartPole-v1:" in printed

    study = journal_study(tmp_path, "one_step_ac-CartPole-v1")
    assert sorted(states(study)) == [0, 1, 2]
    best = study.best_trial
    assert best.user_attrs["env_steps"] >= 2 * 600 and len(best.user_attrs["seed_scores"]) == 2
    assert 0.0 < best.user_attrs["train_seconds"] < best.duration.total_seconds()
    assert len(best.intermediate_values) == 2

    env_id, block = read_block(study_dir / "best_hyperparameters.yml")
    assert env_id == "CartPole-v1" and block["n_timesteps"] == 600
    assert block["learning_rate"] == best.params["learning_rate"]  # real names and values
    assert "one_minus_gamma" not in (study_dir / "best_hyperparameters.yml").read_text()
    model = make_model("one_step_ac", study_dir / "best_hyperparameters.yml", seed=0, device="cpu")
    assert model.n_envs == block["n_envs"] == best.params["n_envs"]  # the trial's VecEnv, rebuilt
    model.learn(50)
    assert model.num_timesteps == 50 + (-50 % model.n_envs)  # whole VecEnv steps

    csv_lines = (study_dir / "trials.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 3 and "params_learning_rate" in csv_lines[0]

    # the same command resumes the study: --n-trials counts the new trials
    assert main([*args, "--n-trials", "1", "--verbose", "0"]) == 0
    study = journal_study(tmp_path, "one_step_ac-CartPole-v1")
    assert sorted(states(study)) == [0, 1, 2, 3]


def test_enqueued_trials_run_first_with_their_values_and_are_not_enqueued_again_on_resume(tmp_path: Path) -> None:
    args = [*TINY, "--output-dir", str(tmp_path), "--fix", "n_envs=1"]
    args += ["--enqueue", "gamma=0.9", "net_arch=tiny", "trace_lambda=0", "--enqueue", "gamma=0.95", "learning_rate=0.1"]
    assert main([*args, "--n-trials", "2"]) == 0
    study = journal_study(tmp_path, "one_step_ac-CartPole-v1")
    first, second = study.trials
    assert (first.params["gamma"], first.params["net_arch"], first.params["trace_lambda"]) == (0.9, "tiny", 0.0)
    assert "n_steps" in first.params  # sampled, since trace_lambda 0 makes it apply
    assert (second.params["gamma"], second.params["learning_rate"]) == (0.95, 0.1)
    assert first.user_attrs["hyperparameters"]["policy_kwargs"] == "dict(net_arch=[64])"  # what the model was built with

    assert main([*args, "--n-trials", "1"]) == 0  # the same command resumes: nothing is enqueued twice
    study = journal_study(tmp_path, "one_step_ac-CartPole-v1")
    assert sorted(states(study)) == [0, 1, 2]
    assert [("fixed_params" in trial.system_attrs) for trial in study.trials] == [True, True, False]


def test_ties_on_the_best_value_go_to_the_trial_that_trained_fastest() -> None:
    import datetime

    from optuna.distributions import FloatDistribution
    from optuna.trial import FrozenTrial, TrialState

    from sb3_ac_plus.tuning.outputs import best_hyperparameters_yaml, best_trial

    start = datetime.datetime(2026, 1, 1)

    def add(study: optuna.Study, value: float, minutes: float, train_seconds: float | None) -> None:
        attrs = {"hyperparameters": {"learning_rate": value / 1000}}
        if train_seconds is not None:
            attrs["train_seconds"] = train_seconds
        study.add_trial(
            FrozenTrial(
                number=0,
                state=TrialState.COMPLETE,
                value=value,
                datetime_start=start,
                datetime_complete=start + datetime.timedelta(minutes=minutes),
                params={"learning_rate": value / 1000},
                distributions={"learning_rate": FloatDistribution(0.0, 1.0)},
                user_attrs=attrs,
                system_attrs={},
                intermediate_values={},
                trial_id=0,
            )
        )

    study = optuna.create_study(direction="maximize")
    study.set_user_attr("settings", {"algo": "one_step_ac", "env_id": "CartPole-v1", "n_timesteps": 1000})
    add(study, 500.0, minutes=1.0, train_seconds=30.0)
    add(study, 480.0, minutes=0.1, train_seconds=1.0)  # fastest, but not tied with the best
    add(study, 500.0, minutes=3.0, train_seconds=10.0)
    add(study, 500.0, minutes=2.0, train_seconds=10.0)
    assert best_trial(study).number == 2  # least training seconds among the tied; the lowest number breaks ties
    assert "3 trials tied at this value; this one trained fastest" in best_hyperparameters_yaml(study, best_trial(study))
    add(study, 500.0, minutes=0.5, train_seconds=None)  # predates train_seconds: durations decide
    assert best_trial(study).number == 4
    assert best_trial(optuna.create_study()) is None


def test_plots_are_written(tmp_path: Path) -> None:
    argv = [*TINY, "--algo", "a2c", "--n-trials", "3", "--output-dir", str(tmp_path)]
    argv.remove("--no-plots")
    assert main(argv) == 0
    study_dir = tmp_path / "a2c-CartPole-v1"
    for name in ["optimization_history", "param_importances", "intermediate_values", "slice"]:
        assert (study_dir / f"{name}.png").stat().st_size > 1000


@pytest.mark.filterwarnings("ignore:Fixed parameter learning_rate:UserWarning")
def test_diverging_trial_is_recorded_and_the_study_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # trial 0 gets an absurd learning rate, which makes A2C's logits NaN within a few updates
    storage = open_storage(StorageSpec(journal_path=str(tmp_path / "a2c-CartPole-v1" / JOURNAL)))
    optuna.create_study(study_name="a2c-CartPole-v1", storage=storage, direction="maximize").enqueue_trial(
        {"learning_rate": 1e20, "n_steps": 8}, skip_if_exists=False
    )
    assert main([*TINY, "--algo", "a2c", "--n-trials", "2", "--output-dir", str(tmp_path)]) == 0
    study = journal_study(tmp_path, "a2c-CartPole-v1")
    diverged, healthy = study.get_trials()
    assert diverged.state == TrialState.PRUNED and diverged.user_attrs["pruned_by"] == "divergence"
    assert diverged.user_attrs["fail_reason"].startswith("diverged at step")
    assert healthy.state == TrialState.COMPLETE
    assert "1 of the pruned diverged" in capsys.readouterr().out


def test_a_bug_fails_its_trial_with_the_traceback_and_is_not_pruned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sb3_ac_plus.tuning.objective

    calls = []
    real_evaluate = sb3_ac_plus.tuning.objective.evaluate_policy

    def evaluate_with_a_bug(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the first trial's first evaluation hits a bug (a shape error, say)
            raise ValueError("operands could not be broadcast together with shapes (2,) (3,)")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(sb3_ac_plus.tuning.objective, "evaluate_policy", evaluate_with_a_bug)
    assert main([*TINY, "--algo", "a2c", "--n-trials", "2", "--output-dir", str(tmp_path)]) == 0
    study = journal_study(tmp_path, "a2c-CartPole-v1")
    failed, healthy = study.get_trials()
    assert failed.state == TrialState.FAIL and "pruned_by" not in failed.user_attrs
    reason = failed.user_attrs["fail_reason"]
    assert reason.startswith("Traceback") and "ValueError: operands could not be broadcast" in reason
    assert healthy.state == TrialState.COMPLETE  # the study went on
    out = capsys.readouterr().out
    assert "1 complete, 1 fail)" in out and "trial 0 failed: Traceback" in out


def test_only_divergence_is_pruned() -> None:
    import torch as th

    from sb3_ac_plus import NonFiniteError
    from sb3_ac_plus.tuning.objective import is_divergence

    with pytest.raises(ValueError) as invalid:
        th.distributions.Normal(th.tensor([float("nan")]), th.tensor([1.0]), validate_args=True)
    assert is_divergence(invalid.value)
    assert is_divergence(NonFiniteError("non-finite TD error")) and is_divergence(OverflowError())
    for bug in (ValueError("operands could not be broadcast"), RuntimeError("mat1 and mat2 shapes"), AssertionError()):
        assert not is_divergence(bug)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_only_diverging_trials_leave_no_best(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # OneStepAC's plain SGD rule with step sizes of 1e6 makes the TD error non-finite within a few dozen steps
    fixed = ["update_rule=sgd", "learning_rate=1e6", "critic_learning_rate=1e6"]
    assert main([*TINY, "--fix", *fixed, "--n-trials", "2", "--output-dir", str(tmp_path)]) == 1  # nothing completed
    study = journal_study(tmp_path, "one_step_ac-CartPole-v1")
    assert len(study.trials) == 2
    for trial in study.trials:
        assert trial.state == TrialState.PRUNED and trial.user_attrs["pruned_by"] == "divergence"
        assert "NonFiniteError" in trial.user_attrs["fail_reason"]
        assert trial.user_attrs["env_steps"] < 100
    printed = capsys.readouterr()
    assert "No trial completed" in printed.out and "error: no trial of the study completed" in printed.err
    assert not (tmp_path / "one_step_ac-CartPole-v1" / "best_hyperparameters.yml").exists()


def test_two_worker_processes_respect_the_cap(tmp_path: Path) -> None:
    args = [*TINY, "--algo", "a2c", "--n-timesteps", "1500", "--n-jobs", "2", "--n-trials", "10", "--max-total-trials", "4"]
    result = run_cli(*args, "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    trials = journal_study(tmp_path, "a2c-CartPole-v1").get_trials()
    finished = [trial for trial in trials if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    assert not [trial for trial in trials if trial.state == TrialState.RUNNING]
    assert len({trial.user_attrs["worker"] for trial in finished}) == 2  # both processes ran trials


def test_sigkill_then_resume_on_the_embedded_storage(tmp_path: Path) -> None:
    args = [*TINY, "--algo", "a2c", "--n-timesteps", "3000", "--output-dir", str(tmp_path)]
    worker = subprocess.Popen([sys.executable, str(SCRIPT), *args, "--n-trials", "20"], cwd=REPO, stdout=subprocess.DEVNULL)
    journal = tmp_path / "a2c-CartPole-v1" / JOURNAL

    def completed_and_running() -> bool:
        if not journal.exists():
            return False
        trials = journal_study(tmp_path, "a2c-CartPole-v1").get_trials(deepcopy=False)
        running = [t for t in trials if t.state == TrialState.RUNNING and "hyperparameters" in t.user_attrs]
        return any(t.state == TrialState.COMPLETE for t in trials) and bool(running)

    try:
        wait_for(completed_and_running, 90, "a completed trial and a running one")
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    before = states(journal_study(tmp_path, "a2c-CartPole-v1"))
    killed = [number for number, state in before.items() if state == TrialState.RUNNING]
    assert len(killed) == 1

    result = run_cli(*args, "--n-trials", "1")
    assert result.returncode == 0, result.stderr
    study = journal_study(tmp_path, "a2c-CartPole-v1")
    after = states(study)
    assert after[killed[0]] == TrialState.FAIL
    assert "died" in study.trials[killed[0]].user_attrs["fail_reason"]
    for number, state in before.items():
        if state == TrialState.COMPLETE:
            assert after[number] == TrialState.COMPLETE
    assert len(after) == len(before) + 1 and after[max(after)] == TrialState.COMPLETE


def completed_and_running(output_dir: Path, study_name: str) -> bool:
    """Whether the journal of the study holds a completed trial and a running one that has started training."""
    if not (output_dir / study_name / JOURNAL).exists():
        return False
    trials = journal_study(output_dir, study_name).get_trials(deepcopy=False)
    running = [t for t in trials if t.state == TrialState.RUNNING and "hyperparameters" in t.user_attrs]
    return any(t.state == TrialState.COMPLETE for t in trials) and bool(running)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_ctrl_c_saves_the_study_exits_130_and_the_same_command_resumes(tmp_path: Path, n_jobs: int) -> None:
    args = [*TINY, "--algo", "a2c", "--n-timesteps", "3000", "--output-dir", str(tmp_path), "--n-jobs", str(n_jobs)]
    command = [sys.executable, str(SCRIPT), *args, "--n-trials", "500"]  # more than can finish before the signal
    # A shell's background job ignores SIGINT, and Python keeps an ignored SIGINT ignored: give the tuner a terminal's.
    run = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for(lambda: completed_and_running(tmp_path, "a2c-CartPole-v1"), 120, "a completed trial and a running one")
        run.send_signal(signal.SIGINT)  # to the main process only: it passes it on to its workers
        out, err = run.communicate(timeout=120)
    finally:
        run.kill()
        run.wait()
    assert run.returncode == 130, err
    assert "interrupted (Ctrl-C)" in out
    before = states(journal_study(tmp_path, "a2c-CartPole-v1"))
    assert TrialState.RUNNING not in before.values()  # the interrupted trials are marked failed, not left running
    assert TrialState.FAIL in before.values() and TrialState.COMPLETE in before.values()
    study_dir = tmp_path / "a2c-CartPole-v1"
    assert read_block(study_dir / "best_hyperparameters.yml")[0] == "CartPole-v1"
    assert len((study_dir / "trials.csv").read_text().splitlines()) == 1 + len(before)
    assert not list(study_dir.glob(".*.partial*"))

    result = run_cli(*args, "--n-trials", "1")
    assert result.returncode == 0, result.stderr
    after = states(journal_study(tmp_path, "a2c-CartPole-v1"))
    assert {number: after[number] for number in before} == before  # nothing the interrupted run finished is lost
    assert len(after) == len(before) + 1 and after[max(after)] == TrialState.COMPLETE


def test_outputs_are_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    from sb3_ac_plus.tuning.outputs import replace_atomically

    path = tmp_path / "best_hyperparameters.yml"
    path.write_text("CartPole-v1:\n  gamma: 0.99\n")

    def interrupted(partial: Path) -> None:
        partial.write_text("CartPole-v1:\n  gam")
        raise KeyboardInterrupt  # a second Ctrl-C while the outputs are written

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(path, interrupted)
    assert path.read_text() == "CartPole-v1:\n  gamma: 0.99\n" and sorted(tmp_path.iterdir()) == [path]
    replace_atomically(path, lambda partial: partial.write_text("new\n"))
    assert path.read_text() == "new\n" and sorted(tmp_path.iterdir()) == [path]


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def postgres_study() -> Iterator[tuple[str, str]]:
    """A fresh study name on the PostgreSQL server; fails under CI when the server is down, skips elsewhere."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = POSTGRES_URL
    parts = make_url(url)
    try:
        psycopg.connect(
            host=parts.host, port=parts.port or 5432, user=parts.username, dbname=parts.database, connect_timeout=3
        ).close()
    except psycopg.OperationalError as error:
        message = f"PostgreSQL at {url} is unreachable: {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    name = f"test-tuning-{uuid.uuid4().hex[:12]}"
    yield url, name
    try:
        optuna.delete_study(study_name=name, storage=url)
    except KeyError:
        pass


@pytest.mark.postgres
def test_two_workers_share_a_postgres_study_with_a_cap(postgres_study: tuple[str, str], tmp_path: Path) -> None:
    url, name = postgres_study
    args = [*TINY, "--algo", "a2c", "--storage", url, "--study-name", name]
    # each worker may run 3 trials, so the cap of 4 must stop one of them, and each must run at least one
    argv = [sys.executable, str(SCRIPT), *args, "--n-trials", "3", "--max-total-trials", "4", "--output-dir", str(tmp_path)]
    workers = [subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=180)
        assert worker.returncode == 0, stderr
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    finished = [trial for trial in trials if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    numbers = [trial.number for trial in trials]
    assert len(numbers) == len(set(numbers))
    assert not [trial for trial in trials if trial.state == TrialState.RUNNING]
    assert len({trial.user_attrs["worker"] for trial in finished}) == 2


@pytest.mark.postgres
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_sigkill_on_postgres_fails_the_trial_by_heartbeat_then_resume(postgres_study: tuple[str, str], tmp_path: Path) -> None:
    url, name = postgres_study
    heartbeat = ["--heartbeat-interval", "1", "--grace-period", "2"]
    args = [*TINY, "--algo", "a2c", "--n-timesteps", "3000", "--storage", url, "--study-name", name, *heartbeat]
    args += ["--output-dir", str(tmp_path)]
    worker = subprocess.Popen([sys.executable, str(SCRIPT), *args, "--n-trials", "20"], cwd=REPO, stdout=subprocess.DEVNULL)

    def study_states() -> dict[int, TrialState]:
        try:
            return states(optuna.load_study(study_name=name, storage=url))
        except KeyError:
            return {}

    def completed_and_running() -> bool:
        current = study_states()
        return TrialState.COMPLETE in current.values() and TrialState.RUNNING in current.values()

    try:
        wait_for(completed_and_running, 90, "a completed trial and a running one")
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    before = study_states()
    killed = [number for number, state in before.items() if state == TrialState.RUNNING]
    assert len(killed) == 1

    # Optuna's heartbeat check, as any other worker (on any machine) runs it before each trial
    time.sleep(3)
    spec = StorageSpec(url=url, heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name=name, storage=open_storage(spec))
    optuna.storages.fail_stale_trials(study)
    assert states(study)[killed[0]] == TrialState.FAIL

    result = run_cli(*args, "--n-trials", "1")
    assert result.returncode == 0, result.stderr
    after = study_states()
    for number, state in before.items():
        if state == TrialState.COMPLETE:
            assert after[number] == TrialState.COMPLETE
    assert after[killed[0]] == TrialState.FAIL
    assert len(after) == len(before) + 1 and after[max(after)] == TrialState.COMPLETE
