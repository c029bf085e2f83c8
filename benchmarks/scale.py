"""Long runs that outlive a session: each run trains in chunks, ``learn(chunk, reset_num_timesteps=False)``, and is
checkpointed after every chunk.

    python -m benchmarks.scale --env Hopper-v5 --variant OneStepAC=one_step_ac@defaults --variant PPO-zoo=ppo \\
        --variant SAC=sac@defaults --seeds 5 --budget 1000000 --budget-for SAC=70000 --eval-freq 50000 \\
        --eval-episodes 5 --chunk 50000 --deadline-minutes 150 --output-dir benchmarks/results/scale/Hopper-v5

Runs go one after another, every variant's run of one seed before the next seed's. OUTPUT/checkpoints/LABEL/seed_N/
holds what a run goes on from: ``model.save`` (parameters, optimizers, OneStepAC's online state, the last observation),
SAC's replay buffer, VecNormalize's statistics, the training and evaluation envs (simulator state, step counters, RNGs),
the global RNGs and the run's record. Re-running the command skips finished runs and continues the others from their
checkpoint, ending as if never stopped (tests/test_scale.py). ``--deadline-minutes``: exit (status 0) before a chunk
estimated (from the run's last chunk, else another seed's) to end past the deadline.

Outputs: runs/LABEL/seed_N.json (each run's record, which re-runs and the tables read), runs.csv (one row per variant,
seed and evaluation), training_returns.csv (mean raw return of the training episodes that ended in each 10,000-step
bin), summary.json, summary.md; checkpoints/ is git-ignored (a finished run's replay buffer is deleted).
"""

import argparse
import contextlib
import copyreg
import json
import pickle
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pandas as pd
import torch as th
from gymnasium.utils import EzPickle
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from sb3_ac_plus.common.arguments import env_id_problem, positive_float, positive_int
from sb3_ac_plus.compare import Variant, comparison_jobs, parse_variant
from sb3_ac_plus.evaluation.training import DIVERGENCE_ERRORS, EvaluationPoint, PeriodicEvaluation, make_eval_env
from sb3_ac_plus.zoo import load_hyperparameters, make_model_and_env, parse_config
from sb3_ac_plus.zoo.algorithms import get_algorithm_class

RETURN_BIN = 10_000  # env steps per bin of training returns
LAST_STEPS = 100_000  # the summary's training return: episodes that ended in the bins of the last 100k steps


@dataclass
class RunRecord:
    """One run so far. ``evaluations``: ``[steps, mean, std, training seconds, wall seconds]`` each; ``returns``: per bin
    start, ``[sum, count]`` of the returns of the training episodes that ended there; ``wall_seconds``: inside learn()
    (training and evaluation, not checkpointing); ``seconds_per_step``: the last chunk's, for the deadline."""

    settings: dict[str, Any]
    steps: int = 0
    evaluations: list[list[float]] = field(default_factory=list)
    next_eval: int = 0
    returns: dict[str, list[float]] = field(default_factory=dict)
    wall_seconds: float = 0.0
    eval_seconds: float = 0.0
    seconds_per_step: float | None = None
    finished: bool = False
    diverged_at: int | None = None
    error: str | None = None

    @property
    def train_seconds(self) -> float:
        return self.wall_seconds - self.eval_seconds

    def last_training_return(self) -> float | None:
        """The mean return of the training episodes that ended in the last ``LAST_STEPS`` steps (bins whose start is in
        them); None if none did."""
        bins = [value for start, value in self.returns.items() if int(start) >= self.steps - LAST_STEPS]
        episodes = sum(count for _, count in bins)
        return sum(total for total, _ in bins) / episodes if episodes else None


