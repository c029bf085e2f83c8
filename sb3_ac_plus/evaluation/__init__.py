"""Evaluating trained agents: periodic evaluation during training, RL statistics over seeds, plots and GIFs."""

from sb3_ac_plus.evaluation.statistics import iqm, iqm_with_ci, steps_to_threshold
from sb3_ac_plus.evaluation.training import RunResult, train_and_evaluate

__all__ = ["RunResult", "iqm", "iqm_with_ci", "steps_to_threshold", "train_and_evaluate"]
