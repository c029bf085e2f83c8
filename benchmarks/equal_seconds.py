"""The env steps of one algorithm that take as long to train as a budget of another, on one env and one core.

    python -m benchmarks.equal_seconds --env Hopper-v5 --reference OneStepAC=one_step_ac@defaults --budget 1000000 \
        --other SAC=sac@defaults --steps 20000 --other-steps 3000 --rounds 3

This answers "given the seconds that OneStepAC's 1M-step run takes, how many steps does SAC train?" without timing the
long runs themselves, which share the machine with other runs. Each round trains a fresh model of each variant in turn
(``learn(steps)``, construction excluded; the same seed, the same one torch thread) and takes its env-steps per second;
the equal budget is ``budget * other_speed / reference_speed`` from the median speeds. Measure alone, or with the
same load on the other cores as the runs being compared; ``--other-steps`` should reach past SAC's
``learning_starts`` (100) by far, so that the gradient steps dominate.
"""

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch as th

from sb3_ac_plus.common.arguments import positive_int
from sb3_ac_plus.compare import Variant, parse_variant
from sb3_ac_plus.zoo import make_model_and_env


def speed(env_id: str, variant: Variant, steps: int, seed: int = 0) -> float:
    """:return: env steps per second of a fresh model's ``learn(steps)``, as :mod:`benchmarks.scale` builds it"""
    block: dict[str, Any] | None = {} if variant.from_defaults else None
    model, env, _ = make_model_and_env(variant.algo, env_id, seed=seed, n_timesteps=steps, block=block, **variant.overrides)
    try:
        start = time.perf_counter()
        model.learn(steps)
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="Gymnasium env id")
    parser.add_argument("--reference", type=parse_variant, required=True, metavar="LABEL=ALGO[@defaults][:KEY=VALUE,...]")
    parser.add_argument("--budget", type=positive_int, required=True, help="the reference's env steps")
    parser.add_argument("--other", type=parse_variant, required=True, metavar="LABEL=ALGO[@defaults][:KEY=VALUE,...]")
    parser.add_argument("--steps", type=positive_int, default=20_000, help="the reference's steps per measurement")
    parser.add_argument("--other-steps", type=positive_int, default=3_000, help="the other's steps per measurement")
    parser.add_argument("--rounds", type=positive_int, default=3, help="measurements of each (median used)")
    parser.add_argument("--output", type=Path, default=None, help="a JSON file for the result")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    th.set_num_threads(1)
    speeds: dict[str, list[float]] = {args.reference.label: [], args.other.label: []}
    for _ in range(args.rounds):
        speeds[args.reference.label].append(speed(args.env, args.reference, args.steps))
        speeds[args.other.label].append(speed(args.env, args.other, args.other_steps))
    reference_speed = statistics.median(speeds[args.reference.label])
    other_speed = statistics.median(speeds[args.other.label])
    result = {
        "env": args.env,
        "reference": args.reference.label,
        "other": args.other.label,
        "budget": args.budget,
        "seconds": args.budget / reference_speed,
        "env_steps_per_second": speeds,
        "equal_budget": round(args.budget * other_speed / reference_speed),
    }
    print(
        f"{args.env}: {args.reference.label} {reference_speed:,.0f} env-steps/s, {args.other.label} {other_speed:,.0f} "
        f"(medians of {args.rounds}); {args.budget:,} steps of {args.reference.label} take about "
        f"{result['seconds']:,.0f} s, as long as {result['equal_budget']:,} steps of {args.other.label}"
    )
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
