"""The compiled form of one env's one-step update with ``update_rule="optimizer"`` and Adam, on the NumPy backend.

With one env a step of the textbook rule is V(s) and V(s'), the TD error, the gradients of the actor's and the
critic's losses, and Adam's step on the actor's and the critic's param groups. As NumPy operations and Python calls
that was about sixty microseconds a step, several times its arithmetic; :func:`optimizer_row` does it in one call.

It computes what :meth:`~sb3_ac_plus.one_step_ac.one_step_ac.OneStepAC._optimizer_update` computes with the backend's
operations, for Categorical, diagonal Gaussian and gSDE actions: the TD error and the gradients in float64, rounded to
float32 where they are stored (so within float32 rounding of the NumPy operations, not bit for bit), and Adam's step
element by element as :func:`~sb3_ac_plus.one_step_ac.numpy_adam.adam_write` computes it (bit for bit as torch's).
"""

import math

import numpy as np
from numba import njit

from sb3_ac_plus.one_step_ac.head_kernels import actor_head
from sb3_ac_plus.one_step_ac.kernel_options import FAST_SUMS
from sb3_ac_plus.one_step_ac.mlp_kernels import mlp_backward, mlp_forward
from sb3_ac_plus.one_step_ac.numpy_adam import adam_is_finite, adam_write, step_scalars
from sb3_ac_plus.one_step_ac.sequential_kernels import APPLIED, NON_FINITE_DELTA, NON_FINITE_GRADIENT, UNSAFE_UPDATE


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
    reward: np.float32,
    discount: np.float32,
    kind: int,
    discrete_action: int,
    box_action: np.ndarray,
    log_std_offset: int,
    sde_epsilon: float,
    ent_coef: float,
    actor_adam: tuple,
    critic_adam: tuple,
    stats: np.ndarray,
) -> int:  # pragma: no cover (compiled)
    """
    One env's one-step actor-critic update by Adam: the gradient of ``-(delta * log pi(a|s) + ent_coef * |delta| *
    H(pi(.|s)))`` (actor) and of ``-delta * V(s)`` (critic) is written into ``grad``, then Adam steps both param groups,
    only if every new parameter is finite (nothing else is written otherwise).

    :param params: the flat parameter vector ``[actor | critic]``, float32
    :param grad: the flat gradient vector, float32, written (the torch optimizer's ``.grad`` views)
    :param n_actor: length of the actor's part (the first param group)
    :param actor_layout: the actor MLP and head's layout (see :mod:`~sb3_ac_plus.one_step_ac.mlp_kernels`), with
        ``actor_norm``, ``actor_eps`` and ``actor_slope``; ``critic_layout`` etc. the critic's
    :param obs: the normalised observation ``(1, obs_dim)``, float32; ``next_obs`` the one V(s') is computed at
    :param reward: the (scaled) reward; ``discount`` the discount of V(s') (0 at a termination)
    :param kind: the action distribution (:mod:`~sb3_ac_plus.one_step_ac.head_kernels`), with ``discrete_action``
        or ``box_action`` the action taken, ``log_std_offset`` and ``sde_epsilon``
    :param ent_coef: the entropy coefficient
    :param actor_adam: the actor group's arguments of :func:`~sb3_ac_plus.one_step_ac.numpy_adam.adam_write`
        (parameter and gradient views, ``exp_avg``, ``exp_avg_sq``, the step's scalars); ``critic_adam`` the critic's
    :param stats: ``(3,)`` float64, written: ``delta``, ``log pi`` and the entropy
    :return: :data:`APPLIED`, or the failure (:data:`NON_FINITE_DELTA`, :data:`NON_FINITE_GRADIENT`, or
        :data:`UNSAFE_UPDATE` for a step that would make a parameter non-finite)
    """
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
    head = np.empty((1, n_out), dtype=np.float32)
    mlp_forward(params, actor_layout, obs, actor_norm, actor_eps, actor_slope, a_acts, a_pres, a_inv, head)
    entropy_weight = ent_coef * (1.0 if delta > 0.0 else (-1.0 if delta < 0.0 else 0.0))
    grads = np.zeros((1, n_params), dtype=np.float32)
    grad_out = np.empty((1, n_out), dtype=np.float32)
    log_probs = np.empty(n_out, dtype=np.float64)
    log_prob, entropy = actor_head(
        kind,
        head[0],
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
def optimizer_rows(
    params: np.ndarray,
    grad: np.ndarray,
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
    rewards: np.ndarray,
    discounts: np.ndarray,
    kind: int,
    discrete_actions: np.ndarray,
    box_actions: np.ndarray,
    log_std_offset: int,
    sde_epsilon: float,
    ent_coef: float,
    actor_views: tuple,
    critic_views: tuple,
    actor_hyper: np.ndarray,
    critic_hyper: np.ndarray,
    stats: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover (compiled)
    """
    :func:`optimizer_row` for each row in turn, each at the parameters (and Adam's state) the rows before it left,
    until a row is refused: ``combine_envs="sequential"`` with Adam.

    :param obs: the rows' normalised states ``(n_rows, obs_dim)``; ``next_obs`` the states V(s') is computed at, row
        ``next_index[i]`` for row ``i``
    :param rewards: each row's (scaled) reward ``(n_rows,)``; ``discounts`` each row's discount of V(s')
    :param discrete_actions: the rows' Categorical actions ``(n_rows,)``; ``box_actions`` their Box actions
        ``(n_rows, action_dim)`` (one of the two is unused)
    :param actor_views: the actor group's parameter, gradient, ``exp_avg`` and ``exp_avg_sq`` views; ``critic_views``
        the critic's
    :param actor_hyper: the actor group's Adam hyperparameters and step count before the first row (``hyper`` of
        :func:`~sb3_ac_plus.one_step_ac.numpy_adam.step_scalars`, then the count); each row is one Adam step;
        ``critic_hyper`` the critic's
    :param stats: ``(n_rows, 3)`` float64, written for each row applied: ``delta``, ``log pi`` and the entropy
    :return: :data:`APPLIED` or the refused row's failure, and the number of rows applied (those before it)
    """
    n_rows = obs.shape[0]
    for row in range(n_rows):
        target = next_index[row]
        status = optimizer_row(
            params,
            grad,
            n_actor,
            actor_layout,
            actor_norm,
            actor_eps,
            actor_slope,
            critic_layout,
            critic_norm,
            critic_eps,
            critic_slope,
            obs[row : row + 1],
            next_obs[target : target + 1],
            rewards[row],
            discounts[row],
            kind,
            discrete_actions[row],
            box_actions[row],
            log_std_offset,
            sde_epsilon,
            ent_coef,
            # numba builds these tuples by concatenation (a starred tuple display is not one it compiles everywhere)
            actor_views + (step_scalars(actor_hyper, actor_hyper[5] + row + 1.0),),  # noqa: RUF005
            critic_views + (step_scalars(critic_hyper, critic_hyper[5] + row + 1.0),),  # noqa: RUF005
            stats[row],
        )
        if status != APPLIED:
            return status, row
    return APPLIED, n_rows
