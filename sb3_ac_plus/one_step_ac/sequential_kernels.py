"""The compiled form of ``combine_envs="sequential"`` on the NumPy backend: the rows' updates one after the other.

Each row (one env's transition, or one due state of an n-step window) is learned from with the parameters its
predecessors left: V(s) and V(s') of that row, the actor's pass at the action taken, the TD error, the gradients, the
row's eligibility trace, ObGD's step size (or plain SGD) and the update itself, all in one call for the whole VecEnv
step. In Python each row would be some forty NumPy operations of about a microsecond each; here a row costs about what
its arithmetic costs.

It computes what :meth:`~sb3_ac_plus.one_step_ac.one_step_ac.OneStepAC._sequential_update` computes row by row with
the backend's operations, for the NumPy backend's Categorical and diagonal Gaussian (state-independent std) policies
with ``update_rule`` ``"obgd"`` or ``"sgd"``; sums are taken in float64 and rounded to float32 where they are stored,
so the two agree to float32 rounding, not bit for bit. The layouts are those of
:mod:`~sb3_ac_plus.one_step_ac.mlp_kernels`.
"""

import math

import numpy as np
from numba import njit

from sb3_ac_plus.one_step_ac.kernel_options import FAST_SUMS
from sb3_ac_plus.one_step_ac.mlp_kernels import mlp_backward, mlp_forward
from sb3_ac_plus.one_step_ac.head_kernels import CATEGORICAL, GAUSSIAN, actor_head
from sb3_ac_plus.one_step_ac.trace_updates import MAX_UPDATE_NORM

# What :func:`sequential_rows` returns: every row applied, or the kind of failure (nothing after it is applied).
APPLIED = 0
NON_FINITE_DELTA = 1
NON_FINITE_GRADIENT = 2
UNSAFE_UPDATE = 3


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def _step_size(delta: float, norm: float, lr: float, kappa: float, bounded: bool) -> float:  # pragma: no cover
    """ObGD's ``lr / max(1, lr * kappa * max(|delta|, 1) * |e|_1)``, or ``lr`` (SGD)."""
    if not bounded:
        return lr
    return lr / max(lr * kappa * max(abs(delta), 1.0) * norm, 1.0)


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def _trace_row(
    traces: np.ndarray, row: int, grads: np.ndarray, start: int, decay: float, direction: np.ndarray
) -> float:  # pragma: no cover
    """
    ``direction = decay * traces[row] + grads[start:start + n]`` (float32, as the batched traces round), written back
    into ``traces[row]`` when there are traces (``row >= 0``); :return: its L1 norm
    """
    decay32 = np.float32(decay)
    norm = 0.0
    for i in range(direction.shape[0]):
        if row >= 0:
            value = decay32 * traces[row, i] + grads[start + i]
            traces[row, i] = value
        else:
            value = grads[start + i]
        direction[i] = value
        norm += abs(np.float64(value))
    return float(np.float32(norm))


