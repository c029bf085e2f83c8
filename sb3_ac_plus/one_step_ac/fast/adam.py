"""Adam's step compiled, on the state of a torch Adam over flat CPU tensors (the policy optimizer's flat twin).

:func:`adam_write` computes torch's single-tensor Adam element by element, in its float32 rounding, on views of the
torch optimizer's own parameters, gradients and state, so the optimizer keeps its state for ``state_dict``, saving
and loading. :class:`NumpyAdam` hands those views to a compiled update (:mod:`~sb3_ac_plus.one_step_ac.fast.adam_rows`).
"""

import math
from collections.abc import Callable

import numpy as np
import torch as th
from numba import njit

# Adam's options that change its formula; NumpyAdam computes the plain one.
_VARIANTS = ("amsgrad", "maximize", "capturable", "differentiable", "fused", "decoupled_weight_decay")


def numpy_adam_supported(optimizer: th.optim.Optimizer) -> bool:
    """
    :param optimizer: a torch optimizer
    :return: whether :class:`NumpyAdam` computes its step: ``th.optim.Adam`` itself (not a subclass) with float
        hyperparameters, none of its variants (AMSGrad, maximize, capturable, differentiable, fused, decoupled weight
        decay), and one contiguous float32 CPU parameter per group, each with its gradient
    """
    if type(optimizer) is not th.optim.Adam:
        return False
    for group in optimizer.param_groups:
        betas = group["betas"]
        if (
            any(group.get(flag) for flag in _VARIANTS)
            or not all(isinstance(value, float) for value in (group["lr"], betas[0], betas[1], group["eps"]))
            or not isinstance(group["weight_decay"], (int, float))
            or len(group["params"]) != 1
        ):
            return False
        param = group["params"][0]
        grad = param.grad
        if (
            param.device.type != "cpu"
            or param.dtype != th.float32
            or not param.is_contiguous()
            or grad is None
            or grad.dtype != th.float32
            or not grad.is_contiguous()
        ):
            return False
    return True


class NumpyAdam:
    """
    Steps ``optimizer`` (see :func:`numpy_adam_supported`) with NumPy, creating its state as torch does at the first
    step (``step``, ``exp_avg``, ``exp_avg_sq``) and writing it in place afterwards.

    :param optimizer: the Adam optimizer to step; its parameters' ``.grad`` are read at every step
    """

    def __init__(self, optimizer: th.optim.Optimizer) -> None:
        if not numpy_adam_supported(optimizer):
            raise ValueError("NumpyAdam: optimizer must be a plain th.optim.Adam with one float32 CPU tensor per group")
        self.optimizer = optimizer
        self._cache: list[tuple[tuple, tuple[np.ndarray, ...]] | None] = [None] * len(optimizer.param_groups)
        # fused_steps's hyperparameter arrays, one per group, written in place at every call
        self._hypers = [np.zeros(6, dtype=np.float64) for _ in optimizer.param_groups]

    def _views(self, index: int, param: th.Tensor) -> tuple[np.ndarray, ...]:
        """
        :return: NumPy views of the parameter, its gradient, ``exp_avg``, ``exp_avg_sq`` and ``step``, kept while those
            tensors stay the same objects (the state is created at the first step, and replaced by a load or a restore)
        """
        state = self.optimizer.state[param]
        if not state:
            state["step"] = th.tensor(0.0, dtype=th.float32)
            state["exp_avg"] = th.zeros_like(param, memory_format=th.preserve_format)
            state["exp_avg_sq"] = th.zeros_like(param, memory_format=th.preserve_format)
        grad, exp_avg, exp_avg_sq, step = param.grad, state["exp_avg"], state["exp_avg_sq"], state["step"]
        cached = self._cache[index]
        if cached is not None:
            kept = cached[0]
            if kept[0] is grad and kept[1] is exp_avg and kept[2] is exp_avg_sq and kept[3] is step:
                return cached[1]
        assert grad is not None
        views = (
            param.detach().numpy().reshape(-1),
            grad.numpy().reshape(-1),
            exp_avg.numpy().reshape(-1),
            exp_avg_sq.numpy().reshape(-1),
            step.numpy(),
        )
        self._cache[index] = cached = ((grad, exp_avg, exp_avg_sq, step), views)
        return cached[1]

    def fused_steps(self, update: Callable[[list[tuple], list[np.ndarray]], int]) -> int:
        """
        Adam steps of every param group, one after the other, computed by ``update`` (a compiled kernel that writes
        each step's gradient first and computes each step's scalars with :func:`step_scalars`): it is given each group's
        views (parameter, gradient, ``exp_avg``, ``exp_avg_sq``) and hyperparameters (:func:`step_scalars`'s ``hyper``,
        with the step count before the first step), and returns how many steps it applied, in order. The step counts
        advance by that many.

        :param update: the update, called once
        :return: the steps applied
        """
        counts, views, hypers = [], [], self._hypers
        for index, group in enumerate(self.optimizer.param_groups):
            values, grad, exp_avg, exp_avg_sq, step_count = self._views(index, group["params"][0])
            counts.append(step_count)
            views.append((values, grad, exp_avg, exp_avg_sq))
            hyper = hypers[index]
            hyper[0] = group["lr"]
            hyper[1], hyper[2] = group["betas"]
            hyper[3] = group["eps"]
            hyper[4] = group["weight_decay"]
            hyper[5] = step_count
        applied = update(views, hypers)
        for step_count, hyper in zip(counts, hypers, strict=False):
            step_count.fill(hyper[5] + applied)  # whole numbers: exact in float32; fill costs a tenth of +=
        return applied


