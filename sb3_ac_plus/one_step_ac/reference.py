"""The reference update: what OneStepAC computes, written once with torch autograd, one row at a time.

This is the specification. The compiled kernels (:mod:`~sb3_ac_plus.one_step_ac.fast`) compute the same update for
the common policies on the CPU, and tests/test_parity.py holds the two equal; every other configuration (any policy,
observation space, torch optimizer or device) runs this code.

For each row (one env's transition, or one state whose k-step return is complete), with the parameters the rows
before it left:

1. the TD error ``delta = G + discount * V(s') - V(s)``, G the reward (or k-step return) and the discount ``gamma**k``,
   0 after a termination; a time-limit truncation bootstraps from V of the terminal observation;
2. the actor's gradient ``grad(log pi(a|s) + ent_coef * sign(delta) * H(pi(.|s)))`` and the critic's ``grad V(s)``,
   so that ``delta`` times them is the actor-critic update with the entropy bonus ``ent_coef * |delta| * grad H`` of
   stream AC(lambda);
3. a step of each part (actor, critic) by :class:`TraceStep` (ObGD, AdaptiveObGD or SGD along eligibility traces),
   by :class:`IntentionalStep` (intentional updates), or by the policy's torch optimizer on the loss
   ``-(delta * log pi + ent_coef * |delta| * H) - delta * V(s)``.

A row that cannot be applied (a non-finite TD error or gradient, or a step that would make a parameter non-finite) stops
the update with its reason (:mod:`~sb3_ac_plus.one_step_ac.rows`); OneStepAC then puts back what the rows before it wrote.
"""

import math
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import obs_as_tensor

from sb3_ac_plus.one_step_ac.observations import obs_slice
from sb3_ac_plus.one_step_ac.online_state import BETA_CLIP, BETA_NORM, CLIP_MULT, OnlineState
from sb3_ac_plus.one_step_ac.parameter_layout import ParameterSplit
from sb3_ac_plus.one_step_ac.policy_outputs import actor_outputs, critic_values
from sb3_ac_plus.one_step_ac.rows import (
    APPLIED,
    MAX_UPDATE_NORM,
    NON_FINITE_DELTA,
    NON_FINITE_GRADIENT,
    STAT_NAMES,
    UNSAFE_UPDATE,
    Rows,
)


def obgd_step_size(delta: float, norm: float, lr: float, kappa: float) -> float:
    """
    ObGD's overshooting-bounded step size (stream AC(lambda)): ``lr / max(1, lr * kappa * max(|delta|, 1) * |e|_1)``.
    The step ``step * delta * e`` then has an L1 norm of at most ``min(|delta|, 1) / kappa`` when the bound is active.

    :param delta: the TD error
    :param norm: the L1 norm of the update direction ``e``
    :param lr: the nominal step size
    :param kappa: the bound's strength (larger: smaller steps)
    """
    return lr / max(1.0, lr * kappa * max(abs(delta), 1.0) * norm)


class TraceStep:
    """
    One part's step (the actor's or the critic's) along its eligibility traces:
    ``e <- decay * e + grad`` (the row's env's trace; the gradient itself without traces), the direction ``e``, divided
    element-wise by ``sqrt(v_hat + eps)`` with AdaptiveObGD (``v`` the running mean of ``(delta * e)**2``), and
    ``params += step * delta * direction`` with ObGD's step size (:func:`obgd_step_size`) or the plain step size (SGD).

    :param params: the part's slice of the parameter vector
    :param traces: the part's traces ``(n_envs, n)``, or None
    :param decay: the traces' decay ``gamma * lambda``
    :param moments: AdaptiveObGD's second moments ``(n,)``, or None
    :param moments_decay: their ``(beta2, eps)``
    :param kappa: ObGD's bound strength, or None for SGD
    """

    def __init__(
        self,
        params: th.Tensor,
        traces: th.Tensor | None,
        decay: float,
        moments: th.Tensor | None,
        moments_decay: tuple[float, float],
        kappa: float | None,
    ) -> None:
        self.params, self.traces, self.decay = params, traces, decay
        self.moments, (self.beta2, self.eps) = moments, moments_decay
        self.kappa = kappa

    def direction(self, grad: th.Tensor, delta: float, env: int, n_seen: int) -> tuple[th.Tensor, float]:
        """
        :param n_seen: the updates the second moments have seen, this one included (Adam's bias correction)
        :return: the update direction (the traces and moments are written) and its L1 norm
        """
        direction = grad
        if self.traces is not None:
            direction = self.traces[env].mul_(self.decay).add_(grad)
        if self.moments is not None:
            self.moments.mul_(self.beta2).add_((1.0 - self.beta2) * (delta * direction) ** 2)
            direction = direction / (self.moments / (1.0 - self.beta2**n_seen) + self.eps).sqrt()
        return direction, float(direction.abs().sum())

    def step_size(self, delta: float, norm: float, lr: float) -> float:
        return lr if self.kappa is None else obgd_step_size(delta, norm, lr, self.kappa)