@njit(cache=True, nogil=True, fastmath=FAST_SUMS, error_model="numpy")
def _precondition_row(
    moments: np.ndarray, delta: np.float32, direction: np.ndarray, beta2: float, correction: float, eps: float
) -> float:  # pragma: no cover
    """
    AdaptiveObGD, in place: ``moments = beta2 * moments + (1 - beta2) * (delta * direction) ** 2`` and
    ``direction /= sqrt(moments / correction + eps)`` (float32, as the row-by-row operations round);
    :return: the L1 norm of the divided direction
    """
    delta32 = np.float32(delta)
    beta2_32 = np.float32(beta2)
    rest = np.float32(1.0 - beta2)
    correction32 = np.float32(correction)
    eps32 = np.float32(eps)
    norm = 0.0
    for i in range(direction.shape[0]):
        update = delta32 * direction[i]
        moment = moments[i] * beta2_32 + rest * (update * update)
        moments[i] = moment
        value = direction[i] / np.float32(math.sqrt(np.float64(moment / correction32 + eps32)))
        direction[i] = value
        norm += abs(np.float64(value))
    return float(np.float32(norm))


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def _add_scaled(params: np.ndarray, start: int, weight: float, direction: np.ndarray) -> None:  # pragma: no cover
    for i in range(direction.shape[0]):
        params[start + i] = params[start + i] + weight * direction[i]


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def sequential_rows(
    params: np.ndarray,
    n_actor: int,
    actor_layout: np.ndarray,
    actor_norm: bool,
    actor_eps: float,
    actor_slope: float,
    critic_layout: np.ndarray,
    critic_norm: bool,
    critic_eps: float,
    critic_slope: float,
    obs: np.ndarray,
    next_obs: np.ndarray,
    next_index: np.ndarray,
    returns: np.ndarray,
    discounts: np.ndarray,
    gaussian: bool,
    discrete_actions: np.ndarray,
    box_actions: np.ndarray,
    log_std_offset: int,
    ent_coef: float,
    actor_traces: np.ndarray,
    critic_traces: np.ndarray,
    trace_index: np.ndarray,
    decay: float,
    actor_lr: float,
    critic_lr: float,
    actor_kappa: float,
    critic_kappa: float,
    bounded: bool,
    actor_moments: np.ndarray,
    critic_moments: np.ndarray,
    moments_count: int,
    beta2: float,
    moments_eps: float,
    stats: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover (compiled)
    """
    Learn from the rows in order, each with the parameters the previous rows left, writing ``params`` (and the trace
    rows) in place. The caller keeps copies to restore if a row fails: the rows before it are applied, it and those
    after it are not.

    :param params: the flat parameter vector ``[actor | critic]``, float32
    :param n_actor: length of the actor's part
    :param actor_layout: the actor MLP and head's layout (offsets in ``params``)
    :param actor_norm: whether the actor's hidden layers use LayerNorm (``actor_eps`` its epsilon)
    :param actor_slope: the actor's activation, as in :mod:`~sb3_ac_plus.one_step_ac.mlp_kernels`
    :param critic_layout: the critic's, likewise (``critic_norm``, ``critic_eps``, ``critic_slope``)
    :param obs: the rows' normalised observations ``(rows, obs_dim)``, float32
    :param next_obs: normalised next observations ``(n_envs, obs_dim)``, float32
    :param next_index: the row of ``next_obs`` each row bootstraps from
    :param returns: each row's (discounted, k-step) reward sum
    :param discounts: each row's discount of ``V(s')`` (0 at a termination)
    :param gaussian: diagonal Gaussian actions (``box_actions``, ``log_std`` at ``log_std_offset``), else Categorical
        (``discrete_actions``)
    :param ent_coef: the entropy coefficient (the actor objective adds ``ent_coef * sign(delta) * H``)
    :param actor_traces: the actor's traces ``(n_envs, n_actor)``, updated in place at ``trace_index``
    :param critic_traces: the critic's ``(n_envs, n_critic)``
    :param trace_index: each row's trace (its env), or -1 for none (the update follows the gradient)
    :param decay: the trace decay ``gamma * lambda``
    :param bounded: ObGD's step sizes (``"obgd"``, ``"adaptive_obgd"``), else plain ``lr`` (``"sgd"``)
    :param actor_moments: AdaptiveObGD's second moments of the actor's updates ``(n_actor,)``, updated in place row by
        row (empty: ObGD or SGD, no preconditioning); ``critic_moments`` the critic's
    :param moments_count: the updates the moments had seen before these rows (for the bias correction)
    :param beta2: the moments' decay; ``moments_eps`` the term added under the square root
    :param stats: ``(rows, 5)`` float64, written: ``delta``, ``log pi``, entropy, the actor's and the critic's step size
    :return: :data:`APPLIED` or the failure, and the number of rows applied
    """
    n_rows = obs.shape[0]
    n_params = params.shape[0]
    n_critic = n_params - n_actor
    a_hidden, c_hidden = actor_layout.shape[0] - 1, critic_layout.shape[0] - 1
    a_width = max(obs.shape[1], actor_layout[:, 3].max())
    c_width = max(obs.shape[1], critic_layout[:, 3].max())
    n_out = actor_layout[a_hidden, 3]
    a_acts = np.empty((a_hidden + 1, 1, a_width), dtype=np.float32)
    a_pres = np.empty((max(a_hidden, 1), 1, a_width), dtype=np.float32)
    a_inv = np.ones((max(a_hidden, 1), 1), dtype=np.float32)
    c_acts = np.empty((c_hidden + 1, 2, c_width), dtype=np.float32)
    c_pres = np.empty((max(c_hidden, 1), 2, c_width), dtype=np.float32)
    c_inv = np.ones((max(c_hidden, 1), 2), dtype=np.float32)
    head = np.empty((1, n_out), dtype=np.float32)
    values = np.empty((2, 1), dtype=np.float32)
    pair = np.empty((2, obs.shape[1]), dtype=np.float32)
    grad_out = np.empty((1, n_out), dtype=np.float32)
    critic_grad_out = np.ones((1, 1), dtype=np.float32)
    grads = np.zeros((1, n_params), dtype=np.float32)
    actor_direction = np.empty(n_actor, dtype=np.float32)
    critic_direction = np.empty(n_critic, dtype=np.float32)
    log_probs = np.empty(n_out, dtype=np.float64)
    for r in range(n_rows):
        # V(s) and V(s') with the parameters as they are now.
        pair[0] = obs[r]
        pair[1] = next_obs[next_index[r]]
        mlp_forward(params, critic_layout, pair, critic_norm, critic_eps, critic_slope, c_acts, c_pres, c_inv, values)
        delta = np.float32(np.float32(returns[r] + discounts[r] * values[1, 0]) - values[0, 0])
        if not math.isfinite(delta):
            return NON_FINITE_DELTA, r
        entropy_weight = ent_coef * (1.0 if delta > 0.0 else (-1.0 if delta < 0.0 else 0.0))
        mlp_forward(params, actor_layout, obs[r : r + 1], actor_norm, actor_eps, actor_slope, a_acts, a_pres, a_inv, head)
        log_prob, entropy = actor_head(
            GAUSSIAN if gaussian else CATEGORICAL,
            head[0],
            head[0],
            params,
            log_std_offset,
            0.0,
            entropy_weight,
            discrete_actions[r] if not gaussian else 0,
            box_actions[r] if gaussian else head[0],
            log_probs,
            grad_out[0],
            grads[0],
        )
        mlp_backward(params, actor_layout, grad_out, actor_norm, actor_slope, a_acts, a_pres, a_inv, grads)
        mlp_backward(params, critic_layout, critic_grad_out, critic_norm, critic_slope, c_acts, c_pres, c_inv, grads)
        total = 0.0
        for i in range(n_params):
            total += grads[0, i]
        if not math.isfinite(total):
            return NON_FINITE_GRADIENT, r
        trace = trace_index[r]
        actor_norm1 = _trace_row(actor_traces, trace, grads[0], 0, decay, actor_direction)
        critic_norm1 = _trace_row(critic_traces, trace, grads[0], n_actor, decay, critic_direction)
        if actor_moments.shape[0] > 0:
            correction = 1.0 - beta2 ** (moments_count + r + 1)
            actor_norm1 = _precondition_row(actor_moments, delta, actor_direction, beta2, correction, moments_eps)
            critic_norm1 = _precondition_row(critic_moments, delta, critic_direction, beta2, correction, moments_eps)
        actor_step = np.float32(_step_size(float(delta), actor_norm1, actor_lr, actor_kappa, bounded))
        critic_step = np.float32(_step_size(float(delta), critic_norm1, critic_lr, critic_kappa, bounded))
        actor_weight, critic_weight = np.float32(actor_step * delta), np.float32(critic_step * delta)
        bound = abs(np.float64(actor_weight)) * actor_norm1 + abs(np.float64(critic_weight)) * critic_norm1
        if not bound < MAX_UPDATE_NORM:
            return UNSAFE_UPDATE, r
        _add_scaled(params, 0, np.float64(actor_weight), actor_direction)
        _add_scaled(params, n_actor, np.float64(critic_weight), critic_direction)
        stats[r, 0] = delta
        stats[r, 1] = log_prob
        stats[r, 2] = entropy
        stats[r, 3] = actor_step
        stats[r, 4] = critic_step
    return APPLIED, n_rows
