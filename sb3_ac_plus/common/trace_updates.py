"""Eligibility traces and the step-size rules that apply them: ObGD's overshooting bound and plain SGD.

The parameters a rule updates are one contiguous vector (see :mod:`sb3_ac_plus.common.flat_parameters`), so a
trace, a gradient or an update direction is a 2-D array ``(n_rows, n_params)``: one row per transition learned
from at this step (one per env in the one-step case). The functions take torch tensors or NumPy arrays alike (the
NumPy fast path works on NumPy views of the same memory).
"""

from typing import TypeVar

import numpy as np
import torch as th

Array = TypeVar("Array", th.Tensor, np.ndarray)


class EligibilityTraces:
    """
    Accumulating eligibility traces, one per env: ``e <- decay * e + grad``.

    :param n_params: length of the parameter vector the traces follow
    :param n_envs: number of environments (each has its own trace)
    :param device: device of the traces
    """

    def __init__(self, n_params: int, n_envs: int, device: th.device | str = "cpu") -> None:
        self.traces = th.zeros((n_envs, n_params), device=device)

    @property
    def n_envs(self) -> int:
        return self.traces.shape[0]

    def reset(self, env_indices: np.ndarray) -> None:
        """
        :param env_indices: indices of the envs whose episode ended
        """
        self.traces[th.as_tensor(env_indices, device=self.traces.device)] = 0.0


def accumulate_(traces: Array, grads: Array, decay: float) -> Array:
    """
    In place: ``traces <- decay * traces + grads``.

    :return: the traces
    """
    traces *= decay
    traces += grads
    return traces


def l1_norms(direction: Array) -> Array:
    """
    :param direction: ``(n_rows, n_params)``
    :return: the L1 norm of each row, ``(n_rows,)``
    """
    return abs(direction).sum(1)


def obgd_step_sizes(delta: Array, norms: Array, learning_rate: float, kappa: float) -> Array:
    """
    Overshooting-bounded step size (ObGD, from stream AC(lambda)): ``lr / max(1, lr * kappa * max(|delta|, 1) * |e|_1)``.

    The step shrinks when the trace is large, so that one update cannot overshoot the TD target.

    :param delta: TD errors, ``(n_rows,)``
    :param norms: L1 norms of the traces (or gradients), ``(n_rows,)``
    :param learning_rate: the nominal step size
    :param kappa: bound strength; larger values give smaller steps
    :return: the step size of each row, ``(n_rows,)``
    """
    return learning_rate / (learning_rate * kappa * abs(delta).clip(1.0, None) * norms).clip(1.0, None)


# An update whose L1 norm exceeds this could overflow float32 parameters (max about 3.4e38); it is refused.
MAX_UPDATE_NORM = 1e30


def add_weighted_(params: Array, direction: Array, weights: Array, norms: Array) -> bool:
    """
    In place: ``params += sum_r weights[r] * direction[r]``, unless that could write a NaN or an infinity.

    :param params: the parameter vector to update
    :param direction: ``(n_rows, n_params)``
    :param weights: ``(n_rows,)``
    :param norms: L1 norm of each row of ``direction``, ``(n_rows,)``
    :return: whether the update was applied (the update's L1 norm is at most ``sum_r |weights[r]| * norms[r]``,
        which must be finite and below :data:`MAX_UPDATE_NORM`; otherwise params are unchanged)
    """
    bound = float((abs(weights) * norms).sum())
    if not bound < MAX_UPDATE_NORM:  # also catches NaN
        return False
    params += weights @ direction
    return True