class IntentionalStep:
    """
    One part's intentional update (Sharifnassab, Elsayed, De Asis, Mahmood & Sutton, 2026): the step size is chosen so
    that the update changes the part's output by an intended amount, ``eta`` times the (processed) TD error.

    With ``v <- beta2 * v + (1 - beta2) * grad**2`` and ``d = sqrt(v / (1 - beta2**t)) + eps`` (RMSProp), the trace
    ``e <- decay * e + grad``, the running normaliser of the preconditioned gradient's squared norm
    ``sigma <- sigma + (1 - decay) * (|grad|_d**2 - sigma)`` (bias-corrected by ``1 - decay**t``) and
    ``|e|_d**2 = sum(e**2 / d)``, the step is ``params += delta' * eta / sqrt(sigma * |e|_d**2) * e / d``, where
    ``delta'`` is the TD error clipped at ``CLIP_MULT`` times its running RMS, and for the policy also divided by the
    running mean of its clipped magnitude, so that every policy step moves the output by about ``eta``.

    :param params: the part's slice of the parameter vector
    :param traces: the part's traces ``(n_envs, n)``, or None
    :param decay: the traces' decay ``gamma * lambda``, below 1
    :param moments: the running second moments of the gradient ``(n,)``
    :param moments_decay: their ``(beta2, eps)``
    :param stats: the part's running statistics (float64, :data:`~sb3_ac_plus.one_step_ac.online_state.INTENT_STATS`)
    :param normalize_delta: whether the TD error is divided by its running mean magnitude (the policy)
    """

    def __init__(
        self,
        params: th.Tensor,
        traces: th.Tensor | None,
        decay: float,
        moments: th.Tensor,
        moments_decay: tuple[float, float],
        stats: th.Tensor,
        normalize_delta: bool,
    ) -> None:
        self.params, self.traces, self.decay, self.moments, self.stats = params, traces, decay, moments, stats
        (self.beta2, self.eps), self.normalize_delta = moments_decay, normalize_delta

    def direction(self, grad: th.Tensor, delta: float, env: int, n_seen: int, eta: float) -> tuple[th.Tensor, float, float]:
        """
        :param n_seen: the updates this part has seen, this one included (the bias corrections)
        :return: the update direction ``e / d`` (the traces, moments and statistics are written), the weight
            ``delta' * step`` to apply it with, and the step size ``eta / sqrt(sigma * |e|_d**2)``
        """
        self.moments.mul_(self.beta2).add_((1.0 - self.beta2) * grad * grad)
        scale = (self.moments / (1.0 - self.beta2**n_seen)).sqrt() + self.eps
        grad_norm = float((grad * grad / scale).sum())
        trace = grad if self.traces is None else self.traces[env].mul_(self.decay).add_(grad)
        trace_norm = float((trace * trace / scale).sum())
        stats = self.stats
        stats[0] += (1.0 - self.decay) * (grad_norm - float(stats[0]))
        sigma = float(stats[0]) / (1.0 - self.decay**n_seen)
        step = eta / max(math.sqrt(sigma * trace_norm), 1e-8)
        stats[1] = BETA_CLIP * float(stats[1]) + (1.0 - BETA_CLIP) * delta * delta
        cap = CLIP_MULT * math.sqrt(float(stats[1]) / (1.0 - BETA_CLIP**n_seen))
        clipped = math.copysign(min(abs(delta), cap), delta)
        if self.normalize_delta:
            stats[2] = BETA_NORM * float(stats[2]) + (1.0 - BETA_NORM) * abs(clipped)
            clipped /= max(float(stats[2]) / (1.0 - BETA_NORM**n_seen), 1e-12)
        return trace / scale, clipped * step, step


