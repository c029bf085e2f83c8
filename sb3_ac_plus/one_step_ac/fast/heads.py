"""The actor head's part of a compiled update: log pi(a|s), the entropy and their gradients, for one row.

Shared by :mod:`~sb3_ac_plus.one_step_ac.fast.bounded_rows` and :mod:`~sb3_ac_plus.one_step_ac.fast.adam_rows`, for
Categorical, diagonal Gaussian (state-independent std) and gSDE actions (SB3's formulas, as the reference reads them
from the policy's distribution), in float64, rounded to float32 where they are stored.
"""

import math

import numpy as np
from numba import njit

from sb3_ac_plus.one_step_ac.fast.compiler import FAST_SUMS

# The action distributions, as the compiled updates take them.
CATEGORICAL = 0
GAUSSIAN = 1
SDE = 2

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def actor_head(
    kind: int,
    head: np.ndarray,
    latent: np.ndarray,
    params: np.ndarray,
    log_std_offset: int,
    sde_epsilon: float,
    entropy_weight: float,
    discrete_action: int,
    box_action: np.ndarray,
    log_probs: np.ndarray,
    grad_out: np.ndarray,
    grads: np.ndarray,
) -> tuple[float, float]:  # pragma: no cover (compiled)
    """
    The gradients of ``log pi(a|s) + entropy_weight * H(pi(.|s))`` with respect to the head's output (``grad_out``)
    and to ``log_std`` (written into ``grads`` at ``log_std_offset``).

    :param kind: :data:`CATEGORICAL`, :data:`GAUSSIAN` or :data:`SDE`
    :param head: the actor head's output for the row ``(n_out,)``: logits, or the Gaussian's mean
    :param latent: the head's input (gSDE's std depends on it, without gradient, as SB3's ``learn_features=False``)
    :param params: the flat parameter vector; ``log_std`` at ``log_std_offset``: ``(n_out,)``, or ``(latent_dim,
        n_out)`` row-major with gSDE
    :param sde_epsilon: gSDE's term added to the variance
    :param discrete_action: the action taken (Categorical)
    :param box_action: the action taken, before any clipping (Gaussian and gSDE)
    :param log_probs: ``(n_out,)`` float64 scratch
    :param grad_out: ``(n_out,)`` float32, written
    :param grads: the row's flat gradient, float32 (only its ``log_std`` part is written here)
    :return: ``log pi(a|s)`` and the entropy
    """
    n_out = head.shape[0]
    log_prob = 0.0
    entropy = 0.0
    if kind == GAUSSIAN:
        for j in range(n_out):
            log_std = np.float64(params[log_std_offset + j])
            noise = (np.float64(box_action[j]) - head[j]) * math.exp(-log_std)
            # d log N(a; mu, std) / d mu = noise / std ; / d log_std = noise^2 - 1 ; d H / d log_std = 1
            grad_out[j] = noise * math.exp(-log_std)
            grads[log_std_offset + j] = noise * noise - 1.0 + entropy_weight
            log_prob += -0.5 * noise * noise - log_std - HALF_LOG_2PI
            entropy += 0.5 + HALF_LOG_2PI + log_std
    elif kind == SDE:
        n_latent = latent.shape[0]
        for j in range(n_out):
            # std_j^2 = sum_i latent_i^2 s_ij^2 + epsilon, with s = exp(log_std)
            variance = 0.0
            for i in range(n_latent):
                scale = math.exp(np.float64(params[log_std_offset + i * n_out + j]))
                variance += np.float64(latent[i]) * np.float64(latent[i]) * scale * scale
            variance += sde_epsilon
            std = math.sqrt(variance)
            noise = (np.float64(box_action[j]) - head[j]) / std
            grad_out[j] = noise / std
            # d (log N + w H) / d log s_ij = (noise_j^2 - 1 + w) latent_i^2 s_ij^2 / std_j^2
            per_action = (noise * noise - 1.0 + entropy_weight) / variance
            for i in range(n_latent):
                index = log_std_offset + i * n_out + j
                scale = math.exp(np.float64(params[index]))
                grads[index] = np.float64(latent[i]) * np.float64(latent[i]) * scale * scale * per_action
            log_scale = math.log(std)
            log_prob += -0.5 * noise * noise - log_scale - HALF_LOG_2PI
            entropy += 0.5 + HALF_LOG_2PI + log_scale
    else:
        top = np.float64(head[0])
        for j in range(1, n_out):
            top = max(top, np.float64(head[j]))
        total = 0.0
        for j in range(n_out):
            total += math.exp(np.float64(head[j]) - top)
        log_total = math.log(total)
        for j in range(n_out):
            log_probs[j] = np.float64(head[j]) - top - log_total
            entropy -= math.exp(log_probs[j]) * log_probs[j]
        log_prob = log_probs[discrete_action]
        for j in range(n_out):
            p = math.exp(log_probs[j])
            # d log p_a / d logits_j = 1[j = a] - p_j ; d H / d logits_j = -p_j (log p_j + H)
            grad_out[j] = (1.0 if j == discrete_action else 0.0) - p - entropy_weight * p * (log_probs[j] + entropy)
    return log_prob, entropy
