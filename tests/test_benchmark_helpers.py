"""The benchmarks' helpers (benchmarks are not tests; their helpers are)."""

import argparse

from benchmarks.learning import run_in_parallel


def _label_seed_budget(label: str, env: str, seed: int, budget: int, freq: int, episodes: int) -> str:
    return f"{label}:{env}:{seed}:{budget}:{freq}:{episodes}"


def test_run_in_parallel_runs_every_label_and_seed():
    args = argparse.Namespace(env="E", seeds=2, budget=100, eval_freq=10, eval_episodes=3, workers=2)
    results = run_in_parallel(_label_seed_budget, ["a", "b"], args)
    assert results == {f"{label}/{seed}": f"{label}:E:{seed}:100:10:3" for label in "ab" for seed in range(2)}
