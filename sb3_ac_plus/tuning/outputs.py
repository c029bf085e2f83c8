"""What a finished run leaves behind: best hyperparameters as zoo YAML, a CSV of trials, plots, a printed summary."""

from __future__ import annotations

import datetime
import functools
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sb3_ac_plus.tuning.objective import OBJECTIVE_DESCRIPTIONS
from sb3_ac_plus.tuning.zoo_format import format_zoo_block

BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.yml"
TRIALS_FILE = "trials.csv"
# plot name -> Optuna matplotlib function name; intermediate values show the learning curves and what was pruned
PLOTS = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "intermediate_values": "plot_intermediate_values",
    "slice": "plot_slice",
}
_LOST_WORKER = "worker lost: no heartbeat within the grace period, or the process was killed"


@dataclass
class StepAccounting:
    """Environment steps of the finished trials, and what pruning saved.

    :param run: training steps actually run (completed and pruned trials, all seeds)
    :param without_pruning: steps the same trials would have run without the pruner (a diverged trial would still
        stop where it diverged)
    :param n_pruned: trials stopped by the pruner
    """

    run: int
    without_pruning: int
    n_pruned: int

    @property
    def saved_share(self) -> float:
        """Share of env steps the pruner saved, in [0, 1]."""
        return 0.0 if self.without_pruning == 0 else 1.0 - self.run / self.without_pruning


def step_accounting(trials: list[FrozenTrial]) -> StepAccounting:
    """Count the env steps of completed and pruned trials.

    :param trials: the study's trials
    :return: steps run, steps needed without pruning, trials pruned
    """
    run = without_pruning = n_pruned = 0
    for trial in trials:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED) or "env_steps" not in trial.user_attrs:
            continue
        steps = int(trial.user_attrs["env_steps"])
        run += steps
        if trial.state == TrialState.PRUNED and trial.user_attrs.get("pruned_by") == "pruner":
            n_pruned += 1
            without_pruning += max(steps, int(trial.user_attrs.get("env_steps_budget", steps)))
        else:
            without_pruning += steps
    return StepAccounting(run=run, without_pruning=without_pruning, n_pruned=n_pruned)


