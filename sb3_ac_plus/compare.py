"""Compare algorithms on one env, each with its hyperparameters from the package's zoo_configs/, over several seeds.

    python -m sb3_ac_plus.compare --env CartPole-v1 --algos one_step_ac a2c ppo --seeds 5 --budget 30000

Every run is evaluated deterministically before training, every ``--eval-freq`` env steps and at the end, on a
separate env. Per algorithm: the IQM over seeds of the final return (the mean return of the last evaluation) with a 95%
stratified bootstrap confidence interval; how many seeds reach the env's reward threshold, with the median env steps and
training seconds to reach it; the share of training episodes (the exploring policy's, not the deterministic one's)
whose return reached the threshold; and env-steps/s (training only, evaluation excluded). Seeds run in ``--workers`` worker
processes. Outputs in ``--output-dir``: runs.csv (one row per algorithm, seed and evaluation; rewritten as each run
finishes, so a comparison stopped part way keeps its finished runs), summary.json,
summary.md (the table) and curves.png (IQM curve per algorithm with its 95% bootstrap band). If that folder already
holds results, they are kept: the new ones go to a timestamped subfolder, unless ``--overwrite``. In summary.json a
threshold not reached, or an env without one, is null.

A run that diverges (training stopped by a non-finite value: OneStepAC's NonFiniteError, or a float overflow) does not
stop the comparison: it is reported with a warning, its final return is its last evaluation (of the policy it stopped
with, evaluated at the step it stopped), and runs.csv (``diverged_at``), summary.json (``diverged_at``,
``seeds_diverged``) and summary.md (a line under the table) say which seeds diverged and when.
"""

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import pandas as pd
import yaml
from tqdm import tqdm

from sb3_ac_plus.common.arguments import env_id_problem, non_negative_int, positive_int
from sb3_ac_plus.evaluation.plots import plot_learning_curves
from sb3_ac_plus.zoo.algorithms import DEFAULT_COMPARED
from sb3_ac_plus.evaluation.statistics import iqm_with_ci, steps_to_threshold
from sb3_ac_plus.evaluation.training import RunResult, train_and_evaluate

RESULT_FILES = ("runs.csv", "summary.json", "summary.md", "curves.png")


def reward_threshold(env_id: str) -> float | None:
    """The env's ``spec.reward_threshold`` (None for envs without one, such as Pendulum-v1)."""
    return gym.spec(env_id).reward_threshold


def results_dir(output_dir: Path, overwrite: bool) -> Path:
    """``output_dir``, or a new timestamped subfolder of it if it already holds results and ``overwrite`` is False."""
    if overwrite or not any((output_dir / name).exists() for name in RESULT_FILES):
        return output_dir
    stamped = output_dir / time.strftime("%Y%m%d-%H%M%S")
    suffix = 1
    while stamped.exists():
        stamped = output_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{suffix}"
        suffix += 1
    return stamped


class Variant(NamedTuple):
    """What one row of the comparison trains: an algorithm's config, with some keys replaced."""

    label: str
    algo: str
    overrides: dict[str, Any]
    from_defaults: bool = False
    """start from the algorithm's own defaults on one env instead of its config block"""


def parse_variant(text: str) -> Variant:
    """
    ``LABEL=ALGO[@defaults][:KEY=VALUE,KEY=VALUE...]``, e.g. ``pink=one_step_ac:noise_beta=1.0`` or
    ``small=one_step_ac:policy_kwargs=dict(net_arch=[64, 64]),n_envs=8`` (commas inside brackets belong to the value);
    values are read as YAML scalars (``8`` an int, ``1e-3`` a string: write ``1.0e-3``; ``lin_7e-4`` a schedule, as in
    the configs).
    ``ALGO@defaults`` starts from the algorithm's defaults on one env (no config block).

    :raises argparse.ArgumentTypeError: for a malformed variant
    """
    label, _, rest = text.partition("=")
    algo, _, settings = rest.partition(":")
    if not label or not algo:
        raise argparse.ArgumentTypeError(f"expected LABEL=ALGO[:KEY=VALUE,...], got {text!r}")
    algo, at, base = algo.partition("@")
    if at and base != "defaults":
        raise argparse.ArgumentTypeError(f"{text!r}: ALGO@{base}: only ALGO@defaults is known")
    overrides: dict[str, Any] = {}
    for item in filter(None, _top_level_items(settings)):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, got {item!r}")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or error
            raise argparse.ArgumentTypeError(f"{text!r}: {key}: not a YAML value ({problem})") from None
    return Variant(label, algo, overrides, from_defaults=bool(at))


