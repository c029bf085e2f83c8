"""Eligibility traces and the step-size rules that apply them: ObGD's overshooting bound and plain SGD.

Every function works on "rows": one row per transition being learned from at this step (one per env in the
one-step case). A direction is a list of tensors shaped ``(n_rows, *parameter.shape)``.
"""

import torch as th


class EligibilityTraces:
    """
    Accumulating eligibility traces, one per env and per parameter: ``e <- decay * e + grad``.

    :param params: the parameters the traces follow
    :param n_envs: number of environments (each has its own trace)
    """

    def __init__(self, params: list[th.Tensor], n_envs: int) -> None:
        self.traces = [th.zeros((n_envs, *p.shape), dtype=p.dtype, device=p.device) for p in params]

    @property
    def n_envs(self) -> int:
        return self.traces[0].shape[0] if self.traces else 0

    def accumulate(self, grads: list[th.Tensor], decay: float) -> list[th.Tensor]:
        """
        :param grads: this step's gradients, shaped like the traces
        :param decay: ``gamma * lambda``
        :return: the updated traces
        """
        th._foreach_mul_(self.traces, decay)
        th._foreach_add_(self.traces, grads)
        return self.traces

    def reset(self, env_indices: th.Tensor) -> None:
        """
        :param env_indices: indices of the envs whose episode ended
        """
        for trace in self.traces:
            trace[env_indices] = 0.0


def l1_norms(direction: list[th.Tensor]) -> th.Tensor:
    """
    :param direction: tensors shaped ``(n_rows, ...)``
    :return: the L1 norm of each row over all tensors, shape ``(n_rows,)``
    """
    if direction[0].shape[0] == 1:
        return th.stack(th._foreach_norm(direction, 1)).sum().reshape(1)
    return th.cat([d.flatten(1) for d in direction], dim=1).abs().sum(dim=1)


def obgd_step_sizes(delta: th.Tensor, norms: th.Tensor, learning_rate: float, kappa: float) -> th.Tensor:
    """
    Overshooting-bounded step size (ObGD, from stream AC(lambda)): ``lr / max(1, lr * kappa * max(|delta|, 1) * |e|_1)``.

    The step shrinks when the trace is large, so that one update cannot overshoot the TD target.

    :param delta: TD errors, shape ``(n_rows,)``
    :param norms: L1 norms of the traces, shape ``(n_rows,)``
    :param learning_rate: the nominal step size
    :param kappa: bound strength; larger values give smaller steps
    :return: the step size of each row, shape ``(n_rows,)``
    """
    delta_bar = delta.abs().clamp(min=1.0)
    return learning_rate / (learning_rate * kappa * delta_bar * norms).clamp(min=1.0)


def add_weighted_(params: list[th.Tensor], direction: list[th.Tensor], weights: th.Tensor) -> None:
    """
    In place: ``param += sum_r weights[r] * direction[r]``.

    :param params: the parameters to update
    :param direction: tensors shaped ``(n_rows, *param.shape)``
    :param weights: shape ``(n_rows,)``
    """
    with th.no_grad():
        if weights.shape[0] == 1:
            th._foreach_add_(params, th._foreach_mul([d[0] for d in direction], weights[0]))
        else:
            for param, d in zip(params, direction):
                param.add_(th.tensordot(weights, d, dims=1))
