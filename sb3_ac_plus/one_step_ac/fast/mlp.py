"""Compiled forward and backward passes of a streaming MLP with a linear head, for the NumPy backend.

At batch size 1 even a NumPy operation costs about a microsecond of dispatch, and a forward and backward pass of a
two-layer MLP with LayerNorm is some sixty of them. These kernels (compiled by numba on first use, and cached on disk)
do each pass in one call, reading the weights from the flat parameter vector and writing the per-row gradients into a
flat buffer laid out as that vector.

Each layer is described by a row of ``layout``: ``(weight_offset, bias_offset, n_in, n_out)``, the weight being
stored as torch's ``nn.Linear`` stores it, ``(n_out, n_in)`` row-major; the last row is the head (no normalisation, no
activation). Sums and normalisation are computed in float64 and the results rounded to float32 where they are stored.
The activation is given by ``slope``: the slope for negative inputs (LeakyReLU; 0 for ReLU), or NaN for Tanh.
"""

import math

import numpy as np
from numba import njit

from sb3_ac_plus.one_step_ac.fast.compiler import FAST_SUMS


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def _linear_row(
    params: np.ndarray, w_off: int, b_off: int, n_in: int, n_out: int, src: np.ndarray, dst: np.ndarray
) -> None:  # pragma: no cover (compiled)
    """``dst[:n_out] = W @ src[:n_in] + b`` for one row."""
    for o in range(n_out):
        total = np.float64(params[b_off + o])
        base = w_off + o * n_in
        for i in range(n_in):
            total += np.float64(params[base + i]) * np.float64(src[i])
        dst[o] = total


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def _normalize_row(row: np.ndarray, n: int, eps: float) -> float:  # pragma: no cover (compiled)
    """In place: ``row[:n] = (row - mean) / std`` (LayerNorm without affine parameters); :return: ``1 / std``"""
    mean = 0.0
    for o in range(n):
        mean += row[o]
    mean /= n
    var = 0.0
    for o in range(n):
        row[o] -= mean
        var += row[o] * row[o]
    inv_std = 1.0 / math.sqrt(var / n + eps)
    for o in range(n):
        row[o] *= inv_std
    return inv_std


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def mlp_forward(
    params: np.ndarray,
    layout: np.ndarray,
    x: np.ndarray,
    layer_norm: bool,
    eps: float,
    slope: float,
    acts: np.ndarray,
    pres: np.ndarray,
    inv_stds: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover (compiled)
    """
    :param params: the flat parameter vector, float32
    :param layout: ``(n_layers, 4)`` int64, see the module docstring
    :param x: inputs ``(rows, n_in)``, float32
    :param layer_norm: whether each hidden layer's pre-activation is normalised (LayerNorm without affine parameters)
    :param eps: LayerNorm's epsilon
    :param slope: the activation (see the module docstring)
    :param acts: ``(n_hidden + 1, rows, width)`` float32, written: the input, then each hidden layer's output
    :param pres: ``(n_hidden, rows, width)`` float32, written: each hidden layer's (normalised) pre-activation
    :param inv_stds: ``(n_hidden, rows)`` float32, written: each hidden layer's ``1 / std`` (LayerNorm)
    :param out: ``(rows, n_out)`` float32, written: the head's output
    """
    n_hidden = layout.shape[0] - 1
    tanh = math.isnan(slope)
    row = np.empty(max(acts.shape[2], out.shape[1]), dtype=np.float64)
    for r in range(x.shape[0]):
        acts[0, r, : x.shape[1]] = x[r]
        for layer in range(n_hidden):
            n_out = layout[layer, 3]
            _linear_row(params, layout[layer, 0], layout[layer, 1], layout[layer, 2], n_out, acts[layer, r], row)
            if layer_norm:
                inv_stds[layer, r] = _normalize_row(row, n_out, eps)
            for o in range(n_out):
                pre = row[o]
                pres[layer, r, o] = pre
                if tanh:
                    acts[layer + 1, r, o] = math.tanh(pre)
                else:
                    acts[layer + 1, r, o] = pre if pre > 0.0 else slope * pre
        head = layout[n_hidden]
        _linear_row(params, head[0], head[1], head[2], out.shape[1], acts[n_hidden, r], row)
        out[r, :] = row[: out.shape[1]]


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def _hidden_backward(
    grad: np.ndarray, n: int, pre: np.ndarray, post: np.ndarray, inv_std: float, layer_norm: bool, slope: float
) -> None:  # pragma: no cover (compiled)
    """In place, ``grad[:n]`` from a hidden layer's output to its pre-activation (before LayerNorm)."""
    for o in range(n):
        if math.isnan(slope):  # Tanh
            grad[o] *= 1.0 - np.float64(post[o]) * np.float64(post[o])
        elif not pre[o] > 0.0:
            grad[o] *= slope
    if layer_norm:
        # Backward of (z - mean(z)) / std(z): project out the mean and the normalised direction.
        mean_grad = 0.0
        mean_grad_pre = 0.0
        for o in range(n):
            mean_grad += grad[o]
            mean_grad_pre += grad[o] * pre[o]
        mean_grad /= n
        mean_grad_pre /= n
        for o in range(n):
            grad[o] = inv_std * (grad[o] - mean_grad - pre[o] * mean_grad_pre)


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def _linear_backward_row(
    params: np.ndarray, w_off: int, b_off: int, n_in: int, n_out: int, grad: np.ndarray, src: np.ndarray, grads: np.ndarray
) -> None:  # pragma: no cover (compiled)
    """One row's gradients of a linear layer's weight and bias, written into ``grads`` (the row's buffer)."""
    for o in range(n_out):
        g = grad[o]
        grads[b_off + o] = g
        base = w_off + o * n_in
        for i in range(n_in):
            grads[base + i] = g * src[i]


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def _input_grad(
    params: np.ndarray, w_off: int, n_in: int, n_out: int, grad: np.ndarray, grad_in: np.ndarray
) -> None:  # pragma: no cover (compiled)
    """``grad_in[:n_in] = W.T @ grad[:n_out]``"""
    grad_in[:n_in] = 0.0
    for o in range(n_out):
        g = grad[o]
        base = w_off + o * n_in
        for i in range(n_in):
            grad_in[i] += g * params[base + i]


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def mlp_backward(
    params: np.ndarray,
    layout: np.ndarray,
    grad_out: np.ndarray,
    layer_norm: bool,
    slope: float,
    acts: np.ndarray,
    pres: np.ndarray,
    inv_stds: np.ndarray,
    grads: np.ndarray,
) -> None:  # pragma: no cover (compiled)
    """
    Per-row gradients of ``sum(grad_out * output)`` with respect to every parameter of the MLP and its head.

    :param params: the flat parameter vector, float32
    :param layout: ``(n_layers, 4)`` int64, see the module docstring
    :param grad_out: gradient with respect to the head's output ``(rows, n_out)``
    :param layer_norm: as in :func:`mlp_forward`
    :param slope: as in :func:`mlp_forward`
    :param acts: :func:`mlp_forward`'s ``acts`` (its first ``rows`` rows are used)
    :param pres: :func:`mlp_forward`'s ``pres``
    :param inv_stds: :func:`mlp_forward`'s ``inv_stds``
    :param grads: ``(rows, n_params)`` float32, written at the MLP's offsets
    """
    n_layers = layout.shape[0]
    width = max(acts.shape[2], grad_out.shape[1])
    grad = np.empty(width, dtype=np.float64)
    grad_in = np.empty(width, dtype=np.float64)
    for r in range(grad_out.shape[0]):
        grad[: grad_out.shape[1]] = grad_out[r]
        for layer in range(n_layers - 1, -1, -1):
            w_off, b_off, n_in, n_out = layout[layer, 0], layout[layer, 1], layout[layer, 2], layout[layer, 3]
            if layer < n_layers - 1:
                _hidden_backward(
                    grad, n_out, pres[layer, r], acts[layer + 1, r], np.float64(inv_stds[layer, r]), layer_norm, slope
                )
            _linear_backward_row(params, w_off, b_off, n_in, n_out, grad, acts[layer, r], grads[r])
            if layer > 0:  # the first layer's input needs no gradient
                _input_grad(params, w_off, n_in, n_out, grad, grad_in)
                grad, grad_in = grad_in, grad
