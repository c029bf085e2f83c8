"""Weight initialisation schemes."""

import math

import torch as th
from torch import nn


def sparse_init_(weight: th.Tensor, sparsity: float) -> th.Tensor:
    """
    Sparse initialisation (as in stream AC(lambda)): LeCun-uniform weights, then in each output unit a fraction
    ``sparsity`` of its inputs is set to zero. Each unit keeps at least one input, so a layer with few inputs
    (CartPole has four) is never initialised to all zeros.

    :param weight: weight of a linear (out, in) or convolutional (out, in, *kernel) layer, modified in place
    :param sparsity: fraction of each unit's inputs set to zero, in [0, 1)
    :return: the weight
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if weight.dim() < 2:
        raise ValueError(f"sparse_init_ needs a weight with at least 2 dimensions, got shape {tuple(weight.shape)}")
    fan_out = weight.shape[0]
    fan_in = weight[0].numel()
    n_zeros = min(math.ceil(sparsity * fan_in), fan_in - 1)
    bound = 1.0 / math.sqrt(fan_in)
    with th.no_grad():
        weight.uniform_(-bound, bound)
        if n_zeros > 0:
            flat = weight.view(fan_out, fan_in)
            zero_idx = th.rand(fan_out, fan_in).argsort(dim=1)[:, :n_zeros]
            flat.scatter_(1, zero_idx, 0.0)
    return weight


def sparse_init_module_(module: nn.Module, sparsity: float) -> None:
    """
    Apply :func:`sparse_init_` to every linear and convolutional layer of ``module`` and zero their biases.

    :param module: module whose layers are initialised in place
    :param sparsity: fraction of each unit's inputs set to zero, in [0, 1)
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            sparse_init_(layer.weight, sparsity)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
