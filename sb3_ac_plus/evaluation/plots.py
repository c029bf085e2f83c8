"""Learning curves over seeds: the IQM across seeds at each evaluation, with a 95% bootstrap confidence band."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sb3_ac_plus.evaluation.statistics import iqm_with_ci


def curve_bands(runs: pd.DataFrame) -> pd.DataFrame:
    """At each evaluation step of the longest run: env steps, IQM of the mean return over runs, and its 95% CI.

    A run that stopped early (one that diverged, whose policy stays as it stopped) counts at every later step with
    its last evaluation, as it does in the comparison's final return.

    :param runs: one row per run and evaluation, with columns ``seed``, ``steps``, ``mean_return``
    """
    runs = runs.sort_values(["seed", "steps"])
    longest = runs.groupby("seed")["steps"].count().idxmax()
    grid = pd.DataFrame({"steps": runs.loc[runs["seed"] == longest, "steps"].to_numpy()})
    columns = []
    for _, run in runs.groupby("seed", sort=True):
        carried = pd.merge_asof(grid, run[["steps", "mean_return"]], on="steps", direction="backward")
        columns.append(carried["mean_return"].to_numpy())
    returns = np.stack(columns, axis=1)  # (steps, runs)
    rows = []
    for steps, values in zip(grid["steps"], returns, strict=True):
        point, lower, upper = iqm_with_ci(values[np.isfinite(values)], reps=500)
        rows.append({"steps": steps, "iqm": point, "lower": lower, "upper": upper})
    return pd.DataFrame(rows)


def plot_learning_curves(
    runs: pd.DataFrame, output: str | Path, title: str = "", threshold: float | None = None, label: str = "algo"
) -> Path:
    """Plot one curve per value of the ``label`` column (the IQM over its runs) with its confidence band.

    :param runs: one row per run and evaluation: ``label``, ``seed``, ``steps``, ``mean_return``
    :param output: the PNG to write
    :param threshold: the env's reward threshold, drawn as a dashed line
    """
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, group in runs.groupby(label, sort=False):
        bands = curve_bands(group)
        n_runs = group["seed"].nunique()
        (line,) = axes.plot(bands["steps"], bands["iqm"], label=f"{name} ({n_runs} seed{'s' if n_runs > 1 else ''})")
        axes.fill_between(bands["steps"], bands["lower"], bands["upper"], color=line.get_color(), alpha=0.2)
    if threshold is not None and np.isfinite(threshold):
        axes.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    axes.set_xlabel("env steps")
    axes.set_ylabel("deterministic evaluation return (IQM, 95% CI)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=120)
    plt.close(figure)
    return output
