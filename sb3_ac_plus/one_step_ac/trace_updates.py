"""Eligibility traces and the step-size rules that apply them: ObGD's overshooting bound and plain SGD.

The parameters a rule updates are one contiguous vector (see :mod:`sb3_ac_plus.one_step_ac.flat_parameters`), so a
trace, a gradient or an update direction is a 2-D array ``(n_rows, n_params)``: one row per transition learned
from at this step (one per env in the one-step case). The functions take torch tensors or NumPy arrays alike (the
NumPy fast path works on NumPy views of the same memory).
"""

from typing import TypeVar

import numpy as np
import torch as th

from sb3_ac_plus.one_step_ac.vector_kernels import add_weighted_rows, decay_and_add, row_l1_norms

Array = TypeVar("Array", th.Tensor, np.ndarray)


class EligibilityTraces:
    """
    Accumulating eligibility traces, one per env: ``e <- decay * e + grad``.

    An update first *proposes* the new traces (:meth:`propose`, written into a second buffer) and only a completed
    update *commits* them (:meth:`commit`), so that a refused update leaves the traces as they were.

    :param n_params: length of the parameter vector the traces follow
    :param n_envs: number of environments (each has its own trace)
    :param device: device of the traces
    """

    def __init__(self, n_params: int, n_envs: int, device: th.device | str = "cpu") -> None:
        self._buffers = [th.zeros((n_envs, n_params), device=device), th.zeros((n_envs, n_params), device=device)]
        self._make_views()

    @classmethod
    def from_array(cls, traces: np.ndarray, device: th.device | str = "cpu") -> "EligibilityTraces":
        """:return: traces holding a copy of ``traces`` ``(n_envs, n_params)`` (a saved model's)"""
        restored = cls(traces.shape[1], traces.shape[0], device)
        restored.traces.copy_(th.as_tensor(traces))
        return restored

    def _make_views(self) -> None:
        # NumPy views of the same memory, for the NumPy fast path (CPU only).
        self._views = [b.numpy() if b.device.type == "cpu" else None for b in self._buffers]

    @property
    def traces(self) -> th.Tensor:
        """The committed traces ``(n_envs, n_params)``."""
        return self._buffers[0]

    @property
    def n_envs(self) -> int:
        return self.traces.shape[0]

    def propose(self, grads: Array, decay: float) -> Array:
        """
        :param grads: this step's gradients ``(n_envs, n_params)``, a tensor or (on the CPU) a NumPy array
        :param decay: the trace decay ``gamma * lambda``
        :return: the new traces ``decay * traces + grads`` (a buffer of this object, valid until the next call); the
            committed traces are unchanged until :meth:`commit`
        """
        if isinstance(grads, np.ndarray):
            current, proposed = self._views
            assert current is not None and proposed is not None, "NumPy traces need the CPU"
            decay_and_add(current, decay, grads, proposed)
            return proposed
        current, proposed = self._buffers
        th.mul(current, decay, out=proposed)
        proposed += grads
        return proposed

    def begin_rows(self) -> None:
        """Start proposing traces row by row (:meth:`propose_row`), from the committed traces."""
        current, proposed = self._buffers
        proposed.copy_(current)

    def propose_row(self, grads: Array, decay: float, env: int) -> Array:
        """
        After :meth:`begin_rows`: the proposed trace of one env becomes ``decay * trace + grads``.

        :param grads: one row's gradient ``(1, n_params)``, a tensor or (on the CPU) a NumPy array
        :param decay: the trace decay ``gamma * lambda``
        :param env: the env whose trace it is
        :return: the env's proposed trace ``(1, n_params)``, a view of a buffer of this object
        """
        proposed: Array = self._views[1] if isinstance(grads, np.ndarray) else self._buffers[1]  # type: ignore[assignment]
        assert proposed is not None, "NumPy traces need the CPU"
        row = proposed[env : env + 1]
        row *= decay
        row += grads
        return row

    @property
    def proposed(self) -> th.Tensor:
        """The proposed traces (the buffer :meth:`commit` makes the traces)."""
        return self._buffers[1]

    def commit(self, ended_envs: np.ndarray | None) -> None:
        """
        Make the proposed traces the traces, and zero those of the envs whose episode ended.

        :param ended_envs: indices of the envs whose episode ended at this step (None: none did)
        """
        self._buffers.reverse()
        self._views.reverse()
        if ended_envs is not None:
            self.reset(ended_envs)

    def reset(self, env_indices: np.ndarray) -> None:
        """
        :param env_indices: indices of the envs whose traces are zeroed
        """
        self.traces[th.as_tensor(env_indices, device=self.traces.device)] = 0.0