def tied_best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The completed trials whose value equals the best one (several when the objective saturates, e.g. CartPole's 500).

    :param study: the study
    :return: the trials, by number; empty when no trial completed
    """
    try:
        best_value = study.best_value
    except ValueError:
        return []
    return [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if trial.value == best_value]


def _training_cost(trial: FrozenTrial, use_train_seconds: bool) -> float:
    if use_train_seconds:
        return float(trial.user_attrs["train_seconds"])
    return trial.duration.total_seconds() if trial.duration is not None else math.inf


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best completed trial, or None when no trial completed.

    Ties on the value go to the trial that trained fastest: the least training seconds (``train_seconds``, summed over
    its seeds), or, when a tied trial predates that record, the shortest duration; then the lowest number.

    :param study: the study
    :return: the trial
    """
    tied = tied_best_trials(study)
    if not tied:
        return None
    use_train_seconds = all("train_seconds" in trial.user_attrs for trial in tied)
    return min(tied, key=lambda trial: (_training_cost(trial, use_train_seconds), trial.number))


def _describe_objective(settings: dict[str, Any]) -> str:
    description = OBJECTIVE_DESCRIPTIONS.get(settings.get("objective", ""), "?")
    return f"{description}, mean over {settings.get('n_seeds')} seeds of {settings.get('n_timesteps')} steps"


def _format_scores(trial: FrozenTrial) -> str:
    scores = trial.user_attrs.get("seed_scores")
    return "?" if not scores else "[" + ", ".join(f"{score:.4g}" for score in scores) + "]"


def best_hyperparameters_yaml(study: optuna.Study, trial: FrozenTrial) -> str:
    """The best trial as a zoo YAML block, with comments saying where it comes from.

    :param study: the study
    :param trial: the trial to write
    :return: the YAML text
    """
    settings: dict[str, Any] = study.user_attrs.get("settings", {})
    algo = settings.get("algo", "?")
    comments = [
        f"Best trial of study {study.study_name!r}: trial {trial.number}, {algo} on {settings.get('env_id')}",
        f"value {trial.value:.6g} = {_describe_objective(settings)}; per seed: {_format_scores(trial)}",
    ]
    n_tied = len(tied_best_trials(study))
    if n_tied > 1:
        comments.append(f"{n_tied} trials tied at this value; this one trained fastest")
    comments += [
        f"written {datetime.datetime.now().isoformat(timespec='seconds')} by tuning/optimize.py",
        f"build it: from sb3_ac_plus.tuning import make_model; model = make_model({algo!r}, '{BEST_HYPERPARAMETERS_FILE}')",
    ]
    return format_zoo_block(
        settings.get("env_id", "env"),
        dict(trial.user_attrs["hyperparameters"]),
        n_timesteps=int(settings.get("n_timesteps", 0)),
        comments=comments,
    )


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through a temporary file in its folder, renamed over it once complete: an interrupted write
    (a second Ctrl-C) leaves the previous file, never a truncated one. The temporary file is named after the process,
    so that workers writing the same outputs at once (on a shared storage) do not rename each other's.

    :param path: the file to write
    :param write: writes the content to the path it is given
    """
    # the suffix, last, tells matplotlib the format
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    """All trials, one row each: number, state, value, params (real names), durations and user attributes.

    :param study: the study
    :param path: the CSV file to write
    """
    frame = study.trials_dataframe(attrs=("number", "value", "state", "datetime_start", "duration", "params", "user_attrs"))
    # the full constructor kwargs are a dict per trial; the param columns and the YAML already carry them
    frame = frame.drop(columns=[column for column in frame.columns if column == "user_attrs_hyperparameters"])
    if "user_attrs_fail_reason" in frame.columns:
        lost = (frame["state"] == "FAIL") & frame["user_attrs_fail_reason"].isna()
        frame.loc[lost, "user_attrs_fail_reason"] = _LOST_WORKER
    replace_atomically(path, lambda partial: frame.to_csv(partial, index=False))


def write_plots(study: optuna.Study, output_dir: Path) -> tuple[list[Path], list[str]]:
    """Draw the plots of :data:`PLOTS` with Optuna's matplotlib backend.

    :param study: the study
    :param output_dir: where the PNG files go
    :return: the files written, and one note per plot that could not be drawn
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    written, skipped = [], []
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    for name, function_name in PLOTS.items():
        if n_complete < (2 if name == "param_importances" else 1):
            skipped.append(f"{name}: needs more completed trials")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = getattr(optuna_plots, function_name)(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            figure.set_size_inches(max(figure.get_size_inches()[0], 8), max(figure.get_size_inches()[1], 5))
            path = output_dir / f"{name}.png"
            replace_atomically(path, functools.partial(figure.savefig, dpi=100, bbox_inches="tight"))
            written.append(path)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            skipped.append(f"{name}: {error}")
        finally:
            plt.close("all")
    return written, skipped


def write_outputs(study: optuna.Study, output_dir: Path, plots: bool = True) -> dict[str, Any]:
    """Write the YAML, the CSV and the plots.

    :param study: the study
    :param output_dir: the study's output folder
    :param plots: False to skip the plots
    :return: what was written: ``yaml`` (path or None), ``csv`` (path, or why not), ``plots``, ``skipped_plots``
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {"yaml": None, "csv": output_dir / TRIALS_FILE, "plots": [], "skipped_plots": []}
    trial = best_trial(study)
    yaml_path = output_dir / BEST_HYPERPARAMETERS_FILE
    if trial is not None:
        text = best_hyperparameters_yaml(study, trial)
        replace_atomically(yaml_path, lambda partial: partial.write_text(text))
        written["yaml"] = yaml_path
    missing = "; install the tuning extra: pip install -e '.[tuning]'"
    try:
        write_trials_csv(study, written["csv"])
    except ImportError as error:  # pandas is an optional dependency
        written["csv"] = f"not written: {error}{missing}"
    if plots:
        try:
            written["plots"], written["skipped_plots"] = write_plots(study, output_dir)
        except ImportError as error:  # matplotlib is an optional dependency
            written["skipped_plots"] = [f"all: {error}{missing}"]
    return written


def summary(study: optuna.Study, written: dict[str, Any], dashboard_argument: str, notes: list[str]) -> str:
    """The text printed at the end of a run.

    :param study: the study
    :param written: the return value of :func:`write_outputs`
    :param dashboard_argument: how optuna-dashboard opens the storage
    :param notes: extra lines (worker problems, settings that changed)
    :return: the summary
    """
    trials = study.get_trials(deepcopy=False)
    states = Counter(trial.state.name for trial in trials)
    diverged = sum(1 for trial in trials if trial.user_attrs.get("pruned_by") == "divergence")
    steps = step_accounting(trials)
    settings = study.user_attrs.get("settings", {})
    lines = [
        "",
        f"Study {study.study_name!r}: {len(trials)} trials ("
        + ", ".join(f"{count} {state.lower()}" for state, count in sorted(states.items()))
        + (f"; {diverged} of the pruned diverged" if diverged else "")
        + ")",
        f"Objective: {_describe_objective(settings)}",
        f"Env steps: {steps.run:,} run; the pruner stopped {steps.n_pruned} trials and saved "
        f"{steps.saved_share:.0%} of {steps.without_pruning:,}",
    ]
    failures = [trial for trial in trials if trial.state == TrialState.FAIL]
    for trial in failures[-5:]:
        lines.append(f"  trial {trial.number} failed: {trial.user_attrs.get('fail_reason', _LOST_WORKER)}")
    lines.extend(f"Note: {note}" for note in notes)
    best = best_trial(study)
    if best is None:
        lines.append("No trial completed, so there are no best hyperparameters yet.")
    else:
        lines.append(f"Best trial {best.number}: value {best.value:.6g}, per seed {_format_scores(best)}")
        lines.append(f"Best hyperparameters ({written['yaml']}):")
        lines.append(best_hyperparameters_yaml(study, best).rstrip())
    lines.append(f"Trials: {written['csv']}")
    if written["plots"]:
        lines.append("Plots: " + ", ".join(str(path) for path in written["plots"]))
    lines.extend(f"Plot skipped: {note}" for note in written["skipped_plots"])
    lines.append(f"Dashboard: optuna-dashboard {dashboard_argument}")
    return "\n".join(lines)
