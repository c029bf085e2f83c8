"""Learning curves over seeds: the IQM across seeds at each evaluation, with a 95% bootstrap confidence band."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sb3_ac_plus.evaluation.statistics import iqm_with_ci


def curve_bands(runs: pd.DataFrame) -> pd.DataFrame:
    """Per evaluation index: mean env steps, IQM of the mean return over runs, and its 95% CI.

    :param runs: one row per run and evaluation, with columns ``seed``, ``eval_index``, ``steps``, ``mean_return``
    """
    rows = []
    for index, group in runs.groupby("eval_index", sort=True):
        point, lower, upper = iqm_with_ci(group["mean_return"].to_numpy(), reps=500)
        rows.append({"eval_index": index, "steps": group["steps"].mean(), "iqm": point, "lower": lower, "upper": upper})
    return pd.DataFrame(rows)


def plot_learning_curves(
    runs: pd.DataFrame, output: str | Path, title: str = "", threshold: float | None = None, label: str = "algo"
) -> Path:
    """Plot one curve per value of the ``label`` column (the IQM over its runs) with its confidence band.

    :param runs: one row per run and evaluation: ``label``, ``seed``, ``eval_index``, ``steps``, ``mean_return``
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
