"""python -m sb3_ac_plus.compare: statistics, output files and their consistency, parallel workers, bad flags."""

import argparse
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from sb3_ac_plus.compare import main, markdown_table, parse_variant, summarize
from sb3_ac_plus.evaluation.statistics import iqm, iqm_with_ci, steps_to_threshold
from sb3_ac_plus.evaluation.training import EvaluationPoint, RunResult, train_and_evaluate

TINY = ["--budget", "600", "--seeds", "2", "--eval-freq", "300", "--eval-episodes", "2", "--no-progress"]


def test_iqm_and_bootstrap_interval() -> None:
    assert iqm([1, 2, 3, 4, 100, -100, 2.5, 3.5]) == pytest.approx(np.mean([2, 2.5, 3, 3.5]))
    scores = np.random.default_rng(0).normal(size=10)
    point, lower, upper = iqm_with_ci(scores)
    assert lower <= point <= upper and scores.min() <= lower and upper <= scores.max()
    assert iqm_with_ci(scores) == iqm_with_ci(scores)  # seeded resampling: a summary is reproducible
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the degenerate samples never reach SciPy, which refuses or warns
        assert iqm_with_ci([7.0]) == (7.0, 7.0, 7.0)
        assert iqm_with_ci([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)  # nothing to resample
    assert iqm_with_ci(scores, seed=1) != iqm_with_ci(scores, seed=0)
    wide = iqm_with_ci(scores, confidence=0.99)
    assert wide[1] <= lower and upper <= wide[2]
    assert steps_to_threshold([0, 300, 600], [10, 500, 20], 475) == 300
    assert steps_to_threshold([0, 300, 600], [500, 10, 480], 475) == 600  # a lucky untrained policy does not count
    assert steps_to_threshold([0, 300], [10, 20], 475) == math.inf
    assert math.isnan(steps_to_threshold([0, 300], [10, 20], None))


def test_env_without_threshold_says_so_and_has_no_threshold_columns() -> None:
    curve = [EvaluationPoint(0, -1500.0, 0.0, 0.0, 0.0), EvaluationPoint(100, -1200.0, 0.0, 1.0, 1.5)]
    runs = [RunResult("a2c", "Pendulum-v1", seed, 100, 1.0, 1.5, curve) for seed in range(2)]
    summary = summarize(runs, threshold=None)
    assert summary["a2c"]["seeds_reaching_threshold"] is None
    table = markdown_table(summary, "Pendulum-v1", None)
    assert table.splitlines()[0] == "Pendulum-v1 has no reward threshold: no seeds, steps or episodes reaching it to report."
    header = next(line for line in table.splitlines() if line.startswith("| algorithm"))
    assert header == "| algorithm | final return IQM [95% CI] | env-steps/s |"
    assert "n/a" not in table and "reaching" not in header
    assert table.splitlines()[-1] == "| a2c | -1200.0 [-1200.0, -1200.0] | 100 |"
    assert summary["a2c"]["steps_per_second"] == pytest.approx(100.0)
    assert summary["a2c"]["training_episodes_reaching_threshold"] is None


def test_training_episodes_reaching_the_threshold_are_counted_per_seed() -> None:
    curve = [EvaluationPoint(0, 0.0, 0.0, 0.0, 0.0), EvaluationPoint(100, 10.0, 0.0, 1.0, 1.5)]
    runs = [
        RunResult("one_step_ac", "MountainCarContinuous-v0", 0, 100, 1.0, 1.5, curve, [-99.9, 91.0, 90.0]),
        RunResult("one_step_ac", "MountainCarContinuous-v0", 1, 100, 1.0, 1.5, curve, [-20.0]),
        RunResult("a2c", "MountainCarContinuous-v0", 0, 100, 1.0, 1.5, curve, []),
    ]
    summary = summarize(runs, threshold=90.0)
    assert summary["one_step_ac"]["training_episodes"] == [3, 1]
    assert summary["one_step_ac"]["training_episodes_reaching_threshold"] == [2, 0]
    assert summary["one_step_ac"]["seeds_reaching_threshold"] == 0  # the deterministic evaluations never did
    rows = markdown_table(summary, "MountainCarContinuous-v0", 90.0).splitlines()
    assert "| training episodes reaching 90 |" in rows[0]
    assert "| 50% of 4 |" in rows[2] and "| n/a |" in rows[3]  # no training episode ended: no share


@pytest.mark.parametrize("algo", ["one_step_ac", "a2c"])
def test_training_returns_are_the_monitors_episodes(algo: str) -> None:
    from sb3_ac_plus.evaluation.training import PeriodicEvaluation, make_eval_env
    from sb3_ac_plus.zoo import make_model_and_env

    model, _, _ = make_model_and_env(algo, "CartPole-v1", seed=0)
    callback = PeriodicEvaluation(make_eval_env(model, "CartPole-v1", 0), 10_000, 1)
    model.learn(800, callback=callback)
    episodes = [float(info["r"]) for info in model.ep_info_buffer]
    assert len(episodes) >= 10 and callback.train_returns == pytest.approx(episodes)


def test_training_stops_at_the_budget_inside_a_rollout() -> None:
    # PPO's CartPole config collects 8 envs x 32 steps per rollout: learn(600) alone would train on 768 steps.
    result = train_and_evaluate("ppo", "CartPole-v1", seed=0, budget=600, eval_freq=300, eval_episodes=1)
    assert result.total_steps == 600
    assert [point.steps for point in result.curve] == [0, 304, 600]  # the vectorized step that crosses 300 is 304


def check_outputs(output_dir: Path, algos: list[str], seeds: int) -> dict[str, Any]:
    for name in ("runs.csv", "summary.json", "summary.md", "curves.png"):
        assert (output_dir / name).stat().st_size > 0, name
    runs = pd.read_csv(output_dir / "runs.csv")
    assert set(runs["algo"]) == set(algos) and set(runs["seed"]) == set(range(seeds))
    assert (runs.groupby(["algo", "seed"])["eval_index"].min() == 0).all()  # an evaluation before training
    summary = json.loads((output_dir / "summary.json").read_text())["summary"]
    for algo in algos:
        row = summary[algo]
        finals = runs[runs["algo"] == algo].sort_values("steps").groupby("seed")["mean_return"].last()
        assert sorted(row["final_returns"]) == pytest.approx(sorted(finals))
        assert min(finals) <= row["final_return_iqm"] <= max(finals)
        lower, upper = row["final_return_ci95"]
        assert lower <= row["final_return_iqm"] <= upper
        for steps, total in zip(row["steps_to_threshold"], row["total_steps"], strict=True):
            assert steps is None or steps <= total  # null: not reached
        assert all(total >= 600 for total in row["total_steps"]) and row["steps_per_second"] > 0
        assert row["threshold"] == 475
    table = (output_dir / "summary.md").read_text()
    assert all(f"| {algo} |" in table for algo in algos)
    return summary


def test_comparison_writes_consistent_results_and_keeps_earlier_ones(tmp_path: Path) -> None:
    argv = ["--env", "CartPole-v1", "--algos", "one_step_ac", "a2c", *TINY, "--workers", "1", "--output-dir", str(tmp_path)]
    main(argv)
    check_outputs(tmp_path, ["one_step_ac", "a2c"], seeds=2)
    first = (tmp_path / "runs.csv").read_text()
    main([*argv, "--seeds", "1", "--algos", "a2c"])
    assert (tmp_path / "runs.csv").read_text() == first  # never overwritten silently
    (stamped,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    check_outputs(stamped, ["a2c"], seeds=1)


def test_a_comparison_stopped_part_way_keeps_its_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sb3_ac_plus.compare as compare

    calls = []

    def first_run_then_stop(**kwargs):
        calls.append(kwargs["seed"])
        if len(calls) > 1:
            raise KeyboardInterrupt  # as a user's Ctrl-C, or a timeout's signal, during the second run
        return train_and_evaluate(**kwargs)

    monkeypatch.setattr(compare, "train_and_evaluate", first_run_then_stop)
    with pytest.raises(KeyboardInterrupt):
        main(["--env", "CartPole-v1", "--algos", "a2c", *TINY, "--workers", "1", "--output-dir", str(tmp_path)])
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert set(runs["seed"]) == {0} and set(runs["algo"]) == {"a2c"} and runs["steps"].max() >= 600
    assert not (tmp_path / "summary.json").exists()


def test_runs_start_seed_by_seed_so_every_variant_sees_the_same_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sb3_ac_plus.compare as compare

    started = []

    def record(**kwargs):
        started.append((kwargs["label"], kwargs["seed"]))
        return train_and_evaluate(**kwargs)

    monkeypatch.setattr(compare, "train_and_evaluate", record)
    flags = ["--env", "CartPole-v1", "--algos", "a2c", "ppo", "--seeds", "2", "--budget", "200", "--eval-freq", "100"]
    main([*flags, "--eval-episodes", "1", "--workers", "1", "--no-progress", "--output-dir", str(tmp_path)])
    assert started == [("a2c", 0), ("ppo", 0), ("a2c", 1), ("ppo", 1)]
    runs = pd.read_csv(tmp_path / "runs.csv")  # one row per evaluation; the saved runs keep the variants' order
    saved = list(dict.fromkeys(zip(runs["algo"], runs["seed"], strict=True)))
    assert saved == [("a2c", 0), ("a2c", 1), ("ppo", 0), ("ppo", 1)]


class FailingSteps(VecEnvWrapper):
    """Training envs that go wrong from their ``at``-th VecEnv step on: NaN rewards, or ``error`` raised."""

    def __init__(self, venv: VecEnv, at: int, error: Exception | None = None) -> None:
        super().__init__(venv)
        self.at = at
        self.error = error
        self.steps = 0

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.steps += 1
        if self.steps >= self.at:
            if self.error is not None:
                raise self.error
            rewards = np.full_like(rewards, np.nan)
        return obs, rewards, dones, infos


def fail_seed(monkeypatch: pytest.MonkeyPatch, failing_seed: int, at: int, error: Exception | None = None) -> None:
    """Stand in for the zoo: the model of ``failing_seed`` trains on ``FailingSteps`` envs (in this process only)."""
    import sb3_ac_plus.zoo as zoo

    build = zoo.make_model_and_env

    def make_model_and_env(algo: str, env_id: str, seed: int = 0, **kwargs: Any) -> tuple[Any, VecEnv, int]:
        model, env, n_timesteps = build(algo, env_id, seed=seed, **kwargs)
        if seed == failing_seed:
            env = FailingSteps(env, at, error)
            model.set_env(env)
        return model, env, n_timesteps

    monkeypatch.setattr(zoo, "make_model_and_env", make_model_and_env)


def test_a_diverged_run_is_recorded_and_the_comparison_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # one_step_ac's CartPole config runs 8 envs: the 40th step's NaN rewards stop seed 1 after 39 steps (312 env steps),
    # past its evaluation at 304; OneStepAC refuses the step, so the model evaluated at 312 is the last finite one.
    fail_seed(monkeypatch, failing_seed=1, at=40)
    main(["--env", "CartPole-v1", "--algos", "one_step_ac", *TINY, "--workers", "1", "--output-dir", str(tmp_path)])
    row = json.loads((tmp_path / "summary.json").read_text())["summary"]["one_step_ac"]
    assert row["seeds_diverged"] == 1 and row["diverged_at"] == [None, 312] and row["total_steps"] == [600, 312]
    no_error, error = row["divergence_errors"]
    assert no_error is None and error.startswith("NonFiniteError: OneStepAC: non-finite reward")
    runs = pd.read_csv(tmp_path / "runs.csv")
    diverged, finished = runs[runs["seed"] == 1], runs[runs["seed"] == 0]
    assert diverged["steps"].tolist() == [0, 304, 312] and (diverged["diverged_at"] == 312).all()
    assert row["final_returns"][1] == pytest.approx(diverged["mean_return"].iloc[-1])  # the policy it stopped with
    assert finished["steps"].tolist() == [0, 304, 600] and finished["diverged_at"].isna().all()
    alone = train_and_evaluate("one_step_ac", "CartPole-v1", seed=0, budget=600, eval_freq=300, eval_episodes=2)
    assert finished["mean_return"].tolist() == pytest.approx([point.mean_return for point in alone.curve])
    assert "one_step_ac 1/2 (seed 1 at 312 steps)" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "curves.png").stat().st_size > 0
    out, err = capsys.readouterr()
    assert "one_step_ac 1/2 (seed 1 at 312 steps)" in out
    (warning,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "one_step_ac seed 1 diverged at 312 env steps" in warning and "non-finite reward" in warning


def test_a_divergence_right_after_an_evaluation_is_not_evaluated_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    fail_seed(monkeypatch, failing_seed=0, at=39)  # 38 steps of 8 envs: 304, where the evaluation of 300 happened
    result = train_and_evaluate("one_step_ac", "CartPole-v1", seed=0, budget=600, eval_freq=300, eval_episodes=1)
    assert result.diverged_at == result.total_steps == 304 and [point.steps for point in result.curve] == [0, 304]
    assert result.error is not None and result.error.startswith("NonFiniteError")


def test_curves_carry_a_stopped_run_at_its_last_evaluation() -> None:
    from sb3_ac_plus.evaluation.plots import curve_bands

    # seed 1 stopped (diverged) at step 150 with return 7; seeds 0 and 2 ran to 300
    runs = pd.DataFrame(
        {
            "seed": [0, 0, 0, 1, 1, 1, 2, 2, 2],
            "steps": [0, 100, 300, 0, 100, 150, 0, 100, 300],
            "mean_return": [1.0, 2.0, 3.0, 1.0, 4.0, 7.0, 1.0, 2.0, 3.0],
        }
    )
    bands = curve_bands(runs)
    assert list(bands["steps"]) == [0, 100, 300]
    assert list(bands["iqm"]) == pytest.approx([1.0, iqm([2.0, 4.0, 2.0]), iqm([3.0, 7.0, 3.0])])


def test_errors_other_than_divergence_still_stop_the_comparison(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_seed(monkeypatch, failing_seed=0, at=5, error=ValueError("a bug in an env"))
    with pytest.raises(ValueError, match="a bug in an env"):
        main(["--env", "CartPole-v1", "--algos", "one_step_ac", *TINY, "--workers", "1", "--output-dir", str(tmp_path)])
    assert not (tmp_path / "summary.json").exists()


def test_seeds_run_in_parallel_workers(tmp_path: Path) -> None:
    main(["--env", "CartPole-v1", "--algos", "one_step_ac", "ppo", *TINY, "--workers", "2", "--output-dir", str(tmp_path)])
    check_outputs(tmp_path, ["one_step_ac", "ppo"], seeds=2)


def test_first_seed_runs_later_seeds_the_same_as_a_comparison_from_zero(tmp_path: Path) -> None:
    common = ["--env", "CartPole-v1", "--algos", "one_step_ac", *TINY, "--workers", "1"]
    main([*common, "--output-dir", str(tmp_path / "from0")])
    main([*common, "--seeds", "1", "--first-seed", "1", "--output-dir", str(tmp_path / "from1")])
    from0 = pd.read_csv(tmp_path / "from0" / "runs.csv")
    from1 = pd.read_csv(tmp_path / "from1" / "runs.csv")
    assert list(from1["seed"].unique()) == [1]
    columns = ["algo", "seed", "steps", "mean_return", "std_return"]  # the rest are seconds
    pd.testing.assert_frame_equal(from0.loc[from0["seed"] == 1, columns].reset_index(drop=True), from1[columns])
    assert "(seed 1)" in (tmp_path / "from1" / "summary.md").read_text()


def test_comparison_with_sb3_contrib_trpo(tmp_path: Path) -> None:
    from sb3_contrib import TRPO

    from sb3_ac_plus.zoo import load_hyperparameters

    assert load_hyperparameters("trpo", "CartPole-v1")["n_critic_updates"] == 20  # rl-zoo's block
    argv = ["--env", "CartPole-v1", "--algos", "one_step_ac", "trpo", *TINY, "--workers", "1", "--output-dir", str(tmp_path)]
    summary = main(argv)
    check_outputs(tmp_path, ["one_step_ac", "trpo"], seeds=2)
    assert set(summary) == {"one_step_ac", "trpo"}
    result = train_and_evaluate("trpo", "CartPole-v1", seed=0, budget=600, eval_freq=600, eval_episodes=1)
    assert result.total_steps == 600 and TRPO.__module__.startswith("sb3_contrib")


def test_default_comparison_is_onestepac_a2c_ppo() -> None:
    from sb3_ac_plus.compare import parse_args
    from sb3_ac_plus.zoo import ALGOS

    assert parse_args([], list(ALGOS)).algos == ["one_step_ac", "a2c", "ppo"]


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--algos", "dqn"], "--algos"),
        (["--env", "NoSuchEnv-v0"], "--env"),
        (["--env", "MountainCar-v0"], "--env"),  # registered, but no config block
        (["--seeds", "0"], "--seeds"),
        (["--budget", "0"], "--budget"),
        (["--workers", "0"], "--workers"),
        (["--eval-freq", "-1"], "--eval-freq"),
        (["--first-seed", "-1"], "--first-seed"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_help_documents_the_variant_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--variant LABEL=ALGO[@defaults][:KEY=VALUE,...]" in text
    for documented in ("ALGO@defaults starts instead from the algorithm's own defaults", "ppo-defaults=ppo@defaults"):
        assert documented in text
    variant = parse_variant("ppo-defaults=ppo@defaults")  # the example works as written
    assert (variant.label, variant.algo, variant.from_defaults) == ("ppo-defaults", "ppo", True)


def test_variant_values_keep_their_commas_inside_brackets() -> None:
    variant = parse_variant("small=one_step_ac@defaults:policy_kwargs=dict(net_arch=[64, 64]),n_envs=8,noise_beta=1.0")
    assert variant.label == "small" and variant.algo == "one_step_ac" and variant.from_defaults
    assert variant.overrides == {"policy_kwargs": "dict(net_arch=[64, 64])", "n_envs": 8, "noise_beta": 1.0}


@pytest.mark.parametrize(
    "text",
    [
        "noalgo",
        "=one_step_ac",
        "x=one_step_ac@tuned",
        "x=one_step_ac:n_envs",
        "x=one_step_ac:policy_kwargs=dict(net_arch=[64",
        "x=one_step_ac:gamma=!!python/object/apply:os.system ['true']",  # a YAML error, not a raw ConstructorError
    ],
)
def test_malformed_variants_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_variant(text)


def test_variant_policy_kwargs_reach_the_model() -> None:
    from sb3_ac_plus.zoo import make_model_and_env

    overrides = parse_variant("s=one_step_ac@defaults:policy_kwargs=dict(net_arch=[16, 8]),n_envs=2").overrides
    model, env, _ = make_model_and_env("one_step_ac", "CartPole-v1", seed=0, n_timesteps=100, block={}, **overrides)
    assert env.num_envs == 2
    assert [layer.out_features for layer in model.policy.mlp_extractor.policy_net.linears] == [16, 8]
    env.close()


def test_rows_from_defaults_need_no_config_block(tmp_path: Path) -> None:
    common = ["--env", "MountainCar-v0", "--seeds", "1", "--budget", "200", "--eval-freq", "100", "--eval-episodes", "1"]
    common += ["--workers", "1", "--no-progress"]
    summary = main([*common, "--variant", "d=one_step_ac@defaults", "--output-dir", str(tmp_path / "a")])
    assert list(summary) == ["d"] and summary["d"]["seeds"] == [0] and summary["d"]["total_steps"] == [200]
    with pytest.raises(SystemExit):  # a row from the config still needs the env's block
        main([*common, "--algos", "one_step_ac", "--output-dir", str(tmp_path / "b")])