def _top_level_items(settings: str) -> list[str]:
    """Split ``KEY=VALUE,KEY=VALUE`` at the commas outside brackets (``policy_kwargs=dict(net_arch=[64, 64])`` is one)."""
    items, depth, start = [], 0, 0
    for position, char in enumerate(settings):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(settings[start:position])
            start = position + 1
    if depth != 0:
        raise argparse.ArgumentTypeError(f"unbalanced brackets in {settings!r}")
    items.append(settings[start:])
    return [item.strip() for item in items]


def comparison_jobs(variants: Sequence[Variant], first_seed: int, n_seeds: int) -> list[tuple[Variant, int]]:
    """
    The runs of a comparison, seed by seed: every variant's run of one seed before any of the next seed's.

    Interleaved so that a machine whose speed drifts during the comparison (other load, clock changes) slows every
    variant alike, and the seconds they are compared on stay comparable; the returns do not depend on the order.

    :param variants: the variants compared
    :param first_seed: the first seed
    :param n_seeds: how many seeds
    :return: the ``(variant, seed)`` pairs, in the order they are started
    """
    return [(variant, seed) for seed in range(first_seed, first_seed + n_seeds) for variant in variants]


def run_all(
    jobs: Sequence[tuple[Variant, int]],
    env_id: str,
    workers: int,
    progress: bool = True,
    on_result: Callable[[list[RunResult]], None] | None = None,
    **kwargs: Any,
) -> list[RunResult]:
    """Run ``train_and_evaluate`` for every ``(variant, seed)``; with ``workers > 1`` in that many spawned processes.

    :param on_result: called with the runs finished so far each time one finishes (the comparison saves them)
    """
    bar = tqdm(total=len(jobs), desc=f"{env_id} runs", unit="run", disable=not progress)
    results: list[RunResult] = []

    def arguments(variant: Variant, seed: int) -> dict[str, Any]:
        block: dict[str, Any] | None = {} if variant.from_defaults else None
        return dict(algo=variant.algo, env_id=env_id, seed=seed, overrides=variant.overrides, label=variant.label, block=block)

    if workers == 1:
        for variant, seed in jobs:
            results.append(train_and_evaluate(**arguments(variant, seed), **kwargs))
            if on_result is not None:
                on_result(results)
            bar.update()
    else:
        # forkserver/spawn: a fork would copy the parent's torch threads and locks into the workers.
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
            futures = [pool.submit(train_and_evaluate, **arguments(variant, seed), **kwargs) for variant, seed in jobs]
            for future in as_completed(futures):
                results.append(future.result())
                if on_result is not None:
                    on_result(results)
                bar.update()
    bar.close()
    labels = list(dict.fromkeys(variant.label for variant, _ in jobs))
    return sorted(results, key=lambda result: (labels.index(result.algo), result.seed))


def runs_table(results: Sequence[RunResult]) -> pd.DataFrame:
    """One row per algorithm, seed and evaluation; ``diverged_at`` is empty but for the rows of a run that diverged."""
    rows = [
        {
            "algo": run.algo,
            "env": run.env_id,
            "seed": run.seed,
            "eval_index": index,
            **vars(point),
            "diverged_at": run.diverged_at,
        }
        for run in results
        for index, point in enumerate(run.curve)
    ]
    return pd.DataFrame(rows).astype({"diverged_at": "Int64"})  # integers, empty where a run did not diverge


