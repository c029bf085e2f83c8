"""AdaptiveObGD's preconditioner: a running second moment of the update ``delta * trace``, per parameter.

Stream AC(lambda)'s second optimiser (AdaptiveObGD) divides the update ``delta * e`` element-wise by the square root of
an exponential moving average of its square, as Adam divides a gradient by its RMS, and then applies ObGD's
overshooting bound to the divided trace. Here the running average is kept for one part of the parameter vector (the
actor's or the critic's), and, like the traces, it is first *proposed* and only *committed* with a completed update.
"""

from typing import TypeVar

import numpy as np
import torch as th

Array = TypeVar("Array", th.Tensor, np.ndarray)

# Stream AC(lambda)'s values: the decay of the moving average and the term added under the square root.
BETA2 = 0.999
EPS = 1e-8


class SecondMoments:
    """
    ``v <- beta2 * v + (1 - beta2) * mean_rows((delta * e) ** 2)`` with Adam's bias correction
    ``v_hat = v / (1 - beta2 ** count)``; the update direction of a row is ``e / sqrt(v_hat + eps)``.

    With several envs, the average of the rows' squared updates is the sample of ``(delta * e) ** 2`` added at this
    step (one per env at one env, exactly stream AC(lambda)'s rule).

    :param n_params: length of the parameter vector part it follows
    :param device: device of the moments
    :param beta2: decay of the moving average, in [0, 1)
    :param eps: added to ``v_hat`` under the square root (> 0)
    """

    def __init__(self, n_params: int, device: th.device | str = "cpu", beta2: float = BETA2, eps: float = EPS) -> None:
        self._buffers = [th.zeros(n_params, device=device), th.zeros(n_params, device=device)]
        self._views = [b.numpy() if b.device.type == "cpu" else None for b in self._buffers]
        self.count = 0
        self.beta2 = beta2
        self.eps = eps

    @property
    def moments(self) -> th.Tensor:
        """The committed second moments ``v`` (not bias-corrected), ``(n_params,)``."""
        return self._buffers[0]

    @classmethod
    def from_array(cls, moments: np.ndarray, count: int, device: th.device | str = "cpu") -> "SecondMoments":
        """:return: second moments holding a copy of ``moments`` after ``count`` updates (a saved model's)"""
        restored = cls(moments.shape[0], device)
        restored.moments.copy_(th.as_tensor(moments))
        restored.count = count
        return restored

    def propose(self, delta: Array, traces: Array) -> Array:
        """
        :param delta: TD errors ``(n_rows,)``
        :param traces: traces (or gradients) ``(n_rows, n_params)``
        :return: the update directions ``traces / sqrt(v_hat + eps)`` with the proposed moments, ``(n_rows, n_params)``;
            the committed moments are unchanged until :meth:`commit`
        """
        if isinstance(traces, np.ndarray):
            current, proposed = self._views
            assert current is not None and proposed is not None, "NumPy moments need the CPU"
        else:
            current, proposed = self._buffers  # type: ignore[assignment]
        updates = delta[:, None] * traces
        proposed[:] = self.beta2 * current + (1.0 - self.beta2) * (updates * updates).mean(0)
        correction = 1.0 - self.beta2 ** (self.count + 1)
        return traces / (proposed / correction + self.eps) ** 0.5  # type: ignore[operator]

    def begin_rows(self) -> None:
        """Start proposing the moments row by row (:meth:`propose_row`), from the committed moments."""
        current, proposed = self._buffers
        proposed.copy_(current)

    def proposed_numpy(self) -> np.ndarray:
        """:return: the proposed moments as a NumPy view (after :meth:`begin_rows`; CPU only), to write row by row"""
        proposed = self._views[1]
        assert proposed is not None, "NumPy moments need the CPU"
        return proposed

    def propose_row(self, delta: Array, traces: Array, previous_rows: int) -> Array:
        """
        After :meth:`begin_rows`: add one row's squared update to the proposed moments, as one update of its own.

        :param delta: the row's TD error ``(1,)``
        :param traces: its trace (or gradient) ``(1, n_params)``
        :param previous_rows: how many rows were added since :meth:`begin_rows` (for the bias correction)
        :return: the row's update direction ``traces / sqrt(v_hat + eps)``
        """
        proposed: Array = self._views[1] if isinstance(traces, np.ndarray) else self._buffers[1]  # type: ignore[assignment]
        updates = delta[:, None] * traces
        proposed *= self.beta2
        proposed += (1.0 - self.beta2) * (updates * updates)[0]
        correction = 1.0 - self.beta2 ** (self.count + previous_rows + 1)
        return traces / (proposed / correction + self.eps) ** 0.5  # type: ignore[operator]

    def commit(self, n_updates: int = 1) -> None:
        """Make the proposed moments the moments, after ``n_updates`` updates (rows proposed one by one)."""
        self._buffers.reverse()
        self._views.reverse()
        self.count += n_updates