@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def _adam_element(
    value: np.float32,
    grad: np.float32,
    exp_avg: np.float32,
    exp_avg_sq: np.float32,
    lerp_weight: np.float32,
    small_weight: bool,
    beta2: np.float32,
    one_minus_beta2: np.float32,
    correction: np.float32,
    eps: np.float32,
    neg_step: np.float32,
    decay: np.float32,
    has_decay: bool,
) -> tuple[np.float32, np.float32, np.float32]:  # pragma: no cover
    """One element's new ``exp_avg``, ``exp_avg_sq`` and parameter, every operand float32 (see :func:`adam_write`)."""
    g = grad + decay * value if has_decay else grad
    diff = g - exp_avg
    # torch's lerp: start + (end - start) * w for weights below one half, else end - (end - start) * (1 - w)
    m = exp_avg + diff * lerp_weight if small_weight else g - diff * lerp_weight
    v = exp_avg_sq * beta2 + (g * one_minus_beta2) * g
    denom = np.float32(math.sqrt(np.float64(v))) / correction + eps
    return m, v, value + (m * neg_step) / denom


@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def step_scalars(hyper: np.ndarray, step: float) -> tuple:  # pragma: no cover (compiled)
    """
    Adam's per-step scalars, computed in float64 as torch's single-tensor Adam computes them in Python floats
    (``step_size = lr / (1 - beta1 ** step)``, ``sqrt(1 - beta2 ** step)``), then rounded to float32, as torch rounds
    them against a float32 tensor (a test checks them against that formula, bit for bit), in the order
    :func:`_adam_element` takes them.

    :param hyper: ``[lr, beta1, beta2, eps, weight_decay, ...]``, float64
    :param step: the step's count (1 at the first step)
    :return: the step's scalars of :func:`adam_write`
    """
    lr, beta1, beta2, eps, weight_decay = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    step_size = lr / (1.0 - beta1**step)
    correction = math.sqrt(1.0 - beta2**step)
    weight = 1.0 - beta1
    small_weight = weight < 0.5
    lerp_weight = np.float32(weight) if small_weight else np.float32(1.0 - weight)
    return (
        lerp_weight,
        small_weight,
        np.float32(beta2),
        np.float32(1.0 - beta2),
        np.float32(correction),
        np.float32(eps),
        np.float32(-step_size),
        np.float32(weight_decay),
        weight_decay != 0.0,
    )


# No fastmath in these three: each element rounds as torch's single-tensor Adam rounds it. Neither loop branches on the
# data, so the compiler vectorises them as they are. fastmath=False is explicit because numba gives a kernel that does not
# set it its caller's flags: called from a kernel with FAST_SUMS (optimizer_kernels), the step would be compiled, and
# cached, with reassociation, and round differently from one install to the next depending on which call came first.
@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def adam_write(
    values: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, scalars: tuple
) -> None:  # pragma: no cover
    """
    Adam's step on float32 vectors, in place, in the order and float32 rounding of torch's single-tensor
    implementation (``exp_avg.lerp_(grad, 1 - beta1)``; ``exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 -
    beta2)``; ``param.addcdiv_(exp_avg, exp_avg_sq.sqrt() / bias_correction2_sqrt + eps, value=-step_size)``).

    :param scalars: the step's scalars (:func:`step_scalars`)
    """
    for i in range(values.shape[0]):
        m, v, new = _adam_element(values[i], grad[i], exp_avg[i], exp_avg_sq[i], *scalars)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        values[i] = new


@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def adam_is_finite(
    values: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, scalars: tuple
) -> bool:  # pragma: no cover
    """:return: whether :func:`adam_write` with these arguments would leave every parameter finite (writes nothing)"""
    bad = 0
    for i in range(values.shape[0]):
        new = _adam_element(values[i], grad[i], exp_avg[i], exp_avg_sq[i], *scalars)[2]
        bad |= not (new - new == 0.0)  # inf - inf and NaN - NaN are NaN
    return bad == 0