def summarize(results: Sequence[RunResult], threshold: float | None) -> dict[str, dict[str, Any]]:
    """Per algorithm: IQM of the final return with its 95% CI, threshold statistics, env-steps/s and divergences.

    A run's final return is the mean return of its last evaluation; for a run that diverged, that of the policy it
    stopped with, evaluated at the step it stopped.
    """
    summary: dict[str, dict[str, Any]] = {}
    for algo in dict.fromkeys(run.algo for run in results):
        runs = [run for run in results if run.algo == algo]
        finals = [run.curve[-1].mean_return for run in runs]
        point, lower, upper = iqm_with_ci(finals)
        steps_to, seconds_to = [], []
        for run in runs:
            steps = steps_to_threshold([p.steps for p in run.curve], [p.mean_return for p in run.curve], threshold)
            steps_to.append(steps)
            hit = next((p.train_seconds for p in run.curve if p.steps == steps), math.inf)
            seconds_to.append(math.nan if threshold is None else hit)
        summary[algo] = {
            "seeds": [run.seed for run in runs],
            "final_returns": finals,
            "final_return_iqm": point,
            "final_return_ci95": [lower, upper],
            "final_return_min": min(finals),
            "final_return_max": max(finals),
            "threshold": threshold,
            "seeds_reaching_threshold": None if threshold is None else sum(math.isfinite(s) for s in steps_to),
            # of those, the seeds whose last evaluation is still at the threshold: a solved policy that stays solved
            "seeds_ending_at_threshold": None
            if threshold is None
            else sum(bool(math.isfinite(s) and final >= threshold) for s, final in zip(steps_to, finals, strict=True)),
            "steps_to_threshold": steps_to,
            "seconds_to_threshold": seconds_to,
            # The median of a list with inf beyond its middle is inf: "not reached by most seeds".
            "median_steps_to_threshold": statistics.median(steps_to),
            "median_seconds_to_threshold": statistics.median(seconds_to),
            # The exploring policy's side: training episodes that ended, and those whose return reached the threshold.
            "training_episodes": [len(run.train_returns) for run in runs],
            "training_episodes_reaching_threshold": None
            if threshold is None
            else [sum(value >= threshold for value in run.train_returns) for run in runs],
            "total_steps": [run.total_steps for run in runs],
            "train_seconds": [run.train_seconds for run in runs],
            "steps_per_second": statistics.mean(run.steps_per_second for run in runs),
            # How many seeds diverged; per seed, the env steps at which training stopped (null: it did not diverge) and
            # the error that stopped it.
            "seeds_diverged": sum(run.diverged_at is not None for run in runs),
            "diverged_at": [run.diverged_at for run in runs],
            "divergence_errors": [run.error for run in runs],
        }
    return summary


def _reached(value: float, budget: int, unit: str = "") -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return f"> {budget:,}" if not unit else "not reached"
    return f"{value:,.0f}" if not unit else f"{value:.1f}{unit}"


def _episode_share(row: dict[str, Any]) -> str:
    """``31% of 254``: the share of all seeds' training episodes whose return reached the threshold."""
    episodes = sum(row["training_episodes"])
    if row["training_episodes_reaching_threshold"] is None or episodes == 0:
        return "n/a"
    return f"{sum(row['training_episodes_reaching_threshold']) / episodes:.0%} of {episodes:,}"


