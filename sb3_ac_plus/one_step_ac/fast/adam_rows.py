"""The compiled update with ``update_rule="optimizer"`` and Adam: the rows of a VecEnv step in turn.

Each row is one Adam step on the one-step actor-critic loss, at the parameters (and Adam state) the rows before it
left, as the reference (:func:`~sb3_ac_plus.one_step_ac.reference.reference_update`) computes it with the policy's
torch Adam: V(s) and V(s'), the TD error, the losses' gradient (float64 sums, rounded to float32 where stored) and
Adam's step element by element as :func:`~sb3_ac_plus.one_step_ac.fast.adam.adam_write` computes it (bit for bit as
torch's single-tensor Adam).
"""

import math

import numpy as np
from numba import njit

from sb3_ac_plus.one_step_ac.fast.adam import adam_is_finite, adam_write, step_scalars
from sb3_ac_plus.one_step_ac.fast.compiler import FAST_SUMS
from sb3_ac_plus.one_step_ac.fast.heads import actor_head
from sb3_ac_plus.one_step_ac.fast.mlp import mlp_backward, mlp_forward
from sb3_ac_plus.one_step_ac.rows import APPLIED, NON_FINITE_DELTA, NON_FINITE_GRADIENT, UNSAFE_UPDATE


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def _scaled_copy_sum(weight: np.float32, src: np.ndarray, dst: np.ndarray) -> float:  # pragma: no cover (compiled)
    """``dst = weight * src`` (float32, rounded once); :return: the sum of ``dst`` (float64)"""
    total = 0.0
    for i in range(src.shape[0]):
        value = weight * src[i]
        dst[i] = value
        total += value
    return total


# No fastmath here: numba compiles the kernels this one calls without options of their own with the caller's (Adam's
# are explicit; see numpy_adam), and the loops that may be reassociated are in the helpers above, which say so.
@njit(cache=True, nogil=True)
def optimizer_row(
    params: np.ndarray,
    grad: np.ndarray,
    actor_net: tuple,
    critic_net: tuple,
    head: tuple,
    obs: np.ndarray,
    next_obs: np.ndarray,
    reward: np.float32,
    discount: np.float32,
    discrete_action: int,
    box_action: np.ndarray,
    actor_adam: tuple,
    critic_adam: tuple,
    stats: np.ndarray,
) -> int:  # pragma: no cover (compiled)
    """
    One row's update by Adam: the gradient of ``-(delta * log pi(a|s) + ent_coef * |delta| * H(pi(.|s)))`` (actor)
    and of ``-delta * V(s)`` (critic) is written into ``grad``, then Adam steps both param groups, only if every new
    parameter is finite (nothing else is written otherwise).

    :param obs: the normalised observation ``(1, obs_dim)``, float32; ``next_obs`` the one V(s') is computed at
    :param reward: the (scaled) reward or k-step return; ``discount`` the discount of V(s') (0 at a termination)
    :param discrete_action: the action taken (Categorical); ``box_action`` (Gaussian, gSDE)
    :param actor_adam: the actor group's arguments of :func:`~sb3_ac_plus.one_step_ac.fast.adam.adam_write`
        (parameter and gradient views, ``exp_avg``, ``exp_avg_sq``, the step's scalars); ``critic_adam`` the critic's
    :param stats: ``(5,)`` float64, written: ``delta``, ``log pi`` and the entropy (the step sizes by the caller)
    :return: :data:`APPLIED`, or the reason it was refused
    """
    actor_layout, actor_norm, actor_eps, actor_slope = actor_net
    critic_layout, critic_norm, critic_eps, critic_slope = critic_net
    kind, log_std_offset, sde_epsilon, ent_coef = head
    n_params = params.shape[0]
    a_hidden, c_hidden = actor_layout.shape[0] - 1, critic_layout.shape[0] - 1
    a_width = max(obs.shape[1], actor_layout[:, 3].max())
    c_width = max(obs.shape[1], critic_layout[:, 3].max())
    n_out = actor_layout[a_hidden, 3]
    n_latent = actor_layout[a_hidden, 2]
    pair = np.empty((2, obs.shape[1]), dtype=np.float32)
    pair[0] = obs[0]
    pair[1] = next_obs[0]
    c_acts = np.empty((c_hidden + 1, 2, c_width), dtype=np.float32)
    c_pres = np.empty((max(c_hidden, 1), 2, c_width), dtype=np.float32)
    c_inv = np.ones((max(c_hidden, 1), 2), dtype=np.float32)
    values = np.empty((2, 1), dtype=np.float32)
    mlp_forward(params, critic_layout, pair, critic_norm, critic_eps, critic_slope, c_acts, c_pres, c_inv, values)
    delta = np.float32(np.float32(reward + discount * values[1, 0]) - values[0, 0])
    if not math.isfinite(delta):
        return NON_FINITE_DELTA
    a_acts = np.empty((a_hidden + 1, 1, a_width), dtype=np.float32)
    a_pres = np.empty((max(a_hidden, 1), 1, a_width), dtype=np.float32)
    a_inv = np.ones((max(a_hidden, 1), 1), dtype=np.float32)
    out = np.empty((1, n_out), dtype=np.float32)
    mlp_forward(params, actor_layout, obs, actor_norm, actor_eps, actor_slope, a_acts, a_pres, a_inv, out)
    entropy_weight = ent_coef * (1.0 if delta > 0.0 else (-1.0 if delta < 0.0 else 0.0))
    grads = np.zeros((1, n_params), dtype=np.float32)
    grad_out = np.empty((1, n_out), dtype=np.float32)
    log_probs = np.empty(n_out, dtype=np.float64)
    log_prob, entropy = actor_head(
        kind,
        out[0],
        a_acts[a_hidden, 0, :n_latent],
        params,
        log_std_offset,
        sde_epsilon,
        entropy_weight,
        discrete_action,
        box_action,
        log_probs,
        grad_out[0],
        grads[0],
    )
    mlp_backward(params, actor_layout, grad_out, actor_norm, actor_slope, a_acts, a_pres, a_inv, grads)
    critic_grad_out = np.ones((1, 1), dtype=np.float32)
    mlp_backward(params, critic_layout, critic_grad_out, critic_norm, critic_slope, c_acts, c_pres, c_inv, grads)
    # The loss's gradient: -delta times the gradients of the objectives, rounded to float32 once.
    total = _scaled_copy_sum(np.float32(-delta), grads[0], grad)
    if not math.isfinite(total):
        return NON_FINITE_GRADIENT
    if not (adam_is_finite(*actor_adam) and adam_is_finite(*critic_adam)):
        return UNSAFE_UPDATE
    adam_write(*actor_adam)
    adam_write(*critic_adam)
    stats[0] = delta
    stats[1] = log_prob
    stats[2] = entropy
    return APPLIED


