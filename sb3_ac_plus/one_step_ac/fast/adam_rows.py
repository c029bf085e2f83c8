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
from sb3_ac_plus.one_step_ac.fast.td_gradients import make_scratch, td_gradients
from sb3_ac_plus.one_step_ac.rows import APPLIED, NON_FINITE_GRADIENT, UNSAFE_UPDATE


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
# are explicit; see adam), and the loops that may be reassociated are in the helpers, which say so.
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
    One Adam step per row, in turn, each on the row's loss ``-(delta * log pi(a|s) + ent_coef * |delta| *
    H(pi(.|s))) - delta * V(s)``, its gradient written into ``grad``; a row whose step would make a parameter non-finite
    is refused and writes nothing (the rows before it stay applied, for the caller to restore).

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
    n_rows, obs_dim = rows[0].shape
    scratch = make_scratch(obs_dim, actor_net[0], critic_net[0], params.shape[0])
    for row in range(n_rows):
        status, delta, log_prob, entropy = td_gradients(params, actor_net, critic_net, head, rows, row, scratch)
        if status != APPLIED:
            return status, row
        # The loss's gradient: -delta times the gradients of the objectives, rounded to float32 once.
        if not math.isfinite(_scaled_copy_sum(np.float32(-delta), scratch[-1][0], grad)):
            return NON_FINITE_GRADIENT, row
        # numba builds these tuples by concatenation (a starred tuple display is not one it compiles everywhere)
        actor_adam = actor_views + (step_scalars(actor_hyper, actor_hyper[5] + row + 1.0),)  # noqa: RUF005
        critic_adam = critic_views + (step_scalars(critic_hyper, critic_hyper[5] + row + 1.0),)  # noqa: RUF005
        if not (adam_is_finite(*actor_adam) and adam_is_finite(*critic_adam)):
            return UNSAFE_UPDATE, row
        adam_write(*actor_adam)
        adam_write(*critic_adam)
        stats[row, 0] = delta
        stats[row, 1] = log_prob
        stats[row, 2] = entropy
        stats[row, 3] = actor_hyper[0]
        stats[row, 4] = critic_hyper[0]
    return APPLIED, n_rows