def markdown_table(summary: dict[str, dict[str, Any]], env_id: str, threshold: float | None) -> str:
    """The table of summary.md: one row per algorithm; the threshold columns only for an env with a reward threshold.

    :param summary: the output of :func:`summarize`
    :param env_id: the env, named when it has no reward threshold
    :param threshold: the env's reward threshold, or None
    :return: the Markdown table, with the divergence note (if any) and, without a threshold, a line saying so
    """
    if threshold is None:
        lines = [
            f"{env_id} has no reward threshold: no seeds, steps or episodes reaching it to report.",
            "",
            "| algorithm | final return IQM [95% CI] | env-steps/s |",
            "|---|---:|---:|",
        ]
    else:
        shown = f"{threshold:g}"
        lines = [
            f"| algorithm | final return IQM [95% CI] | seeds reaching {shown} (still at the end) | median steps to {shown} "
            f"| median training seconds to {shown} | training episodes reaching {shown} | env-steps/s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
    for algo, row in summary.items():
        lower, upper = row["final_return_ci95"]
        cells = [algo, f"{row['final_return_iqm']:.1f} [{lower:.1f}, {upper:.1f}]"]
        if threshold is not None:
            budget = max(row["total_steps"])
            cells += [
                f"{row['seeds_reaching_threshold']}/{len(row['seeds'])} ({row['seeds_ending_at_threshold']})",
                _reached(row["median_steps_to_threshold"], budget),
                _reached(row["median_seconds_to_threshold"], budget, " s"),
                _episode_share(row),
            ]
        cells.append(f"{row['steps_per_second']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + divergence_note(summary)


def divergence_note(summary: dict[str, dict[str, Any]]) -> str:
    """A line under the table saying how many seeds of each algorithm diverged; empty if none did."""
    if not any(row["seeds_diverged"] for row in summary.values()):
        return ""
    counts = []
    for algo, row in summary.items():
        stops = zip(row["seeds"], row["diverged_at"], strict=True)
        where = [f"seed {seed} at {steps:,} steps" for seed, steps in stops if steps is not None]
        counts.append(f"{algo} {row['seeds_diverged']}/{len(row['seeds'])}" + (f" ({', '.join(where)})" if where else ""))
    return (
        f"\nSeeds that diverged (training stopped by a non-finite value; their final return is their last evaluation, "
        f"of the policy they stopped with): {'; '.join(counts)}.\n"
    )


def divergence_warning(run: RunResult) -> str:
    """The line printed when a run that diverged finishes: algorithm, seed, step and error."""
    return (
        f"warning: {run.algo} seed {run.seed} diverged at {run.diverged_at:,} env steps ({run.error}); "
        f"its final return is its last evaluation"
    )


def _json_safe(value: Any) -> Any:
    """Strict JSON: a threshold not reached (inf) or absent (nan) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def build_parser(algos: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sb3_ac_plus.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium env id (default: CartPole-v1)")
    default = [algo for algo in algos if algo in DEFAULT_COMPARED] or list(algos)
    parser.add_argument(
        "--algos",
        nargs="+",
        default=None,
        choices=list(algos),
        help=f"algorithms to compare (default: {' '.join(default)}; trpo is sb3-contrib's TRPO)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        default=[],
        metavar="LABEL=ALGO[@defaults][:KEY=VALUE,...]",
        help="also compare a row LABEL (repeatable): ALGO's config block for the env, with keys replaced; "
        "ALGO@defaults starts instead from the algorithm's own defaults on one env (no config block; needs --budget). "
        "VALUEs are YAML scalars (8, 1.0e-3, lin_7e-4, true); commas inside brackets belong to the value "
        "(policy_kwargs=dict(net_arch=[64, 64]),n_envs=8). E.g. pink=one_step_ac:noise_beta=1.0, "
        "8envs=one_step_ac:n_envs=8, ppo-defaults=ppo@defaults. With --variant only, no --algos run unless given",
    )
    parser.add_argument("--seeds", type=positive_int, default=10, help="seeds per algorithm, FIRST..FIRST+N-1 (default: 10)")
    parser.add_argument(
        "--first-seed",
        type=non_negative_int,
        default=0,
        help="the first seed (default: 0); e.g. --first-seed 10 checks on seeds a config was not chosen on",
    )
    parser.add_argument(
        "--budget",
        type=positive_int,
        default=None,
        help="env steps per run, one budget for every algorithm (default: each config's n_timesteps)",
    )
    parser.add_argument("--eval-freq", type=positive_int, default=2000, help="env steps between evaluations (default: 2000)")
    parser.add_argument(
        "--eval-episodes", type=positive_int, default=10, help="deterministic episodes per evaluation (default: 10)"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=2, help="parallel worker processes; 1 runs in this process (default: 2)"
    )
    parser.add_argument(
        "--config-dir", type=Path, default=None, help="folder of <algo>.yml configs (default: the package's zoo_configs/)"
    )
    parser.add_argument("--output-dir", type=Path, default=None, help="default: results/compare/<env>/")
    parser.add_argument("--overwrite", action="store_true", help="write into --output-dir even if it holds results")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def parse_args(argv: Sequence[str] | None, algos: Sequence[str]) -> argparse.Namespace:
    parser = build_parser(algos)
    args = parser.parse_args(argv)
    problem = env_id_problem(args.env)
    if problem:
        parser.error(f"--env: {problem}")
    if args.algos is None:
        args.algos = [] if args.variant else [algo for algo in algos if algo in DEFAULT_COMPARED] or list(algos)
    for variant in args.variant:
        if variant.from_defaults and args.budget is None:
            parser.error(f"--variant {variant.label}: {variant.algo}@defaults has no config budget; give --budget")
        if variant.algo not in algos:
            parser.error(f"--variant {variant.label}: unknown algorithm {variant.algo!r}; choose from {', '.join(algos)}")
    labels = [*args.algos, *(variant.label for variant in args.variant)]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        parser.error(f"--algos/--variant: each row needs its own label; repeated: {', '.join(repeated)}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    from sb3_ac_plus.zoo import ALGOS, load_hyperparameters  # imported here: tests stand in for the zoo

    args = parse_args(argv, list(ALGOS))
    variants = [Variant(algo, algo, {}) for algo in args.algos] + args.variant
    # A row from the algorithm's defaults needs no config block for the env.
    for algo in dict.fromkeys(variant.algo for variant in variants if not variant.from_defaults):
        try:
            load_hyperparameters(algo, args.env, config_dir=args.config_dir)
        except (KeyError, ValueError, FileNotFoundError) as error:
            build_parser(list(ALGOS)).error(f"--env: no {algo} config for {args.env} ({error})")
    output_dir = results_dir(args.output_dir or Path("results") / "compare" / args.env, args.overwrite)
    threshold = reward_threshold(args.env)

    jobs = comparison_jobs(variants, args.first_seed, args.seeds)
    output_dir.mkdir(parents=True, exist_ok=True)

    def save_finished(finished: list[RunResult]) -> None:
        # runs.csv grows as runs finish, so a comparison stopped part way keeps what it measured
        runs_table(finished).to_csv(output_dir / "runs.csv", index=False)
        if finished[-1].diverged_at is not None:  # the run that just finished
            tqdm.write(divergence_warning(finished[-1]), file=sys.stderr)

    start = time.perf_counter()
    results = run_all(
        jobs,
        args.env,
        min(args.workers, len(jobs)),
        progress=not args.no_progress,
        on_result=save_finished,
        budget=args.budget,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        config_dir=args.config_dir,
    )
    elapsed = time.perf_counter() - start

    summary = summarize(results, threshold)
    table = markdown_table(summary, args.env, threshold)
    runs = runs_table(results)
    runs.to_csv(output_dir / "runs.csv", index=False)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings["variant"] = [variant._asdict() for variant in args.variant]
    with open(output_dir / "summary.json", "w") as file:
        saved = {"env": args.env, "settings": settings, "wall_seconds": elapsed, "summary": summary}
        json.dump(_json_safe(saved), file, indent=1, allow_nan=False)
    seeds = f"seed {args.first_seed}" if args.seeds == 1 else f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}"
    budget = f"{args.budget:,} env steps" if args.budget else "each config's n_timesteps"
    header = (
        f"{args.env}, {args.seeds} seeds per algorithm ({seeds}), {budget}; final return = mean of {args.eval_episodes} "
        f"deterministic episodes at the end of training; IQM over seeds with a 95% stratified bootstrap CI.\n\n"
    )
    (output_dir / "summary.md").write_text(header + table)
    plot_learning_curves(runs, output_dir / "curves.png", title=f"{args.env} ({args.seeds} seeds)", threshold=threshold)
    print(f"\n{header}{table}\n{len(jobs)} runs in {elapsed:.0f} s with {args.workers} workers; results in {output_dir}/")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