@njit(cache=True, nogil=True)
def adam_rows(
    params: np.ndarray,
    grad: np.ndarray,
    n_actor: int,
    actor_net: tuple,
    critic_net: tuple,
    head: tuple,
    rows: tuple,
    actor_views: tuple,
    critic_views: tuple,
    actor_hyper: np.ndarray,
    critic_hyper: np.ndarray,
    stats: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover (compiled)
    """
    :func:`optimizer_row` for each row in turn, until a row is refused (it writes nothing; the rows before it stay
    applied, for the caller to restore).

    :param params: the flat parameter vector ``[actor | critic]``, float32
    :param grad: the flat gradient vector, float32, written (the torch optimizer's ``.grad`` views)
    :param n_actor: length of the actor's part (the first param group)
    :param actor_net: the actor MLP's ``(layout, layer_norm, eps, slope)``; ``critic_net`` the critic's
    :param head: ``(kind, log_std_offset, sde_epsilon, ent_coef)``
    :param rows: as :func:`~sb3_ac_plus.one_step_ac.fast.bounded_rows.bounded_rows` takes them (no traces here)
    :param actor_views: the actor group's parameter, gradient, ``exp_avg`` and ``exp_avg_sq`` views; ``critic_views``
        the critic's
    :param actor_hyper: the actor group's Adam hyperparameters and step count before the first row (``hyper`` of
        :func:`~sb3_ac_plus.one_step_ac.fast.adam.step_scalars`, then the count); ``critic_hyper`` the critic's
    :param stats: ``(n_rows, 5)`` float64, written (:data:`~sb3_ac_plus.one_step_ac.rows.STAT_NAMES`)
    :return: :data:`APPLIED` or the refused row's reason, and that row (the number of rows when applied)
    """
    obs, next_obs, next_index, rewards, discounts, discrete_actions, box_actions, _ = rows
    for row in range(obs.shape[0]):
        target = next_index[row]
        status = optimizer_row(
            params,
            grad,
            actor_net,
            critic_net,
            head,
            obs[row : row + 1],
            next_obs[target : target + 1],
            rewards[row],
            discounts[row],
            discrete_actions[row] if discrete_actions.shape[0] > 0 else 0,
            box_actions[row] if box_actions.shape[0] > 0 else rewards[row : row + 1],
            # numba builds these tuples by concatenation (a starred tuple display is not one it compiles everywhere)
            actor_views + (step_scalars(actor_hyper, actor_hyper[5] + row + 1.0),),  # noqa: RUF005
            critic_views + (step_scalars(critic_hyper, critic_hyper[5] + row + 1.0),),  # noqa: RUF005
            stats[row],
        )
        if status != APPLIED:
            return status, row
        stats[row, 3] = actor_hyper[0]
        stats[row, 4] = critic_hyper[0]
    return APPLIED, obs.shape[0]
