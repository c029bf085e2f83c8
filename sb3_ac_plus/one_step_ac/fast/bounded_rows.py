"""The compiled update with ObGD, AdaptiveObGD, intentional updates or SGD: the rows of a VecEnv step in turn.

Each row is learned from with the parameters the rows before it left, exactly as the reference
(:func:`~sb3_ac_plus.one_step_ac.reference.reference_update`) computes it: V(s) and V(s'), the TD error, the actor's
and the critic's gradients, the row's trace, AdaptiveObGD's second moments, the step size and the update, all in one
call. Sums are taken in float64 and rounded to float32 where they are stored, so the two agree to float32 rounding
(tests/test_parity.py). The network layouts are those of :mod:`~sb3_ac_plus.one_step_ac.fast.networks`.
"""

import math

import numpy as np
from numba import njit

from sb3_ac_plus.one_step_ac.fast.compiler import FAST_SUMS
from sb3_ac_plus.one_step_ac.fast.td_gradients import make_scratch, td_gradients
from sb3_ac_plus.one_step_ac.online_state import BETA_CLIP, BETA_NORM, CLIP_MULT
from sb3_ac_plus.one_step_ac.rows import APPLIED, MAX_UPDATE_NORM, UNSAFE_UPDATE


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
    ``direction = decay * traces[row] + grads[start:start + n]`` (float32), written back
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


@njit(cache=True, nogil=True, fastmath=False)
def _lane_dot(left: np.ndarray, left_start: int, right: np.ndarray, n: int, absolute: bool) -> float:  # pragma: no cover
    """
    ``sum(left[left_start:left_start + n] * right[:n])`` in float64, or ``sum(abs(right[:n]))`` if ``absolute``, in a
    fixed order: eight partial sums (element i into sum i % 8), added pairwise at the end. Independent sums run side by
    side, so this is fast without letting the compiler reorder it, and the result is the same on every CPU and for
    every array layout: the intentional rule's statistics are online state, compared bit for bit after a resume.
    """
    s0, s1, s2, s3, s4, s5, s6, s7 = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    end = n - n % 8
    for i in range(0, end, 8):
        s0 += _term(left, left_start, right, i, absolute)
        s1 += _term(left, left_start, right, i + 1, absolute)
        s2 += _term(left, left_start, right, i + 2, absolute)
        s3 += _term(left, left_start, right, i + 3, absolute)
        s4 += _term(left, left_start, right, i + 4, absolute)
        s5 += _term(left, left_start, right, i + 5, absolute)
        s6 += _term(left, left_start, right, i + 6, absolute)
        s7 += _term(left, left_start, right, i + 7, absolute)
    for i in range(end, n):
        s0 += _term(left, left_start, right, i, absolute)
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _term(left: np.ndarray, left_start: int, right: np.ndarray, i: int, absolute: bool) -> float:  # pragma: no cover
    """:func:`_lane_dot`'s term ``i``, in float64."""
    if absolute:
        return abs(np.float64(right[i]))
    return np.float64(left[left_start + i]) * np.float64(right[i])


@njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
def _intentional_direction(
    moments: np.ndarray,
    traces: np.ndarray,
    row: int,
    grads: np.ndarray,
    start: int,
    decay: float,
    direction: np.ndarray,
    beta2: float,
    eps: float,
    n_seen: int,
    scaled_grad: np.ndarray,
) -> tuple[float, float, float]:  # pragma: no cover
    """
    The elementwise half of one part's intentional update, as
    :class:`~sb3_ac_plus.one_step_ac.reference.IntentionalStep` computes it: writes the moments, the trace row
    (``row >= 0``) and the direction ``e / d`` (float32); :return: ``|grad|_d**2 = grad . (grad / d)`` and
    ``|e|_d**2 = e . (e / d)`` (float64), and the direction's L1 norm. ``scaled_grad``: float32 scratch at least as
    long as the part.
    """
    beta2_32, rest, eps32, decay32 = np.float32(beta2), np.float32(1.0 - beta2), np.float32(eps), np.float32(decay)
    correction = np.float32(1.0 - beta2**n_seen)
    n = direction.shape[0]
    for i in range(n):
        g = grads[start + i]
        moment = moments[i] * beta2_32 + (rest * g) * g
        moments[i] = moment
        scale = np.sqrt(moment / correction) + eps32
        scaled_grad[i] = g / scale
        value = g
        if row >= 0:
            value = decay32 * traces[row, i] + g
            traces[row, i] = value
        direction[i] = value / scale
    grad_norm = _lane_dot(grads, start, scaled_grad, n, False)
    trace_norm = grad_norm if row < 0 else _lane_dot(traces[row], 0, direction, n, False)
    return grad_norm, trace_norm, float(np.float32(_lane_dot(direction, 0, direction, n, True)))


