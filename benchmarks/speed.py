"""Env-steps per second of OneStepAC and SB3's A2C on CartPole-v1, measured side by side in one run.

    python -m benchmarks.speed --steps 10000 --rounds 5

Each round trains every configuration once, in turn, so that machine noise hits all of them alike; the table gives the
median over rounds and each configuration's ratio to A2C with its defaults. A2C runs with torch's default thread
count (what a user gets) and with one thread (A2C's best case here); the ratios use the faster of the two.
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from sb3_ac_plus.common.arguments import positive_int
from sb3_ac_plus import OneStepAC


def _with_threads(n_threads: int | None, make: Callable[[], BaseAlgorithm]) -> Callable[[], BaseAlgorithm]:
    def build() -> BaseAlgorithm:
        if n_threads is not None:
            th.set_num_threads(n_threads)
        return make()

    return build


CONFIGS: dict[str, Callable[[], BaseAlgorithm]] = {
    "OneStepAC (defaults, n_envs=1)": lambda: OneStepAC("MlpPolicy", "CartPole-v1", seed=0),
    "OneStepAC (update_rule=obgd, n_envs=1)": lambda: OneStepAC("MlpPolicy", "CartPole-v1", update_rule="obgd", seed=0),
    "OneStepAC (n_steps=4, trace_lambda=0, n_envs=1)": lambda: OneStepAC(
        "MlpPolicy", "CartPole-v1", n_steps=4, trace_lambda=0.0, seed=0
    ),
    "A2C (defaults, n_steps=5)": lambda: A2C("MlpPolicy", "CartPole-v1", seed=0),
    "A2C (defaults, n_steps=5, 1 thread)": lambda: A2C("MlpPolicy", "CartPole-v1", seed=0),
    "A2C (n_steps=1)": lambda: A2C("MlpPolicy", "CartPole-v1", n_steps=1, seed=0),
    "A2C (n_steps=1, 1 thread)": lambda: A2C("MlpPolicy", "CartPole-v1", n_steps=1, seed=0),
    "PPO (defaults)": lambda: PPO("MlpPolicy", "CartPole-v1", seed=0),
    "OneStepAC (defaults, n_envs=8)": lambda: OneStepAC("MlpPolicy", _envs(8), seed=0),
    "A2C (defaults, n_envs=8)": lambda: A2C("MlpPolicy", _envs(8), seed=0),
    "A2C (defaults, n_envs=8, 1 thread)": lambda: A2C("MlpPolicy", _envs(8), seed=0),
}


def _envs(n_envs: int) -> VecEnv:
    return make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)


def measure(make: Callable[[], BaseAlgorithm], steps: int, one_thread: bool) -> float:
    """:return: env steps per second of ``learn(steps)``, construction excluded"""
    default_threads = th.get_num_threads()
    th.set_num_threads(1 if one_thread else default_threads)
    try:
        model = make()
        start = time.perf_counter()
        model.learn(steps)
        return steps / (time.perf_counter() - start)
    finally:
        th.set_num_threads(default_threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=positive_int, default=10_000, help="env steps per measurement")
    parser.add_argument("--rounds", type=positive_int, default=5, help="measurements per configuration (median reported)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/speed.json"), help="results file")
    args = parser.parse_args()

    results: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for round_idx in range(args.rounds):
        for name, make in CONFIGS.items():
            results[name].append(measure(make, args.steps, one_thread="1 thread" in name))
        print(f"round {round_idx + 1}/{args.rounds}: " + ", ".join(f"{n}: {v[-1]:.0f}" for n, v in results.items()))

    medians = {name: statistics.median(values) for name, values in results.items()}
    a2c_default = max(medians["A2C (defaults, n_steps=5)"], medians["A2C (defaults, n_steps=5, 1 thread)"])
    a2c_one_step = max(medians["A2C (n_steps=1)"], medians["A2C (n_steps=1, 1 thread)"])
    a2c_eight = max(medians["A2C (defaults, n_envs=8)"], medians["A2C (defaults, n_envs=8, 1 thread)"])
    print(f"\n| configuration | env-steps/s (median of {args.rounds}) | vs A2C defaults | vs A2C n_steps=1 | vs A2C 8 envs |")
    print("|---|---:|---:|---:|---:|")
    for name, value in medians.items():
        ratios = (value / a2c_default, value / a2c_one_step, value / a2c_eight)
        print(f"| {name} | {value:.0f} | " + " | ".join(f"{ratio:.2f}x" for ratio in ratios) + " |")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w") as file:
        json.dump({"steps": args.steps, "rounds": args.rounds, "measurements": results, "medians": medians}, file, indent=2)
    print(f"\nsaved {args.output}")


if __name__ == "__main__":
    main()
