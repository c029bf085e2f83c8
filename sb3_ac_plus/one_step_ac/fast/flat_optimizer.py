"""The policy's Adam, stepped by the compiled update on the flat parameter vector.

OneStepAC's parameters are views of one vector, and the optimizer's two param groups (actor only; shared and critic)
are contiguous slices of it, so Adam can step each group as one vector. :class:`FlatOptimizer` keeps a twin of the
policy's Adam (same hyperparameters) over those two slices, whose state is flat, and makes the policy optimizer's
per-parameter state views of it: ``policy.optimizer`` keeps describing the same optimizer, and saves and loads as
before. Any other torch optimizer runs in the reference update (:mod:`~sb3_ac_plus.one_step_ac.reference`).
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch as th


def _contiguous_slice(params: Sequence[th.Tensor], flat: th.Tensor) -> tuple[int, int] | None:
    """:return: ``(start, end)`` of ``params`` in ``flat`` if they lie there back to back in order, else None"""
    if not params:
        return None
    size = flat.element_size()
    start = (params[0].data_ptr() - flat.data_ptr()) // size
    offset = start
    for param in params:
        if param.dtype != flat.dtype or param.data_ptr() != flat.data_ptr() + offset * size or not param.is_contiguous():
            return None
        offset += param.numel()
    if start < 0 or offset > flat.numel():
        return None
    return start, offset


class FlatOptimizer:
    """
    A twin of ``optimizer`` over flat slices of the parameter vector; build it with :meth:`build`.

    :param optimizer: the policy's optimizer
    :param twin: the same optimizer class over one flat slice per param group
    :param slices: ``(start, end)`` of each group in the flat vector
    """

    def __init__(self, optimizer: th.optim.Optimizer, twin: th.optim.Optimizer, slices: list[tuple[int, int]]) -> None:
        self.optimizer = optimizer
        self.twin = twin
        self.slices = slices
        self._linked = False
        self._saved: list[th.Tensor] | None = None
        self._views: list[tuple[tuple, tuple[np.ndarray, ...]] | None] = [None] * len(twin.param_groups)
        self._hypers = [np.zeros(6, dtype=np.float64) for _ in twin.param_groups]  # written in place at every step
        self._link()

    @classmethod
    def build(cls, optimizer: th.optim.Optimizer, flat_params: th.Tensor, flat_grad: th.Tensor) -> "FlatOptimizer | None":
        """
        :param optimizer: the policy's optimizer
        :param flat_params: the parameter vector every parameter of ``optimizer`` is a view of
        :param flat_grad: the gradient vector, laid out as ``flat_params``
        :return: the flat twin, or None where it would not compute the same steps (a group not contiguous in the
            vector, a state entry that is neither elementwise nor one number shared by the group)
        """
        slices = []
        for group in optimizer.param_groups:
            bounds = _contiguous_slice(group["params"], flat_params)
            if bounds is None:
                return None
            slices.append(bounds)
        if not all(cls._flattenable(optimizer, group["params"]) for group in optimizer.param_groups):
            return None
        twin_groups = []
        for group, (start, end) in zip(optimizer.param_groups, slices, strict=True):
            view = flat_params[start:end]
            view.grad = flat_grad[start:end]
            twin_groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": [view]})
        twin = type(optimizer)(twin_groups, **optimizer.defaults)
        return cls(optimizer, twin, slices) if _is_plain_adam(twin) else None

    @staticmethod
    def _flattenable(optimizer: th.optim.Optimizer, params: Sequence[th.Tensor]) -> bool:
        states = [optimizer.state.get(p) for p in params]
        if all(not state for state in states):
            return True
        if any(not state for state in states) or len({tuple(sorted(state)) for state in states}) != 1:  # type: ignore[arg-type]
            return False
        for key in states[0]:  # type: ignore[union-attr]
            values = [state[key] for state in states]  # type: ignore[index]
            if not all(isinstance(v, th.Tensor) for v in values):
                return False
            elementwise = all(v.shape == p.shape for v, p in zip(values, params, strict=True))
            shared = all(v.numel() == 1 for v in values) and all(th.equal(v, values[0]) for v in values)
            if not (elementwise or shared):
                return False
        return True

    def _link(self) -> None:
        """Give the twin the policy optimizer's state (if any) and make the latter views of the twin's."""
        for group, twin_group in zip(self.optimizer.param_groups, self.twin.param_groups, strict=True):
            params, (flat,) = group["params"], twin_group["params"]
            twin_state = self.twin.state.get(flat)
            if not twin_state:
                first = self.optimizer.state.get(params[0])
                if not first:
                    return  # no state yet: the twin creates it at its first step
                twin_state = {}
                for key, value in first.items():
                    if value.shape == params[0].shape:
                        twin_state[key] = th.cat([self.optimizer.state[p][key].reshape(-1) for p in params])
                    else:
                        twin_state[key] = value.clone()
                self.twin.state[flat] = twin_state
            offset = 0
            for param in params:
                state = self.optimizer.state[param]
                for key, value in twin_state.items():
                    if value.shape == flat.shape:
                        state[key] = value[offset : offset + param.numel()].view_as(param)
                    else:
                        state[key] = value  # one number for the group (Adam's step count), the same tensor
                offset += param.numel()
        self._linked = True

    def _state_tensors(self) -> list[th.Tensor]:
        return [value for state in self.twin.state.values() for value in state.values()]

    def save(self, flat_params: th.Tensor) -> None:
        """Keep the parameters and the optimizer's state, for :meth:`restore`."""
        current = [flat_params, *self._state_tensors()]
        if self._saved is None or [t.shape for t in self._saved] != [t.shape for t in current]:
            self._saved = [t.clone() for t in current]
        else:
            for saved, value in zip(self._saved, current, strict=True):
                saved.copy_(value)

    def restore(self, flat_params: th.Tensor) -> None:
        """Put back the parameters and the optimizer's state of the last :meth:`save` (no state if it had none)."""
        assert self._saved is not None, "restore() without save()"
        state = self._state_tensors()
        with th.no_grad():
            flat_params.copy_(self._saved[0])
            if len(self._saved) == len(state) + 1:
                for saved, value in zip(self._saved[1:], state, strict=True):
                    value.copy_(saved)
            else:  # the steps since created the state: there was none before
                self.twin.state.clear()
                self.optimizer.state.clear()
                self._linked = False

    def groups_are(self, slices: Sequence[tuple[int, int]]) -> bool:
        """:return: whether the param groups are exactly these slices of the vector"""
        return list(self.slices) == list(slices)

    def _group_views(self, index: int, param: th.Tensor) -> tuple[np.ndarray, ...]:
        """
        :return: NumPy views of a twin group's parameter, gradient, ``exp_avg``, ``exp_avg_sq`` and ``step`` (created as
            torch creates them at the first step), kept while those tensors stay the same (a load or a restore replaces them)
        """
        state = self.twin.state[param]
        if not state:
            state["step"] = th.tensor(0.0, dtype=th.float32)
            state["exp_avg"] = th.zeros_like(param, memory_format=th.preserve_format)
            state["exp_avg_sq"] = th.zeros_like(param, memory_format=th.preserve_format)
        tensors = (param.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])
        cached = self._views[index]
        if cached is None or any(kept is not tensor for kept, tensor in zip(cached[0], tensors, strict=True)):
            grad, exp_avg, exp_avg_sq, step = tensors
            assert grad is not None
            arrays = (param.detach().numpy(), grad.numpy(), exp_avg.numpy(), exp_avg_sq.numpy(), step.numpy())
            self._views[index] = cached = (tensors, arrays)
        return cached[1]

    def fused_steps(self, learning_rates: Sequence[float], update: Callable[[list[tuple], list[np.ndarray]], int]) -> int:
        """
        Adam steps of every group, one after the other, computed by a compiled ``update``: given each group's views
        (parameter, gradient, ``exp_avg``, ``exp_avg_sq``) and hyperparameters (``[lr, beta1, beta2, eps, weight_decay,
        step count before the first step]``), it applies the steps in order, stops at the first it refuses and returns
        how many it applied; the step counts advance by that many. :meth:`save` before and :meth:`restore` after undo
        them all; a refused first step changes nothing (nor leaves a state where there was none).

        :param learning_rates: the step size of each param group
        :return: the steps applied
        """
        had_state = bool(self.twin.state)
        counts, views = [], []
        for index, (group, lr, hyper) in enumerate(zip(self.twin.param_groups, learning_rates, self._hypers, strict=True)):
            group["lr"] = lr
            values, grad, exp_avg, exp_avg_sq, step_count = self._group_views(index, group["params"][0])
            counts.append(step_count)
            views.append((values, grad, exp_avg, exp_avg_sq))
            hyper[:] = (lr, *group["betas"], group["eps"], group["weight_decay"], step_count)
        applied = update(views, self._hypers)
        for step_count, hyper in zip(counts, self._hypers, strict=True):
            step_count.fill(hyper[5] + applied)  # whole numbers: exact in float32
        if not applied:
            if not had_state:
                self.twin.state.clear()  # the zero moments made for the refused step: none, as before it
        elif not self._linked:
            self._link()
        return applied


def _is_plain_adam(optimizer: th.optim.Optimizer) -> bool:
    """Whether the compiled step computes ``optimizer``'s: ``th.optim.Adam`` itself with float hyperparameters and none
    of its variants (AMSGrad, maximize, capturable, differentiable, fused, decoupled weight decay)."""
    variants = ("amsgrad", "maximize", "capturable", "differentiable", "fused", "decoupled_weight_decay")
    return type(optimizer) is th.optim.Adam and all(
        not any(group.get(flag) for flag in variants)
        and all(
            isinstance(value, (int, float)) for value in (group["lr"], *group["betas"], group["eps"], group["weight_decay"])
        )
        for group in optimizer.param_groups
    )
