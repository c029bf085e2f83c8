"""Warm env-steps per second of tuned blocks (``sb3_ac_plus/zoo_configs/``), several algorithms side by side.

    python -m benchmarks.block_speed --env MountainCarContinuous-v0 --algos one_step_ac a2c --steps 4000 --rounds 5

Each algorithm's model is built from its block for ``--env`` and trained ``--warmup`` steps first (so that one-time
costs, numba's kernels loaded from its cache, torch's first passes, are not timed); then every round trains each model
``--steps`` more env steps, in turn, so that machine noise hits all of them alike. Torch runs single-threaded, as in
OneStepAC's ``learn()`` and the comparison's workers. The table gives the median over rounds in microseconds per env
step and each algorithm's ratio to the first one's.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch as th

from sb3_ac_plus.common.arguments import positive_int
from sb3_ac_plus.zoo.loader import make_model_and_env


def block_speed(env_id: str, algos: list[str], steps: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    """
    :param env_id: the Gymnasium id whose blocks are timed
    :param algos: algorithm names of ``sb3_ac_plus/zoo_configs/`` (``one_step_ac``, ``a2c``, ``ppo``...)
    :param steps: env steps per round
    :param rounds: rounds
    :param warmup: env steps trained before the first round
    :return: per algorithm, the microseconds per env step of each round
    """
    default_threads = th.get_num_threads()
    th.set_num_threads(1)
    try:
        models = {}
        for algo in algos:
            model, _, _ = make_model_and_env(algo, env_id, seed=0)
            models[algo] = model.learn(warmup)
        times: dict[str, list[float]] = {algo: [] for algo in algos}
        for _ in range(rounds):
            for algo, model in models.items():
                start = time.perf_counter()
                model.learn(steps, reset_num_timesteps=False)
                times[algo].append((time.perf_counter() - start) / steps * 1e6)
        return times
    finally:
        th.set_num_threads(default_threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="Gymnasium id with a block in every algorithm's zoo config")
    parser.add_argument("--algos", nargs="+", default=["one_step_ac", "a2c"], help="algorithms (first: the reference)")
    parser.add_argument("--steps", type=positive_int, default=4000, help="env steps per round")
    parser.add_argument("--rounds", type=positive_int, default=5, help="rounds (median reported)")
    parser.add_argument("--warmup", type=positive_int, default=1000, help="env steps trained before timing")
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the per-round times")
    args = parser.parse_args()
    times = block_speed(args.env, args.algos, args.steps, args.rounds, args.warmup)
    medians = {algo: statistics.median(values) for algo, values in times.items()}
    reference = medians[args.algos[0]]
    print(f"{args.env}, {args.steps} env steps x {args.rounds} rounds after {args.warmup}, one thread")
    print("| algorithm | us per env step (median) | env-steps/s | vs " + args.algos[0] + " |")
    print("|---|---:|---:|---:|")
    for algo, median in medians.items():
        print(f"| {algo} | {median:.1f} | {1e6 / median:,.0f} | {median / reference:.2f}x |")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"env": args.env, "steps": args.steps, "us_per_step": times}, indent=2))


if __name__ == "__main__":
    main()