@njit(cache=True, nogil=True, fastmath=False)
def _intentional_weight(
    part_stats: np.ndarray,
    grad_norm: float,
    trace_norm: float,
    delta: float,
    n_seen: int,
    decay: float,
    eta: float,
    normalize_delta: bool,
) -> tuple[float, float]:  # pragma: no cover
    """
    The scalar half: updates the part's statistics (``[sigma, delta_sq, delta_abs]``, float64) as
    :class:`~sb3_ac_plus.one_step_ac.reference.IntentionalStep` does; :return: the weight to apply the direction with
    and the step size
    """
    part_stats[0] += (1.0 - decay) * (grad_norm - part_stats[0])
    sigma = part_stats[0] / (1.0 - decay**n_seen)
    step = eta / max(math.sqrt(sigma * trace_norm), 1e-8)
    part_stats[1] = BETA_CLIP * part_stats[1] + (1.0 - BETA_CLIP) * delta * delta
    cap = CLIP_MULT * math.sqrt(part_stats[1] / (1.0 - BETA_CLIP**n_seen))
    clipped = min(abs(delta), cap) * (1.0 if delta >= 0.0 else -1.0)
    if normalize_delta:
        part_stats[2] = BETA_NORM * part_stats[2] + (1.0 - BETA_NORM) * abs(clipped)
        clipped /= max(part_stats[2] / (1.0 - BETA_NORM**n_seen), 1e-12)
    return clipped * step, step


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def _add_scaled(params: np.ndarray, start: int, weight: float, direction: np.ndarray) -> None:  # pragma: no cover
    for i in range(direction.shape[0]):
        params[start + i] = params[start + i] + weight * direction[i]


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def bounded_rows(
    params: np.ndarray,
    n_actor: int,
    actor_net: tuple,
    critic_net: tuple,
    head: tuple,
    rows: tuple,
    traces: tuple,
    moments: tuple,
    steps: tuple,
    intent: tuple,
    stats: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover (compiled)
    """
    Learn from the rows in order, writing ``params``, the traces and the moments in place. A refused row writes no
    parameter; the rows before it stay applied, and its trace and moments may be written: the caller restores them.

    :param params: the flat parameter vector ``[actor | critic]``, float32
    :param n_actor: length of the actor's part
    :param actor_net: the actor MLP's ``(layout, layer_norm, eps, slope)`` (:mod:`~sb3_ac_plus.one_step_ac.fast.mlp`);
        ``critic_net`` the critic's
    :param head: ``(kind, log_std_offset, sde_epsilon, ent_coef)``: the action distribution
        (:mod:`~sb3_ac_plus.one_step_ac.fast.heads`) and the entropy coefficient
    :param rows: ``(obs, next_obs, next_index, returns, discounts, discrete_actions, box_actions, trace_index)``, as
        :class:`~sb3_ac_plus.one_step_ac.rows.Rows` (normalised float32 observations; one of the two action arrays used)
    :param traces: ``(actor_traces, critic_traces, decay)``: the traces ``(n_envs, n)``, empty without traces, and
        their decay ``gamma * lambda``
    :param moments: ``(actor_moments, critic_moments, count, beta2, eps)``: AdaptiveObGD's second moments (empty
        arrays: no preconditioning), the updates they have seen, their decay and the term under the square root
    :param steps: ``(actor_lr, critic_lr, actor_kappa, critic_kappa, bounded)``: ObGD's step sizes if ``bounded``,
        else plain SGD (with ``intent``, the actor's and the critic's eta)
    :param intent: ``(actor_stats, critic_stats)``: the intentional rule's statistics of each part (float64), or empty
        arrays for the other rules
    :param stats: ``(rows, 5)`` float64, written (:data:`~sb3_ac_plus.one_step_ac.rows.STAT_NAMES`)
    :return: :data:`APPLIED` or the first refused row's reason, and that row (the number of rows when applied)
    """
    n_rows, obs_dim, trace_index = rows[0].shape[0], rows[0].shape[1], rows[7]
    actor_traces, critic_traces, decay = traces
    actor_moments, critic_moments, moments_count, beta2, moments_eps = moments
    actor_lr, critic_lr, actor_kappa, critic_kappa, bounded = steps
    n_params = params.shape[0]
    scratch = make_scratch(obs_dim, actor_net[0], critic_net[0], n_params)
    grads = scratch[-1]
    actor_direction = np.empty(n_actor, dtype=np.float32)
    critic_direction = np.empty(n_params - n_actor, dtype=np.float32)
    n_part = max(n_actor, n_params - n_actor) if intent[0].shape[0] > 0 else 0
    intent_scratch = np.empty(n_part, dtype=np.float32)
    for r in range(n_rows):
        status, delta, log_prob, entropy = td_gradients(params, actor_net, critic_net, head, rows, r, scratch)
        if status != APPLIED:
            return status, r
        trace = trace_index[r] if actor_traces.shape[0] > 0 else -1
        if intent[0].shape[0] > 0:
            seen = moments_count + r + 1
            grad_sq, trace_sq, actor_norm1 = _intentional_direction(
                actor_moments, actor_traces, trace, grads[0], 0, decay, actor_direction, beta2, moments_eps, seen,
                intent_scratch,
            )  # fmt: skip
            actor_weight64, actor_step64 = _intentional_weight(
                intent[0], grad_sq, trace_sq, float(delta), seen, decay, actor_lr, True
            )
            grad_sq, trace_sq, critic_norm1 = _intentional_direction(
                critic_moments, critic_traces, trace, grads[0], n_actor, decay, critic_direction, beta2, moments_eps,
                seen, intent_scratch,
            )  # fmt: skip
            critic_weight64, critic_step64 = _intentional_weight(
                intent[1], grad_sq, trace_sq, float(delta), seen, decay, critic_lr, False
            )
            actor_step, critic_step = np.float32(actor_step64), np.float32(critic_step64)
            actor_weight, critic_weight = np.float32(actor_weight64), np.float32(critic_weight64)
        else:
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
