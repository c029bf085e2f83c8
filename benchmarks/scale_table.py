"""One table from several ``python -m benchmarks.scale`` output folders: each variant's final deterministic
return, its deterministic return over the run's last fifth, its training-return curve and its speed.

    python -m benchmarks.scale_table benchmarks/results/scale/one_step_ac/Hopper-v5 \
        benchmarks/results/scale/ppo-zoo/Hopper-v5 benchmarks/results/scale/sac/Hopper-v5 --segment 200000

The curve is the mean return of the training episodes that ended in each segment of ``--segment`` env steps (from
``training_returns.csv``), averaged over the finished seeds; the streaming papers report this training return, the zoo
the deterministic one. One evaluation is one point of a curve that can swing by thousands between evaluations; the
last fifth's column is each finished seed's mean deterministic return over the evaluations in the last fifth of its
steps (800k-1M of a 1M-step run: five evaluations at ``--eval-freq 50000``), then the mean over seeds (worst seed);
its swing is the median, over those evaluations and seeds, of the absolute change from one evaluation to the next.
"""

import argparse
import json
from pathlib import Path

import pandas as pd

from sb3_ac_plus.common.arguments import positive_int


LAST_FRACTION = 0.2  # the share of a run's steps whose evaluations make its end-of-run return


def last_fifth(evaluations: pd.DataFrame, label: str, seeds: list[int], budget: int) -> tuple[list[float], float | None]:
    """:return: per finished seed, the mean deterministic return of its evaluations in the last fifth of ``budget``;
    and the median of the absolute changes from one of these evaluations to the next, all seeds pooled (None if none)"""
    ours = evaluations[(evaluations.variant == label) & evaluations.seed.isin(seeds)]
    ours = ours[ours.steps >= budget * (1.0 - LAST_FRACTION)].sort_values(["seed", "steps"])
    changes = ours.groupby("seed").mean_return.diff().abs().dropna()
    means = [float(ours[ours.seed == seed].mean_return.mean()) for seed in seeds]
    return means, float(changes.median()) if len(changes) else None


def variant_rows(folder: Path, segment: int) -> list[dict]:
    """:return: one row per variant of the folder's ``summary.json``, with the training-return curve by segment"""
    document = json.loads((folder / "summary.json").read_text())
    summary = document["summary"]
    returns = pd.read_csv(folder / "training_returns.csv")
    evaluations = pd.read_csv(folder / "runs.csv")
    rows = []
    for label, row in summary.items():
        finished = returns[(returns.variant == label) & returns.seed.isin(row["seeds_finished"])]
        finished = finished[finished.bin_start < row["budget"]]  # episodes ending at the last step open no segment
        # episodes-weighted mean of each seed's bins within a segment, then the mean over seeds
        finished = finished.assign(segment=finished.bin_start // segment, total=finished.mean_return * finished.episodes)
        per_seed = finished.groupby(["segment", "seed"])[["total", "episodes"]].sum()
        curve = (per_seed.total / per_seed.episodes).groupby(level="segment").mean()
        finals = row["final_returns"]
        ends, swing = last_fifth(evaluations, label, row["seeds_finished"], row["budget"])
        rows.append(
            {
                "env": document["env"],
                "variant": label,
                "budget": row["budget"],
                "seeds": f"{len(row['seeds_finished'])}",
                "final": row["final_return_mean"],
                "worst": min(finals) if finals else None,
                "per_seed": finals,
                "last_fifth": sum(ends) / len(ends) if ends else None,
                "last_fifth_worst": min(ends) if ends else None,
                "swing": swing,
                "curve": {int(index) * segment: value for index, value in curve.items()},
                "speed": row["median_env_steps_per_second"],
            }
        )
    return rows


def markdown(rows: list[dict], segment: int) -> str:
    def shown(value: float | None, form: str = ",.1f") -> str:
        return "n/a" if value is None else format(value, form)

    starts = sorted({start for row in rows for start in row["curve"]})
    header = [f"{start // 1000:,}-{(start + segment) // 1000:,}k" for start in starts]
    lines = [
        "| env | variant | env steps | seeds finished | final return, mean (worst) | per seed "
        + "| last fifth's evaluations, mean (worst) | their swing | "
        + " | ".join(f"training {name}" for name in header)
        + " | env-steps/s |",
        "|---|---|---:|---:|---:|---|---:|---:|" + "---:|" * len(starts) + "---:|",
    ]
    for row in rows:
        curve = " | ".join(shown(row["curve"].get(start)) for start in starts)
        per_seed = ", ".join(shown(value) for value in row["per_seed"])
        lines.append(
            f"| {row['env']} | {row['variant']} | {row['budget']:,} | {row['seeds']} | "
            f"{shown(row['final'])} ({shown(row['worst'])}) | {per_seed} | "
            f"{shown(row['last_fifth'])} ({shown(row['last_fifth_worst'])}) | {shown(row['swing'], ',.0f')} | "
            f"{curve} | {shown(row['speed'], ',.0f')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="output folders of python -m benchmarks.scale")
    parser.add_argument("--segment", type=positive_int, default=200_000, help="env steps per point of the curve")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (folder / "summary.json").is_file():
            parser.error(f"{folder} holds no summary.json: give output folders of python -m benchmarks.scale")
    table = markdown([row for folder in args.folders for row in variant_rows(folder, args.segment)], args.segment)
    print(table, end="")
    return table


if __name__ == "__main__":
    main()
