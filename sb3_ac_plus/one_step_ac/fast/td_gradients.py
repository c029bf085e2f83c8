"""One row of a compiled update: the TD error and the gradients of the actor's and the critic's objectives.

Both compiled updates (:mod:`~sb3_ac_plus.one_step_ac.fast.bounded_rows`, :mod:`~sb3_ac_plus.one_step_ac.fast.adam_rows`)
start each row here, as the reference does (:mod:`~sb3_ac_plus.one_step_ac.reference`, steps 1 and 2).
"""

import math

import numpy as np
from numba import njit

from sb3_ac_plus.one_step_ac.fast.compiler import FAST_SUMS
from sb3_ac_plus.one_step_ac.fast.heads import actor_head
from sb3_ac_plus.one_step_ac.fast.mlp import mlp_backward, mlp_forward
from sb3_ac_plus.one_step_ac.rows import APPLIED, NON_FINITE_DELTA, NON_FINITE_GRADIENT


@njit(cache=True, nogil=True)
def make_scratch(
    obs_dim: int, actor_layout: np.ndarray, critic_layout: np.ndarray, n_params: int
) -> tuple:  # pragma: no cover
    """:return: the buffers :func:`td_gradients` works in, allocated once per update"""
    a_hidden, c_hidden = actor_layout.shape[0] - 1, critic_layout.shape[0] - 1
    a_width = max(obs_dim, actor_layout[:, 3].max())
    c_width = max(obs_dim, critic_layout[:, 3].max())
    n_out = actor_layout[a_hidden, 3]
    return (
        np.empty((a_hidden + 1, 1, a_width), dtype=np.float32),  # the actor's layer outputs
        np.empty((max(a_hidden, 1), 1, a_width), dtype=np.float32),  # its pre-activations
        np.ones((max(a_hidden, 1), 1), dtype=np.float32),  # its LayerNorms' 1 / std
        np.empty((c_hidden + 1, 2, c_width), dtype=np.float32),  # the critic's, for s and s'
        np.empty((max(c_hidden, 1), 2, c_width), dtype=np.float32),
        np.ones((max(c_hidden, 1), 2), dtype=np.float32),
        np.empty((1, n_out), dtype=np.float32),  # the actor head's output
        np.empty((2, 1), dtype=np.float32),  # V(s), V(s')
        np.empty((2, obs_dim), dtype=np.float32),  # s, s'
        np.empty((1, n_out), dtype=np.float32),  # the gradient at the actor head's output
        np.ones((1, 1), dtype=np.float32),  # the gradient at the critic's output
        np.empty(n_out, dtype=np.float64),  # log-probabilities (Categorical)
        np.zeros((1, n_params), dtype=np.float32),  # the row's gradients, laid out as the parameter vector
    )


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def td_gradients(
    params: np.ndarray,
    actor_net: tuple,
    critic_net: tuple,
    head: tuple,
    rows: tuple,
    row: int,
    scratch: tuple,
) -> tuple[int, np.float32, float, float]:  # pragma: no cover (compiled)
    """
    Row ``row``'s ``delta = G + discount * V(s') - V(s)`` and, into ``scratch``'s last buffer, the gradients of
    ``log pi(a|s) + ent_coef * sign(delta) * H(pi(.|s))`` (the actor's part) and of ``V(s)`` (the critic's part).

    :param params: the flat parameter vector ``[actor | critic]``, float32
    :param actor_net: the actor MLP's ``(layout, layer_norm, eps, slope)``; ``critic_net`` the critic's
    :param head: ``(kind, log_std_offset, sde_epsilon, ent_coef)``
    :param rows: as :func:`~sb3_ac_plus.one_step_ac.fast.bounded_rows.bounded_rows` takes them
    :param scratch: :func:`make_scratch`'s buffers
    :return: :data:`~sb3_ac_plus.one_step_ac.rows.APPLIED` or the reason the row is refused, then ``delta``,
        ``log pi(a|s)`` and the entropy
    """
    actor_layout, actor_norm, actor_eps, actor_slope = actor_net
    critic_layout, critic_norm, critic_eps, critic_slope = critic_net
    kind, log_std_offset, sde_epsilon, ent_coef = head
    obs, next_obs, next_index, returns, discounts, discrete_actions, box_actions, _ = rows
    a_acts, a_pres, a_inv, c_acts, c_pres, c_inv, out, values, pair, grad_out, critic_grad_out, log_probs, grads = scratch
    pair[0] = obs[row]
    pair[1] = next_obs[next_index[row]]
    mlp_forward(params, critic_layout, pair, critic_norm, critic_eps, critic_slope, c_acts, c_pres, c_inv, values)
    delta = np.float32(np.float32(returns[row] + discounts[row] * values[1, 0]) - values[0, 0])
    if not math.isfinite(delta):
        return NON_FINITE_DELTA, delta, 0.0, 0.0
    entropy_weight = ent_coef * (1.0 if delta > 0.0 else (-1.0 if delta < 0.0 else 0.0))
    mlp_forward(params, actor_layout, pair[:1], actor_norm, actor_eps, actor_slope, a_acts, a_pres, a_inv, out)
    n_hidden = actor_layout.shape[0] - 1
    latent = a_acts[n_hidden, 0, : actor_layout[n_hidden, 2]]
    discrete_action = discrete_actions[row] if discrete_actions.shape[0] > 0 else 0
    box_action = box_actions[row] if box_actions.shape[0] > 0 else out[0]  # out[0]: unused, of the same type
    log_prob, entropy = actor_head(
        kind, out[0], latent, params, log_std_offset, sde_epsilon, entropy_weight, discrete_action, box_action,
        log_probs, grad_out[0], grads[0],
    )  # fmt: skip
    mlp_backward(params, actor_layout, grad_out, actor_norm, actor_slope, a_acts, a_pres, a_inv, grads)
    mlp_backward(params, critic_layout, critic_grad_out, critic_norm, critic_slope, c_acts, c_pres, c_inv, grads)
    total = 0.0
    for i in range(grads.shape[1]):
        total += grads[0, i]
    if not math.isfinite(total):
        return NON_FINITE_GRADIENT, delta, log_prob, entropy
    return APPLIED, delta, log_prob, entropy
