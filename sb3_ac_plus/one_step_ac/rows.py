"""What one update learns from, the rows of a VecEnv step, and how it ends: applied, or refused and why.

The reference update (:mod:`~sb3_ac_plus.one_step_ac.reference`) and the compiled kernels
(:mod:`~sb3_ac_plus.one_step_ac.fast`) take the same rows and return the same status.
"""

from typing import Any, NamedTuple

import numpy as np

# How an update ends: every row applied, or the first refused row's reason (the rows before it were applied; OneStepAC
# puts everything back as it was before the first row).
APPLIED = 0
NON_FINITE_DELTA = 1
NON_FINITE_GRADIENT = 2
UNSAFE_UPDATE = 3

# An update whose L1 norm exceeds this could overflow float32 parameters (max about 3.4e38); it is refused.
MAX_UPDATE_NORM = 1e30

# Each row's logged statistics, in the columns of an update's ``stats``.
STAT_NAMES = ("td_error", "log_prob", "entropy", "actor_step_size", "critic_step_size")


class Rows(NamedTuple):
    """
    The transitions an update learns from, one after the other, one row each.

    :param obs: the states acted in, as the update takes them (normalised NumPy arrays for the kernels, tensors of the
        raw observations for the reference)
    :param actions: the actions taken (NumPy, as sampled, before clipping)
    :param returns: each row's reward, or its k-step discounted reward sum with ``n_steps > 1``, float32
    :param discounts: each row's discount of V(s'), 0 at a termination, float32
    :param next_obs: every env's next state (the terminal observation where an episode was truncated), as ``obs``
    :param next_index: the row of ``next_obs`` each row bootstraps from, int64
    :param trace_index: the env whose eligibility trace each row follows, -1 for none, int64
    """

    obs: Any
    actions: np.ndarray
    returns: np.ndarray
    discounts: np.ndarray
    next_obs: Any
    next_index: np.ndarray
    trace_index: np.ndarray

    @property
    def n_rows(self) -> int:
        return len(self.returns)
