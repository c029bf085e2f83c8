"""python -m benchmarks.scale: a run stopped part way and continued ends as one never stopped; finished runs are skipped;
bad options are argparse errors. Tiny runs on Pendulum-v1: 600 env steps in chunks of 200."""

import io
import json
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch as th
from gymnasium.utils import EzPickle
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.save_util import load_from_zip_file

from benchmarks import scale
from benchmarks.scale import RunRecord, main
from sb3_ac_plus.evaluation.training import train_and_evaluate

ENV = "Pendulum-v1"
TINY = ["--env", ENV, "--seeds", "1", "--budget", "600", "--chunk", "200", "--eval-freq", "200", "--eval-episodes", "1"]
VARIANTS = {
    # a schedule: its progress must run over the budget, not over each chunk
    "OneStepAC": "one_step_ac@defaults:learning_rate=lin_1.0",
    # the zoo block (gSDE), smaller, with VecNormalize; its chunks end at rollout ends (256 env steps), past 200
    "PPO": "ppo:n_envs=2,n_steps=64,batch_size=64,normalize=true",
    "SAC": "sac@defaults:learning_starts=100,buffer_size=1000,batch_size=32,policy_kwargs=dict(net_arch=[32, 32])",
}


class Killed(Exception):
    """The end of a session, in the middle of a chunk."""


def command(output: Path, label: str, *extra: str) -> list[str]:
    return [*TINY, "--variant", f"{label}={VARIANTS[label]}", "--output-dir", str(output), *extra]


def record(output: Path, label: str) -> RunRecord:
    return RunRecord(**json.loads((output / "runs" / label / "seed_0.json").read_text()))


def parameters(output: Path, label: str) -> dict[str, Any]:
    """Every state dict saved in the run's last checkpoint (the policy's, the optimizers')."""
    _data, params, _variables = load_from_zip_file(output / "checkpoints" / label / "seed_0" / "model.zip")
    assert params is not None
    return params


def same_tensors(first: Any, second: Any) -> bool:
    if isinstance(first, th.Tensor):
        return isinstance(second, th.Tensor) and th.equal(first, second)
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(same_tensors(first[key], second[key]) for key in first)
    if isinstance(first, list | tuple):
        return len(first) == len(second) and all(same_tensors(a, b) for a, b in zip(first, second, strict=True))
    return bool(first == second)


def assert_same_run(first: Path, second: Path, label: str) -> None:
    one, other = record(first, label), record(second, label)
    assert one.finished and other.finished and one.steps == other.steps == 600
    assert [point[:3] for point in one.evaluations] == [point[:3] for point in other.evaluations]  # steps, mean, std
    assert one.returns == other.returns
    assert same_tensors(parameters(first, label), parameters(second, label))


@pytest.mark.parametrize("label", list(VARIANTS))
def test_a_run_killed_part_way_ends_as_one_never_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str) -> None:
    main(command(tmp_path / "straight", label))
    on_step = scale.ChunkEvaluation._on_step

    def killed_at_300(self: scale.ChunkEvaluation) -> bool:
        if self.num_timesteps >= 300:
            raise Killed
        return on_step(self)

    monkeypatch.setattr(scale.ChunkEvaluation, "_on_step", killed_at_300)
    with pytest.raises(Killed):
        main(command(tmp_path / "killed", label))
    first_chunk = record(tmp_path / "killed", label)  # the checkpoint the next session starts from
    assert not first_chunk.finished and first_chunk.steps == (256 if label == "PPO" else 200)
    monkeypatch.undo()
    main(command(tmp_path / "killed", label))
    # OneStepAC, and here PPO and SAC too: everything they learn from is saved (envs, RNGs, VecNormalize, replay buffer)
    assert_same_run(tmp_path / "straight", tmp_path / "killed", label)


def test_mujoco_envs_are_saved_with_their_simulator_state() -> None:
    """Pickled as usual, a MuJoCo env is a new one (EzPickle); EnvPickler keeps qpos, qvel, warm start, RNG, counters."""
    pytest.importorskip("mujoco")
    env = make_vec_env("Hopper-v5", n_envs=2, seed=3)
    env.reset()
    actions = np.random.default_rng(0).uniform(-1, 1, (300, 2, 3)).astype(np.float32)
    for action in actions[:7]:
        env.step(action)
    buffer = io.BytesIO()
    scale.EnvPickler(buffer, protocol=5).dump(env)
    copy, fresh = pickle.loads(buffer.getvalue()), pickle.loads(pickle.dumps(env))
    steps = [(env.step(action), copy.step(action), fresh.step(action)) for action in actions[7:]]  # episodes end and reset
    assert all(np.array_equal(ours[0], saved[0]) and np.array_equal(ours[1], saved[1]) for ours, saved, _ in steps)
    assert not np.array_equal(steps[0][0][0], steps[0][2][0])


