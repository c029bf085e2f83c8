"""Adam's step in NumPy, on the state of a torch Adam over flat CPU tensors.

At batch size one, torch's ``Adam.step`` on the two flat slices of OneStepAC's parameter vector costs about as much
in Python bookkeeping (hooks, state lookups, dispatch) as the rest of the update's arithmetic. :class:`NumpyAdam`
computes the same step (the formula of torch's single-tensor implementation) with NumPy on views of the
torch optimizer's own parameters, gradients and state, so the optimizer keeps its state for ``state_dict``, saving
and loading; only the rounding differs from torch's kernels, in the last bits.
"""

import math
import numpy as np
import torch as th

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
        sizes = [group["params"][0].numel() for group in optimizer.param_groups]
        self._scratch = [(np.empty(size, dtype=np.float32), np.empty(size, dtype=np.float32)) for size in sizes]
        self._cache: list[tuple[tuple, tuple[np.ndarray, ...]] | None] = [None] * len(sizes)

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
        tensors = (param.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])
        cached = self._cache[index]
        if cached is None or any(a is not b for a, b in zip(cached[0], tensors, strict=True)):
            assert param.grad is not None
            views = (
                param.detach().numpy().reshape(-1),
                param.grad.numpy().reshape(-1),
                state["exp_avg"].numpy().reshape(-1),
                state["exp_avg_sq"].numpy().reshape(-1),
                state["step"].numpy(),
            )
            self._cache[index] = cached = (tensors, views)
        return cached[1]

    def step(self) -> None:
        """
        One Adam step of every param group, from the gradients in the parameters' ``.grad``. Overflow gives inf or NaN
        silently, as in torch: the caller checks the parameters (``FlatOptimizer.step``).
        """
        with np.errstate(over="ignore", invalid="ignore"):
            self._step()

    def _step(self) -> None:
        for index, group in enumerate(self.optimizer.param_groups):
            scratch, numerator = self._scratch[index]
            values, grad, exp_avg, exp_avg_sq, step_count = self._views(index, group["params"][0])
            step_count += 1.0
            beta1, beta2 = group["betas"]
            if group["weight_decay"] != 0:
                grad = grad + group["weight_decay"] * values
            # exp_avg.lerp_(grad, 1 - beta1), in torch's form for weights below one half
            weight = 1.0 - beta1
            np.subtract(grad, exp_avg, out=scratch)
            if weight < 0.5:
                scratch *= weight
                exp_avg += scratch
            else:
                scratch *= 1.0 - weight
                np.subtract(grad, scratch, out=exp_avg)
            # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2): (value * grad) * grad, as torch orders it
            exp_avg_sq *= beta2
            np.multiply(grad, 1.0 - beta2, out=scratch)
            scratch *= grad
            exp_avg_sq += scratch
            step = float(step_count)
            step_size = group["lr"] / (1.0 - beta1**step)
            # denom = sqrt(exp_avg_sq) / sqrt(bias_correction2) + eps; param += (-step_size * exp_avg) / denom
            np.sqrt(exp_avg_sq, out=scratch)
            scratch /= math.sqrt(1.0 - beta2**step)
            scratch += group["eps"]
            np.multiply(exp_avg, -step_size, out=numerator)
            numerator /= scratch
            values += numerator