def l1_norms(direction: Array) -> Array:
    """
    :param direction: ``(n_rows, n_params)``
    :return: the L1 norm of each row, ``(n_rows,)``
    """
    if isinstance(direction, np.ndarray):
        return row_l1_norms(direction)
    return abs(direction).sum(1)


def obgd_step_sizes(delta: Array, norms: Array, learning_rate: float, kappa: float, combined: bool = False) -> Array:
    """
    Overshooting-bounded step size (ObGD, from stream AC(lambda)): ``lr / max(1, lr * kappa * max(|delta|, 1) * |e|_1)``.

    The step shrinks when the trace is large, so that one update cannot overshoot the TD target: the update
    ``step * delta * e`` has an L1 norm of at most ``1 / kappa`` (times ``min(|delta|, 1)``).

    :param delta: TD errors, ``(n_rows,)``
    :param norms: L1 norms of the traces (or gradients), ``(n_rows,)``
    :param learning_rate: the nominal step size
    :param kappa: bound strength; larger values give smaller steps
    :param combined: one step size for all rows, bounding their sum as a whole:
        ``lr / max(1, lr * kappa * sum_rows(max(|delta|, 1) * |e|_1))``, so that ``sum_rows step * delta * e`` obeys the
        bound of a single row
    :return: the step size of each row, ``(n_rows,)``, or one step size (0-d) when ``combined``
    """
    if isinstance(delta, np.ndarray):
        products = learning_rate * kappa * np.maximum(abs(delta), 1.0) * norms
        return learning_rate / np.maximum(products.sum() if combined else products, 1.0)
    products = learning_rate * kappa * abs(delta).clip(1.0, None) * norms
    if combined:
        products = products.sum()
    return learning_rate / products.clip(1.0, None)


# An update whose L1 norm exceeds this could overflow float32 parameters (max about 3.4e38); it is refused.
MAX_UPDATE_NORM = 1e30


def update_is_safe(weights: Array, norms: Array) -> bool:
    """
    Whether ``params += sum_r weights[r] * direction[r]`` keeps finite parameters finite: the update's L1 norm is at
    most ``sum_r |weights[r]| * norms[r]``, which must be finite and below :data:`MAX_UPDATE_NORM` (a float32 parameter
    would then have to be within 1e30 of float32's largest value, about 3.4e38, to overflow).

    :param weights: ``(n_rows,)``
    :param norms: L1 norm of each row of the direction, ``(n_rows,)``
    """
    # In Python floats: products of float32 values cannot overflow, and no NumPy overflow warning is raised.
    bound = sum(abs(weight) * norm for weight, norm in zip(weights.tolist(), norms.tolist(), strict=True))
    return bound < MAX_UPDATE_NORM  # also False for NaN


def add_weighted_(params: Array, direction: Array, weights: Array) -> None:
    """
    In place: ``params += sum_r weights[r] * direction[r]`` (check :func:`update_is_safe` first).

    :param params: the parameter vector to update
    :param direction: ``(n_rows, n_params)``
    :param weights: ``(n_rows,)``
    """
    if isinstance(params, np.ndarray):
        add_weighted_rows(params, direction, np.asarray(weights, dtype=np.float32))
    else:
        params += weights @ direction
