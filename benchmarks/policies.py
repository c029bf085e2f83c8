"""The three actor-critic shapes under OneStepAC and PPO, with each algorithm's default hyperparameters.

    python -m benchmarks.policies --seeds 5

Each policy (shared trunk, separate MLPs, streaming) x algorithm x environment x seed trains for the environment's
budget, then plays ``--final-episodes`` deterministic episodes on a separate env. On CartPole-v1 it is also evaluated
every ``--eval-freq`` steps (as in ``benchmarks/learning.py``) to find the first evaluation reaching 475. Runs go one
after another in this process (one torch thread); every finished run is saved to the JSON at once, and ``--resume``
skips the runs it holds. Prints a markdown table.
"""

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3.common.evaluation import evaluate_policy

from benchmarks.learning import steps_to
from sb3_ac_plus.common.arguments import positive_int
from sb3_ac_plus.evaluation.training import PeriodicEvaluation, make_eval_env
from sb3_ac_plus.zoo.algorithms import ALGOS as ALGOS_BY_NAME
from sb3_ac_plus import SeparateActorCriticPolicy, SharedTrunkActorCriticPolicy, StreamingActorCriticPolicy

POLICIES = {
    "shared": SharedTrunkActorCriticPolicy,
    "separate": SeparateActorCriticPolicy,
    "streaming": StreamingActorCriticPolicy,
}
ALGOS = {name: ALGOS_BY_NAME[name] for name in ("one_step_ac", "ppo")}
BUDGETS = {"CartPole-v1": 20_000, "Pendulum-v1": 25_000}  # sized for one process in about half an hour
SOLVED = {"CartPole-v1": 475.0}


def run(policy: str, algo: str, env_id: str, seed: int, budget: int, args: argparse.Namespace) -> dict[str, Any]:
    """:return: the final evaluation, the evaluation curve (CartPole) and the wall time of one run"""
    th.set_num_threads(1)
    start = time.perf_counter()
    model = ALGOS[algo](POLICIES[policy], env_id, seed=seed)  # type: ignore[call-arg]
    periodic = None
    if env_id in SOLVED:
        periodic = PeriodicEvaluation(make_eval_env(model, env_id, seed), args.eval_freq, args.eval_episodes, budget=budget)
    model.learn(budget, callback=periodic)
    final, _ = evaluate_policy(
        model, make_eval_env(model, env_id, seed), n_eval_episodes=args.final_episodes, deterministic=True
    )
    assert isinstance(final, float)
    result: dict[str, Any] = {"final_return": final, "seconds": time.perf_counter() - start}
    if periodic is not None:
        curve = [(point.steps, point.mean_return) for point in periodic.points if point.steps > 0]
        result["curve"] = curve
        result["steps_to_solve"] = steps_to(curve, SOLVED[env_id])
    return result


def _mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f} ± {statistics.pstdev(values):.1f}"


def table(results: dict[str, Any], args: argparse.Namespace, budgets: dict[str, int]) -> str:
    head = "| policy | algorithm |"
    rule = "|---|---|"
    for env_id in args.envs:
        head += f" {env_id} final return ({budgets[env_id] // 1000}k steps) |"
        rule += "---:|"
        if env_id in SOLVED:
            head += f" {env_id} seeds reaching {SOLVED[env_id]:g} / median steps |"
            rule += "---:|"
    lines = [head, rule]
    for policy in args.policies:
        for algo in args.algos:
            row = f"| {policy} | {algo} |"
            for env_id in args.envs:
                runs = [results.get(f"{policy}/{algo}/{env_id}/{seed}") for seed in range(args.seeds)]
                done = [r for r in runs if r is not None]
                missing = "" if len(done) == args.seeds else f" ({len(done)}/{args.seeds} seeds)"
                row += f" {_mean_std([r['final_return'] for r in done]) if done else '-'}{missing} |"
                if env_id in SOLVED:
                    hits = [r["steps_to_solve"] for r in done]
                    median = statistics.median(hits) if hits else math.inf
                    shown = f"{median:.0f}" if math.isfinite(median) else f"> {budgets[env_id]}"
                    row += f" {sum(math.isfinite(h) for h in hits)}/{len(done)} / {shown} |"
            lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=list(ALGOS))
    parser.add_argument("--envs", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--seeds", type=positive_int, default=5)
    parser.add_argument("--budgets", nargs="+", default=[], metavar="ENV=STEPS", help="e.g. Pendulum-v1=30000")
    parser.add_argument("--eval-freq", type=positive_int, default=2500, help="CartPole: steps between evaluations")
    parser.add_argument("--eval-episodes", type=positive_int, default=5)
    parser.add_argument("--final-episodes", type=positive_int, default=10)
    parser.add_argument("--resume", action="store_true", help="keep the runs already in --output")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/policies.json"))
    args = parser.parse_args()
    budgets = dict(BUDGETS)
    for item in args.budgets:
        env_id, steps = item.split("=")
        budgets[env_id] = int(steps)

    results: dict[str, Any] = {}
    if args.resume and args.output.exists():
        results = json.loads(args.output.read_text())["runs"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for env_id in args.envs:
        for policy in args.policies:
            for algo in args.algos:
                for seed in range(args.seeds):
                    key = f"{policy}/{algo}/{env_id}/{seed}"
                    if key in results:
                        continue
                    results[key] = run(policy, algo, env_id, seed, budgets[env_id], args)
                    print(f"{key}: {results[key]['final_return']:.1f} in {results[key]['seconds']:.0f} s", flush=True)
                    saved_args = {k: str(v) for k, v in vars(args).items()} | {"budgets": budgets}
                    args.output.write_text(json.dumps({"args": saved_args, "runs": results}, indent=1))

    print(
        f"\n{args.seeds} seeds, default hyperparameters of each algorithm; final return: mean ± std over seeds of "
        f"{args.final_episodes} deterministic episodes after training; CartPole evaluated every {args.eval_freq} steps "
        f"({args.eval_episodes} episodes)\n"
    )
    print(table(results, args, budgets))
    print(f"\nsaved {args.output}")


if __name__ == "__main__":
    main()