class ChunkEvaluation(PeriodicEvaluation):
    """PeriodicEvaluation carried over the chunks of the run ``record``: it goes on with its evaluations and clocks, ends
    a chunk without evaluating unless the run ends there, and bins the training returns by the step their episode ended.

    :param budget: the run's env steps
    """

    def __init__(self, eval_env: VecEnv, record: RunRecord, eval_freq: int, n_eval_episodes: int, budget: int) -> None:
        super().__init__(eval_env, eval_freq, n_eval_episodes, budget)
        self.record, self.run_budget, self.ends_run = record, budget, False
        self.points = [EvaluationPoint(*point) for point in record.evaluations]  # type: ignore[arg-type]
        self._next_eval = record.next_eval or eval_freq

    def _on_training_start(self) -> None:
        self._start, self._eval_seconds = time.perf_counter() - self.record.wall_seconds, self.record.eval_seconds
        if not self.points:
            self._evaluate()

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if "episode" in info:
                total = self.record.returns.setdefault(str(self.num_timesteps // RETURN_BIN * RETURN_BIN), [0.0, 0])
                total[0] += float(info["episode"]["r"])
                total[1] += 1
        return super()._on_step()

    def _on_training_end(self) -> None:
        if self.ends_run or self.num_timesteps >= self.run_budget:
            super()._on_training_end()
        self.record.evaluations = [list(asdict(point).values()) for point in self.points]
        self.record.next_eval, self.record.eval_seconds = self._next_eval, self._eval_seconds
        self.record.wall_seconds = time.perf_counter() - self._start


@contextlib.contextmanager
def progress_against(model: BaseAlgorithm, budget: int) -> Iterator[None]:
    """SB3 measures the progress of schedules (``lin_...``) against the end of the current learn() call, so a schedule
    would start over at every chunk: while this lasts, the model measures it against the budget, as one learn(budget)."""

    def update(num_timesteps: int, total_timesteps: int) -> None:
        model._current_progress_remaining = 1.0 - float(num_timesteps) / float(budget)

    setattr(model, "_update_current_progress_remaining", update)  # noqa: B010 (shadows the method for this model only)
    try:
        yield
    finally:
        delattr(model, "_update_current_progress_remaining")


# A MuJoCo env's model file (its ``fullpath``), kept relative to the installed Gymnasium in a checkpoint, so that a
# committed checkpoint names no folder of the machine that wrote it and loads where Gymnasium is installed elsewhere
GYMNASIUM_DIR = Path(gymnasium.__file__).parent


def _set_attributes(obj: Any, state: dict[str, Any]) -> None:
    path = state.get("fullpath")
    if isinstance(path, str) and not Path(path).is_absolute():
        state = {**state, "fullpath": str(GYMNASIUM_DIR / path)}
    obj.__dict__.update(state)


class EnvPickler(pickle.Pickler):
    """Gymnasium's MuJoCo envs pickle as their constructor's arguments (EzPickle), i.e. as a new env: this pickles their
    attributes instead, the simulator's state (MjData) with them."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, EzPickle):
            state, path = obj.__dict__, obj.__dict__.get("fullpath")
            if isinstance(path, str) and Path(path).is_relative_to(GYMNASIUM_DIR):
                state = {**state, "fullpath": str(Path(path).relative_to(GYMNASIUM_DIR))}
            return copyreg.__newobj__, (type(obj),), state, None, None, _set_attributes  # type: ignore[attr-defined]
        return NotImplemented


def save_checkpoint(folder: Path, model: BaseAlgorithm, env: VecEnv, eval_env: VecEnv, record: RunRecord) -> None:
    """Write the checkpoint beside ``folder``, then swap it in: a kill while writing leaves the last one whole."""
    partial, old = folder.with_name(folder.name + ".partial"), folder.with_name(folder.name + ".old")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save(partial / "model.zip")
    if isinstance(model, OffPolicyAlgorithm):
        model.save_replay_buffer(partial / "replay_buffer.pkl")
    if isinstance(env, VecNormalize):
        env.save(str(partial / "vecnormalize.pkl"))
    rng = {"torch": th.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate()}
    rng["action_space"] = model.action_space.np_random.bit_generator.state
    envs = [e.venv if isinstance(e, VecNormalize) else e for e in (env, eval_env)]
    with open(partial / "state.pkl", "wb") as file:
        EnvPickler(file, protocol=5).dump({"envs": envs, "rng": rng, "returns": getattr(env, "returns", None)})
    (partial / "record.json").write_text(json.dumps(asdict(record)))
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, algo: str) -> tuple[BaseAlgorithm, VecEnv, VecEnv, RunRecord]:
    """The model, envs and record of a checkpoint, every RNG where it was."""
    with open(folder / "state.pkl", "rb") as file:
        state = pickle.load(file)
    env, eval_env = state["envs"]
    if (folder / "vecnormalize.pkl").exists():
        env = VecNormalize.load(str(folder / "vecnormalize.pkl"), env)
        env.returns = state["returns"]  # the running discounted returns, which VecNormalize.save leaves out
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)  # as make_eval_env (synced before use)
    # force_reset=False: go on from the saved last observation, in the restored envs
    model = get_algorithm_class(algo).load(folder / "model.zip", env=env, force_reset=False)
    if isinstance(model, OffPolicyAlgorithm):
        model.load_replay_buffer(folder / "replay_buffer.pkl")
    rng = state["rng"]  # put back after load(), which reseeds them (_setup_model calls set_random_seed)
    th.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["random"])
    model.action_space.np_random.bit_generator.state = rng["action_space"]
    return model, env, eval_env, RunRecord(**json.loads((folder / "record.json").read_text()))


def read_record(path: Path) -> RunRecord | None:
    return RunRecord(**json.loads(path.read_text())) if path.exists() else None


def write_record(path: Path, record: RunRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(asdict(record)))
    path.with_suffix(".tmp").replace(path)


def read_records(args: argparse.Namespace) -> dict[tuple[str, int], RunRecord | None]:
    """The published record of every run of the command, None for those not started, in the order they run."""
    jobs = comparison_jobs(args.variant, 0, args.seeds)
    return {(v.label, seed): read_record(args.output_dir / "runs" / v.label / f"seed_{seed}.json") for v, seed in jobs}


def run_settings(args: argparse.Namespace, variant: Variant) -> dict[str, Any]:
    """What a run's results depend on: a run is continued only with the same."""
    budget, freq, episodes = args.budgets[variant.label], args.eval_freq, args.eval_episodes
    return dict(env=args.env, **variant._asdict(), budget=budget, eval_freq=freq, eval_episodes=episodes)


def same_settings(record: RunRecord, settings: dict[str, Any], run: str) -> None:
    """A run is continued, or counted as finished, only with the settings it was started with."""
    if record.settings != settings:
        raise SystemExit(f"error: {run} was run with {record.settings}, not {settings}: use another --output-dir")


def fits(deadline: float | None, estimate: float | None) -> bool:
    """Whether a chunk estimated to take ``estimate`` seconds (None: unknown) ends before ``deadline`` (monotonic)."""
    return deadline is None or time.monotonic() + (estimate or 0.0) < deadline


def run(args: argparse.Namespace, variant: Variant, seed: int, deadline: float | None) -> str | None:
    """Train one run to its budget, a chunk at a time, from its checkpoint if it has one.

    :return: None once the run is finished, else why it stopped (the deadline)
    """
    label, budget, settings = variant.label, args.budgets[variant.label], run_settings(args, variant)
    published, folder = args.output_dir / "runs" / label / f"seed_{seed}.json", args.output_dir / "checkpoints" / label
    record = read_record(published)
    if record is not None and record.finished:
        same_settings(record, settings, f"{label} seed {seed}")
        return None
    old = folder / f"seed_{seed}.old"  # a kill between the two renames of save_checkpoint leaves only this one
    folder = folder / f"seed_{seed}"
    if folder.exists() or old.exists():
        model, env, eval_env, record = load_checkpoint(folder if folder.exists() else old, variant.algo)
        same_settings(record, settings, f"{label} seed {seed}")
    else:
        block: dict[str, Any] | None = {} if variant.from_defaults else None
        model, env, _ = make_model_and_env(
            variant.algo, args.env, seed=seed, n_timesteps=budget, block=block, **variant.overrides
        )
        eval_env, record = make_eval_env(model, args.env, seed), RunRecord(settings)
    others = [read_record(path) for path in published.parent.glob("seed_*.json") if path != published]
    callback = ChunkEvaluation(eval_env, record, args.eval_freq, args.eval_episodes, budget)
    saving = 0.0  # seconds of the last checkpoint
    try:
        while not record.finished:
            steps = min(args.chunk, budget - model.num_timesteps)
            known = [other.seconds_per_step for other in others if other is not None and other.seconds_per_step]
            per_step = record.seconds_per_step or max(known, default=None)
            if not fits(deadline, None if per_step is None else per_step * steps + saving):
                return f"deadline: {label} seed {seed} stopped at {record.steps:,} of {budget:,} env steps"
            begin = time.perf_counter()
            try:
                with progress_against(model, budget):
                    model.learn(steps, callback=callback, reset_num_timesteps=False)
            except DIVERGENCE_ERRORS as error:
                callback.ends_run = True
                callback.evaluate_where_stopped()
                record.diverged_at, record.error = model.num_timesteps, f"{type(error).__name__}: {error}"
            record.seconds_per_step = (time.perf_counter() - begin) / max(1, model.num_timesteps - record.steps)
            record.steps = model.num_timesteps
            record.finished = record.diverged_at is not None or record.steps >= budget
            begin = time.perf_counter()
            save_checkpoint(folder, model, env, eval_env, record)
            saving = time.perf_counter() - begin
            write_record(published, record)
            write_outputs(args)
            steps_done, last = f"{record.steps:,}/{budget:,} env steps", record.evaluations[-1]
            print(f"{label} seed {seed}: {steps_done}, evaluation at {last[0]:,}: {last[1]:.1f}", flush=True)
        write_record(published, record)  # also when a kill came between the last checkpoint and its publication
        (folder / "replay_buffer.pkl").unlink(missing_ok=True)
        return None
    finally:
        env.close()
        eval_env.close()


def summarize(args: argparse.Namespace, records: dict[tuple[str, int], RunRecord]) -> dict[str, dict[str, Any]]:
    """Per variant: seeds finished, their final deterministic return (mean, per seed) and mean training return over the
    last ``LAST_STEPS`` env steps, the median env-steps/s (training time only) of the runs started, divergences."""
    summary = {}
    for variant in args.variant:
        runs = {seed: record for (label, seed), record in records.items() if label == variant.label}
        done = {seed: record for seed, record in runs.items() if record.finished}
        finals = [record.evaluations[-1][1] for record in done.values()]
        speeds = [record.steps / record.train_seconds for record in runs.values() if record.train_seconds > 0]
        summary[variant.label] = {
            **run_settings(args, variant),
            "seeds_finished": list(done),
            "steps_of_unfinished_seeds": {str(seed): run.steps for seed, run in runs.items() if not run.finished},
            "final_return_mean": statistics.mean(finals) if finals else None,
            "final_returns": finals,
            "training_return_last_100k": [record.last_training_return() for record in done.values()],
            "median_env_steps_per_second": statistics.median(speeds) if speeds else None,
            "diverged_at": {str(seed): run.diverged_at for seed, run in done.items() if run.diverged_at is not None},
        }
    return summary


def markdown(args: argparse.Namespace, summary: dict[str, dict[str, Any]]) -> str:
    def shown(value: float | None, form: str = ".1f") -> str:
        return "n/a" if value is None else format(value, form)

    lines = [
        f"{args.env}, seeds 0-{args.seeds - 1}: deterministic return (mean of {args.eval_episodes} episodes) at the end, "
        f"and mean return of the training episodes of the last {LAST_STEPS:,} env steps.",
        "",
        "| variant | env steps | seeds finished | final return: mean (per seed) | training return, last 100k (per seed) "
        "| env-steps/s (median) |",
        "|---|---:|---:|---|---|---:|",
    ]
    for label, row in summary.items():
        finals, train = (", ".join(map(shown, row[key])) for key in ("final_returns", "training_return_last_100k"))
        lines.append(
            f"| {label} | {row['budget']:,} | {len(row['seeds_finished'])}/{args.seeds} | "
            f"{shown(row['final_return_mean'])} ({finals}) | {train} | {shown(row['median_env_steps_per_second'], '.0f')} |"
        )
    diverged = [
        f"{label} seed {seed} at {step:,}" for label, row in summary.items() for seed, step in row["diverged_at"].items()
    ]
    if diverged:
        lines += ["", f"Diverged (a non-finite value stopped training): {'; '.join(diverged)}."]
    return "\n".join(lines) + "\n"


def write_outputs(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """runs.csv, training_returns.csv, summary.json and summary.md, from the records of the command's runs."""
    records = {key: record for key, record in read_records(args).items() if record is not None}
    columns = ["variant", "seed", "steps", "mean_return", "std_return", "train_seconds"]
    rows = [[*key, *point[:4]] for key, record in records.items() for point in record.evaluations]
    pd.DataFrame(rows, columns=columns).to_csv(args.output_dir / "runs.csv", index=False, float_format="%.8g")
    columns = ["variant", "seed", "bin_start", "mean_return", "episodes"]
    rows = [
        [*key, int(start), total / count, count]
        for key, record in records.items()
        for start, (total, count) in sorted(record.returns.items(), key=lambda item: int(item[0]))
    ]
    pd.DataFrame(rows, columns=columns).to_csv(args.output_dir / "training_returns.csv", index=False, float_format="%.8g")
    summary = summarize(args, records)
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    settings["variant"] = [variant._asdict() for variant in args.variant]
    with open(args.output_dir / "summary.json", "w") as file:
        json.dump({"env": args.env, "settings": settings, "summary": summary}, file, indent=1, allow_nan=False)
    (args.output_dir / "summary.md").write_text(markdown(args, summary))
    return summary


def label_budget(text: str) -> tuple[str, int]:
    """``LABEL=STEPS``, e.g. ``SAC=70000``."""
    label, equals, steps = text.partition("=")
    if not equals or not label:
        raise argparse.ArgumentTypeError(f"expected LABEL=STEPS, got {text!r}")
    return label, positive_int(steps)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", required=True, help="Gymnasium env id")
    parser.add_argument(
        "--variant", action="append", type=parse_variant, required=True, metavar="LABEL=ALGO[@defaults][:KEY=VALUE,...]",
        help="a row (repeatable), as in python -m sb3_ac_plus.compare; sac has no config block: sac@defaults",
    )  # fmt: skip
    parser.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 per variant (default: 5)")
    parser.add_argument("--budget", type=positive_int, required=True, help="env steps per run")
    parser.add_argument("--budget-for", type=label_budget, action="append", default=[], metavar="LABEL=STEPS",
                        help="another budget for one variant (repeatable)")  # fmt: skip
    parser.add_argument(
        "--eval-freq", type=positive_int, default=50_000, help="env steps between evaluations (default: 50000)"
    )
    parser.add_argument(
        "--eval-episodes", type=positive_int, default=5, help="deterministic episodes per evaluation (default: 5)"
    )
    parser.add_argument("--chunk", type=positive_int, default=50_000, help="env steps between checkpoints (default: 50000)")
    parser.add_argument("--deadline-minutes", type=positive_float, default=None, help="stop before a chunk ending later")
    parser.add_argument("--output-dir", type=Path, default=None, help="default: benchmarks/results/scale/<env>/")
    args = parser.parse_args(argv)
    problem = env_id_problem(args.env)
    if problem:
        parser.error(f"--env: {problem}")
    labels = [variant.label for variant in args.variant]
    for variant in args.variant:
        if labels.count(variant.label) > 1 or not re.fullmatch(r"[\w.+-]+", variant.label):
            parser.error(f"--variant {variant.label}: labels name folders: one each, of letters, digits and _.+-")
        try:
            block = {} if variant.from_defaults else load_hyperparameters(variant.algo, args.env)
            parse_config(variant.algo, args.env, {**block, **variant.overrides, "n_timesteps": args.budget})
        except ValueError as error:
            parser.error(f"--variant {variant.label}: {error}")
    unknown = [label for label, _ in args.budget_for if label not in labels]
    if unknown:
        parser.error(f"--budget-for: no --variant labelled {', '.join(unknown)}")
    args.budgets = {label: args.budget for label in labels} | dict(args.budget_for)
    args.output_dir = args.output_dir or Path("benchmarks/results/scale") / args.env
    return args


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    args = parse_args(argv)
    deadline = None if args.deadline_minutes is None else time.monotonic() + 60 * args.deadline_minutes
    th.set_num_threads(1)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / ".gitignore").write_text("checkpoints/\n")
    jobs = comparison_jobs(args.variant, 0, args.seeds)
    for variant, seed in jobs:
        stopped = run(args, variant, seed, deadline)
        if stopped is not None:
            left = [
                f"{label} seed {seed}"
                for (label, seed), record in read_records(args).items()
                if not record or not record.finished
            ]
            print(f"{stopped}; {len(left)} runs left ({', '.join(left)}): run the same command again to go on.")
            return write_outputs(args)
    summary = write_outputs(args)
    print(f"{markdown(args, summary)}\nAll {len(jobs)} runs finished; results in {args.output_dir}/")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