class ReferenceUpdate:
    """
    Acting and the update with torch autograd, for any policy and device.

    :param policy: the policy
    :param split: its parameters by what uses them (the flat vector's layout)
    :param flat_params: the flat parameter vector the parameters are views of
    :param generator: the model's random generator (it samples the actions)
    :param update_rule: ``"obgd"``, ``"adaptive_obgd"``, ``"sgd"``, ``"intentional"`` or ``"optimizer"``
        (``policy.optimizer``)
    :param actor_kappa: ObGD's bound strength for the actor; ``critic_kappa`` for the critic
    :param ent_coef: the entropy coefficient
    :param trace_decay: the eligibility traces' decay ``gamma * lambda``
    """

    name = "reference"

    def __init__(
        self,
        policy: ActorCriticPolicy,
        split: ParameterSplit,
        flat_params: th.Tensor,
        generator: th.Generator,
        update_rule: str,
        actor_kappa: float,
        critic_kappa: float,
        ent_coef: float,
        trace_decay: float,
    ) -> None:
        self.policy, self.split, self.flat_params, self.generator = policy, split, flat_params, generator
        self.update_rule, self.kappas, self.ent_coef, self.trace_decay = (
            update_rule,
            (actor_kappa, critic_kappa),
            ent_coef,
            trace_decay,
        )
        n_actor, n_critic = sum(p.numel() for p in split.actor), sum(p.numel() for p in split.critic)
        self.flat_actor, self.flat_critic = flat_params[:n_actor], flat_params[flat_params.numel() - n_critic :]
        self._saved_optimizer: dict = {}

    def observe(self, raw_obs: Any) -> Any:
        """:return: the raw observations as tensors (the policy normalises them itself)"""
        return obs_as_tensor(raw_obs, self.policy.device)

    def act(self, obs: Any, noise: np.ndarray | None) -> np.ndarray:
        """:return: one action per env, sampled with the model's generator (``noise``: colored Gaussian draws)"""
        with th.no_grad():
            actions = actor_outputs(self.policy, obs, generator=self.generator, noise=noise).actions
        return actions.cpu().numpy()

    def checkpoint(self) -> None:
        """Keep a copy of the torch optimizer's state (``update_rule="optimizer"``), for :meth:`rollback`."""
        if self.update_rule == "optimizer":
            self._saved_optimizer = {
                param: {key: value.clone() if isinstance(value, th.Tensor) else value for key, value in state.items()}
                for param, state in self.policy.optimizer.state.items()
            }

    def rollback(self) -> None:
        if self.update_rule == "optimizer":
            self.policy.optimizer.state.clear()
            self.policy.optimizer.state.update(self._saved_optimizer)

    def update(self, rows: Rows, state: OnlineState, actor_lr: float, critic_lr: float) -> tuple[int, int, np.ndarray]:
        """
        Learn from the rows in order, writing the parameters and the online state in place.

        :return: :data:`~sb3_ac_plus.one_step_ac.rows.APPLIED` or the first refused row's reason, that row, and each
            row's statistics ``(n_rows, 5)`` (:data:`~sb3_ac_plus.one_step_ac.rows.STAT_NAMES`)
        """
        stats = np.zeros((rows.n_rows, len(STAT_NAMES)), dtype=np.float64)
        if self.update_rule == "optimizer":
            for group, lr in zip(self.policy.optimizer.param_groups, (actor_lr, critic_lr), strict=True):
                group["lr"] = lr
        elif self.update_rule == "intentional":
            assert state.actor_moments is not None and state.critic_moments is not None and state.intent_stats is not None
            moments, intent = (state.actor_moments, state.critic_moments), state.intent_stats
            intentional = [
                IntentionalStep(flat, traces, self.trace_decay, moments[part], state.moments_decay, intent[part], part == 0)
                for part, (flat, traces) in enumerate(
                    ((self.flat_actor, state.actor_traces), (self.flat_critic, state.critic_traces))
                )
            ]
        else:
            actor_kappa, critic_kappa = (None, None) if self.update_rule == "sgd" else self.kappas
            actor = TraceStep(
                self.flat_actor, state.actor_traces, self.trace_decay, state.actor_moments, state.moments_decay, actor_kappa
            )
            critic = TraceStep(
                self.flat_critic,
                state.critic_traces,
                self.trace_decay,
                state.critic_moments,
                state.moments_decay,
                critic_kappa,
            )
        for r in range(rows.n_rows):
            obs = obs_slice(rows.obs, r)
            value = critic_values(self.policy, obs)[0]
            with th.no_grad():
                next_value = critic_values(self.policy, obs_slice(rows.next_obs, int(rows.next_index[r])))[0]
            delta = float(rows.returns[r] + rows.discounts[r] * next_value - value.detach())
            if not math.isfinite(delta):
                return NON_FINITE_DELTA, r, stats
            action = th.as_tensor(np.asarray(rows.actions[r : r + 1]), device=self.policy.device)
            outputs = actor_outputs(self.policy, obs, action)
            log_prob = outputs.log_prob[0]
            entropy = outputs.entropy[0] if outputs.entropy is not None else th.zeros(())
            stats[r, :3] = delta, float(log_prob.detach()), float(entropy.detach())
            if self.update_rule == "optimizer":
                stats[r, 3:] = actor_lr, critic_lr
                loss = -(delta * log_prob + self.ent_coef * abs(delta) * entropy) - delta * value
                self.policy.optimizer.zero_grad()
                loss.backward()
                if not math.isfinite(sum(float(p.grad.sum()) for p in self.split.trained if p.grad is not None)):
                    return NON_FINITE_GRADIENT, r, stats
                self.policy.optimizer.step()
                if not math.isfinite(float(self.flat_params.sum())):
                    return UNSAFE_UPDATE, r, stats
                continue
            objective = log_prob + self.ent_coef * float(np.sign(delta)) * entropy
            actor_grad = th.cat([g.reshape(-1) for g in th.autograd.grad(objective, self.split.actor)])
            critic_grad = th.cat([g.reshape(-1) for g in th.autograd.grad(value, self.split.critic)])
            if not math.isfinite(float(actor_grad.sum() + critic_grad.sum())):
                return NON_FINITE_GRADIENT, r, stats
            n_seen, env = state.moments_count + r + 1, int(rows.trace_index[r])
            if self.update_rule == "intentional":
                actor_direction, actor_weight, actor_step = intentional[0].direction(actor_grad, delta, env, n_seen, actor_lr)
                critic_direction, critic_weight, critic_step = intentional[1].direction(
                    critic_grad, delta, env, n_seen, critic_lr
                )
                actor_norm, critic_norm = float(actor_direction.abs().sum()), float(critic_direction.abs().sum())
            else:
                actor_direction, actor_norm = actor.direction(actor_grad, delta, env, n_seen)
                critic_direction, critic_norm = critic.direction(critic_grad, delta, env, n_seen)
                actor_step, critic_step = (
                    actor.step_size(delta, actor_norm, actor_lr),
                    critic.step_size(delta, critic_norm, critic_lr),
                )
                actor_weight, critic_weight = actor_step * delta, critic_step * delta
            if not abs(actor_weight) * actor_norm + abs(critic_weight) * critic_norm < MAX_UPDATE_NORM:
                return UNSAFE_UPDATE, r, stats
            with th.no_grad():
                self.flat_actor.add_(actor_direction, alpha=actor_weight)
                self.flat_critic.add_(critic_direction, alpha=critic_weight)
            stats[r, 3:] = actor_step, critic_step
        return APPLIED, rows.n_rows, stats