def test_the_deadline_stops_between_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    now = time.monotonic()
    assert scale.fits(None, None) and scale.fits(now + 60, 10) and not scale.fits(now + 60, 100)
    main(command(tmp_path / "straight", "OneStepAC"))
    answers = iter([True, False])  # the first chunk fits, the second would end past the deadline
    monkeypatch.setattr(scale, "fits", lambda deadline, estimate: next(answers))
    main(command(tmp_path / "stopped", "OneStepAC", "--deadline-minutes", "100"))
    assert (
        "deadline: OneStepAC seed 0 stopped at 200 of 600 env steps; 1 runs left (OneStepAC seed 0)" in capsys.readouterr().out
    )
    summary = json.loads((tmp_path / "stopped" / "summary.json").read_text())["summary"]["OneStepAC"]
    assert summary["seeds_finished"] == [] and summary["steps_of_unfinished_seeds"] == {"0": 200}
    assert len(pd.read_csv(tmp_path / "stopped" / "runs.csv")) == 2  # the evaluations at 0 and 200 steps
    monkeypatch.undo()
    main(command(tmp_path / "stopped", "OneStepAC"))
    assert_same_run(tmp_path / "straight", tmp_path / "stopped", "OneStepAC")


def test_chunks_train_as_one_learn_call(tmp_path: Path) -> None:
    """OneStepAC in chunks ends bit for bit where one learn(budget) of the package's train_and_evaluate does."""
    main(command(tmp_path, "OneStepAC"))
    single = train_and_evaluate(
        "one_step_ac", ENV, 0, 600, 200, 1, block={}, overrides={"learning_rate": "lin_1.0"}, save_path=tmp_path / "one.zip"
    )
    assert [[p.steps, p.mean_return] for p in single.curve] == [p[:2] for p in record(tmp_path, "OneStepAC").evaluations]
    assert same_tensors(load_from_zip_file(tmp_path / "one.zip")[1], parameters(tmp_path, "OneStepAC"))


def test_outputs_and_finished_runs_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    main(command(tmp_path, "SAC"))
    assert (tmp_path / ".gitignore").read_text() == "checkpoints/\n"
    assert not (tmp_path / "checkpoints" / "SAC" / "seed_0" / "replay_buffer.pkl").exists()  # finished: not needed
    runs, returns = pd.read_csv(tmp_path / "runs.csv"), pd.read_csv(tmp_path / "training_returns.csv")
    assert runs["steps"].tolist() == [0, 200, 400, 600] and (runs["variant"] == "SAC").all()
    assert returns["episodes"].sum() == 3 and returns["bin_start"].tolist() == [0]  # three 200-step episodes
    summary = json.loads((tmp_path / "summary.json").read_text())["summary"]["SAC"]
    assert summary["seeds_finished"] == [0] and summary["final_returns"] == [pytest.approx(runs["mean_return"].iloc[-1])]
    assert summary["training_return_last_100k"] == [pytest.approx(returns["mean_return"].iloc[0])]
    assert "| SAC | 600 | 1/1 |" in (tmp_path / "summary.md").read_text()
    saved = (tmp_path / "runs" / "SAC" / "seed_0.json").read_text()

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(scale, "make_model_and_env", fail)
    monkeypatch.setattr(scale, "load_checkpoint", fail)
    assert main(command(tmp_path, "SAC"))["SAC"]["seeds_finished"] == [0]
    assert (tmp_path / "runs" / "SAC" / "seed_0.json").read_text() == saved
    with pytest.raises(SystemExit, match="SAC seed 0 was run with"):  # results of other settings are not mixed in
        main(command(tmp_path, "SAC", "--budget", "800"))


@pytest.mark.parametrize(
    ("change", "option"),
    [
        (["--variant", "X=nope@defaults"], "--variant X: unknown algorithm 'nope'"),
        (["--variant", "X=sac"], "--variant X"),  # SAC has no config block: sac@defaults only
        (["--variant", "X=one_step_ac@defaults:gama=0.9"], "--variant X"),
        (["--budget", "0"], "--budget"),
        (["--budget", "-5"], "--budget"),
        (["--chunk", "0"], "--chunk"),
        (["--budget-for", "Y=1000"], "--budget-for"),
        (["--budget-for", "A=0"], "--budget-for"),
    ],
)
def test_bad_input_is_an_argparse_error(capsys: Any, change: list[str], option: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--env", ENV, "--variant", "A=one_step_ac@defaults", "--budget", "600", *change])
    assert exit_info.value.code == 2 and option in capsys.readouterr().err


class FakeMujocoEnv(EzPickle):
    """An env that pickles as its constructor's arguments and names its model file, as Gymnasium's MuJoCo envs do."""

    def __init__(self) -> None:
        EzPickle.__init__(self)
        self.fullpath = str(scale.GYMNASIUM_DIR / "envs" / "mujoco" / "assets" / "hopper.xml")
        self.steps = 7


def test_checkpointed_env_names_its_model_file_relative_to_gymnasium() -> None:
    env = FakeMujocoEnv()
    env.steps = 42  # state that a new env would not have: pickled as attributes, not as constructor arguments
    buffer = io.BytesIO()
    scale.EnvPickler(buffer, protocol=5).dump(env)
    assert str(scale.GYMNASIUM_DIR).encode() not in buffer.getvalue()
    restored = pickle.loads(buffer.getvalue())
    assert (restored.fullpath, restored.steps) == (env.fullpath, 42)
