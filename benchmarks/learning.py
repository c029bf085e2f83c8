"""Steps to solve CartPole-v1: OneStepAC, A2C and PPO with default hyperparameters, evaluated the same way.

    python -m benchmarks.learning --seeds 10 --budget 50000 --workers 2

Every ``--eval-freq`` env steps, ``--eval-episodes`` deterministic episodes on a separate env; a seed "solves" at the
first evaluation whose mean return reaches ``--threshold``. Seeds run in parallel worker processes (one torch thread
each). Results are saved as JSON and printed as a markdown table.
"""

import argparse
import json
import math
import statistics
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import torch as th

from sb3_ac_plus.common.arguments import positive_int
from sb3_ac_plus.evaluation.training import PeriodicEvaluation, make_eval_env
from sb3_ac_plus.zoo.algorithms import ALGOS, DEFAULT_COMPARED

T = TypeVar("T")


def run_seed(algo: str, env_id: str, seed: int, budget: int, freq: int, episodes: int) -> list[tuple[int, float]]:
    """:return: the evaluation curve ``[(env steps, mean return), ...]`` of one seed"""
    th.set_num_threads(1)
    model = ALGOS[algo]("MlpPolicy", env_id, seed=seed)  # type: ignore[call-arg]
    callback = PeriodicEvaluation(make_eval_env(model, env_id, seed), freq, episodes, budget=budget)
    model.learn(budget, callback=callback)
    return [(point.steps, point.mean_return) for point in callback.points if point.steps > 0]


def run_in_parallel(
    run: Callable[[str, str, int, int, int, int], T], labels: list[str], args: argparse.Namespace
) -> dict[str, T]:
    """
    ``run(label, env, seed, budget, eval_freq, eval_episodes)`` for every label and seed, in ``args.workers`` processes.

    :param run: one run (a module-level function, so that worker processes can load it)
    :param labels: what the runs compare (algorithms, variants)
    :param args: the command line: ``env``, ``seeds``, ``budget``, ``eval_freq``, ``eval_episodes``, ``workers``
        (and ``first_seed``, 0 if it has none)
    :return: each run's result by ``"<label>/<seed>"``
    """
    first = getattr(args, "first_seed", 0)
    jobs = [(label, seed) for label in labels for seed in range(first, first + args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = {
            job: pool.submit(run, job[0], args.env, job[1], args.budget, args.eval_freq, args.eval_episodes) for job in jobs
        }
        return {f"{label}/{seed}": future.result() for (label, seed), future in futures.items()}


def steps_to(curve: list[tuple[int, float]], threshold: float) -> float:
    return next((steps for steps, value in curve if value >= threshold), math.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--algos", nargs="+", default=list(DEFAULT_COMPARED), choices=list(ALGOS))
    parser.add_argument("--seeds", type=positive_int, default=10)
    parser.add_argument("--budget", type=positive_int, default=50_000, help="env steps per run")
    parser.add_argument("--eval-freq", type=positive_int, default=2000)
    parser.add_argument("--eval-episodes", type=positive_int, default=10)
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--within", type=positive_int, default=30_000, help="also count seeds solved within this many steps")
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/learning.json"))
    args = parser.parse_args()

    curves = run_in_parallel(run_seed, args.algos, args)

    print(
        f"\n{args.env}: {args.seeds} seeds, evaluation of {args.eval_episodes} deterministic episodes every "
        f"{args.eval_freq} steps, budget {args.budget} steps\n"
    )
    print(
        f"| algorithm | seeds reaching {args.threshold:g} within {args.within} steps | within {args.budget} | "
        f"median steps to {args.threshold:g} | median final return |"
    )
    print("|---|---:|---:|---:|---:|")
    summary = {}
    for algo in args.algos:
        runs = [curves[f"{algo}/{seed}"] for seed in range(args.seeds)]
        hits = [steps_to(curve, args.threshold) for curve in runs]
        median_steps = statistics.median(hits)
        summary[algo] = {
            "steps_to_threshold": hits,
            "solved_within": sum(h <= args.within for h in hits),
            "solved_within_budget": sum(h <= args.budget for h in hits),
            "median_steps_to_threshold": median_steps,
            "median_final_return": statistics.median(curve[-1][1] for curve in runs),
        }
        shown = f"{median_steps:.0f}" if math.isfinite(median_steps) else f"> {args.budget}"
        print(
            f"| {algo} | {summary[algo]['solved_within']}/{args.seeds} | {summary[algo]['solved_within_budget']}/"
            f"{args.seeds} | {shown} | {summary[algo]['median_final_return']:.1f} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w") as file:
        json.dump({"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary, "curves": curves}, file, indent=1)
    print(f"\nsaved {args.output}")


if __name__ == "__main__":
    main()
