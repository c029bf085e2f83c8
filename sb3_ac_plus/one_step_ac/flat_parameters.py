"""Parameters as views of one contiguous vector, so that per-step trace arithmetic is a few tensor operations."""

from collections.abc import Sequence

import torch as th


def flatten_parameters_(params: Sequence[th.Tensor]) -> th.Tensor:
    """
    Move the data of ``params`` into one contiguous vector and make each parameter a view of it.

    The parameters stay the same ``nn.Parameter`` objects (optimizers and ``load_state_dict`` keep working), and an
    in-place change of the vector is a change of the parameters.

    :param params: parameters, in the order they take in the vector
    :return: the vector
    """
    if not params:
        return th.zeros(0)
    flat = th.cat([p.detach().reshape(-1) for p in params])
    offset = 0
    for param in params:
        n = param.numel()
        param.data = flat[offset : offset + n].view_as(param)
        offset += n
    return flat


def is_view_of(params: Sequence[th.Tensor], flat: th.Tensor) -> bool:
    """
    :return: whether every parameter still lives in ``flat`` at its place (``policy.to(device)`` breaks this)
    """
    offset = 0
    base = flat.data_ptr()
    for param in params:
        if param.data_ptr() != base + offset * flat.element_size():
            return False
        offset += param.numel()
    return True


def flat_gradients(grads: tuple[th.Tensor, ...], n_rows: int) -> th.Tensor:
    """
    :param grads: gradients shaped ``(n_rows, *param.shape)`` (or ``param.shape`` when ``n_rows == 1``)
    :param n_rows: number of rows
    :return: the gradients as one ``(n_rows, n_params)`` tensor
    """
    return th.cat([g.reshape(n_rows, -1) for g in grads], dim=1)
