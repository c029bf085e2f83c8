"""The torch backend: forward passes of any SB3 actor-critic policy and per-row gradients with autograd."""

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch as th
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_ac_plus.one_step_ac.flat_parameters import flat_gradients
from sb3_ac_plus.one_step_ac.observations import concat_obs

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class ActorOutputs(NamedTuple):
    actions: th.Tensor
    log_prob: th.Tensor
    entropy: th.Tensor | None


def actor_outputs(
    policy: ActorCriticPolicy,
    obs: th.Tensor | dict[str, th.Tensor],
    actions: th.Tensor | None = None,
    generator: th.Generator | None = None,
    noise: Any = None,
) -> ActorOutputs:
    """
    Actions (sampled when not given), their log-probabilities and the policy's entropy, each of shape ``(batch,)``
    but the actions. Categorical and diagonal Gaussian policies are computed directly from the logits and the mean,
    several times faster at batch size 1 than through a ``torch.distributions`` object; other distributions go
    through SB3's.

    :param policy: an SB3 actor-critic policy
    :param obs: raw observation tensors (as ``obs_as_tensor`` gives them; the policy normalises them if it has a normaliser)
    :param actions: actions to evaluate; None samples them (without gradient)
    :param generator: the random generator that samples the actions (None: torch's global one)
    :param noise: the standard-normal draws of diagonal Gaussian actions ``(batch, action_dim)``; None draws them
    :return: the outputs, with gradients where they depend on the parameters
    """
    features = super(ActorCriticPolicy, policy).extract_features(
        normalized_observations(policy, obs),
        policy.pi_features_extractor,  # type: ignore[arg-type]
    )
    latent_pi = policy.mlp_extractor.forward_actor(features)
    distribution = policy.action_dist
    if type(distribution) is CategoricalDistribution:
        log_probs = th.log_softmax(policy.action_net(latent_pi), dim=-1)
        probs = log_probs.exp()
        if actions is None:
            # Inverse-CDF sampling: cheaper than torch.multinomial for one row.
            actions = _inverse_cdf_sample(probs.detach(), generator)
        log_prob = log_probs.gather(1, actions.long().unsqueeze(1)).squeeze(1)
        entropy = -(probs * log_probs).sum(dim=-1)
        return ActorOutputs(actions, log_prob, entropy)
    if type(distribution) is DiagGaussianDistribution:
        mean = policy.action_net(latent_pi)
        log_std = policy.log_std
        std = log_std.exp()
        if actions is None:
            if noise is None:
                noise = th.randn(mean.shape, generator=generator, device=mean.device)
            else:
                noise = th.as_tensor(noise, device=mean.device)
            actions = (mean + std * noise).detach()
        log_prob = (-0.5 * ((actions - mean) / std) ** 2 - log_std - _HALF_LOG_2PI).sum(dim=-1)
        entropy = (0.5 + _HALF_LOG_2PI + log_std).sum().expand(mean.shape[0])
        return ActorOutputs(actions, log_prob, entropy)
    dist = policy._get_action_dist_from_latent(latent_pi)
    if actions is None:
        actions = _sample(dist, generator)
    return ActorOutputs(actions, dist.log_prob(actions), dist.entropy())


def _inverse_cdf_sample(probs: th.Tensor, generator: th.Generator | None) -> th.Tensor:
    """Categorical samples by inverse CDF (cheaper than ``torch.multinomial`` for one row)."""
    uniform = th.rand((probs.shape[0], 1), generator=generator, device=probs.device)
    return (probs.cumsum(dim=-1) < uniform).sum(dim=-1).clamp_(max=probs.shape[-1] - 1)


def _sample(dist: Distribution, generator: th.Generator | None) -> th.Tensor:
    """Actions from an SB3 distribution, drawn with ``generator`` for the distributions OneStepAC supports."""
    inner = dist.distribution
    with th.no_grad():
        if isinstance(dist, StateDependentNoiseDistribution):
            return dist.get_actions().detach()  # gSDE: the noise of the exploration matrices, no draw here
        if isinstance(inner, th.distributions.Normal):
            return inner.mean + inner.stddev * th.randn(inner.mean.shape, generator=generator, device=inner.mean.device)
        if isinstance(inner, th.distributions.Bernoulli):
            return (th.rand(inner.probs.shape, generator=generator, device=inner.probs.device) < inner.probs).float()
        if isinstance(inner, list) and all(isinstance(d, th.distributions.Categorical) for d in inner):
            return th.stack([_inverse_cdf_sample(d.probs, generator) for d in inner], dim=1)  # type: ignore[attr-defined]
    return dist.get_actions().detach()  # any other distribution: torch's global generator


def normalized_observations(
    policy: ActorCriticPolicy, obs: th.Tensor | dict[str, th.Tensor]
) -> th.Tensor | dict[str, th.Tensor]:
    """
    :return: the observations as the policy's networks see them: normalised by the policy's own observation normaliser
        (``policy.obs_normalizer``, see :class:`~sb3_ac_plus.policies.actor_critic.ConfigurableActorCriticPolicy`) if
        it has one, else unchanged
    """
    normalizer = getattr(policy, "obs_normalizer", None)
    return obs if normalizer is None else normalizer(obs)


def critic_values(policy: ActorCriticPolicy, obs: th.Tensor | dict[str, th.Tensor]) -> th.Tensor:
    """
    :param policy: an SB3 actor-critic policy
    :param obs: raw observation tensors (the policy normalises them if it has a normaliser)
    :return: V(obs), shape ``(batch,)``
    """
    return policy.predict_values(obs).flatten()  # type: ignore[arg-type]


class TorchBackend:
    """
    :class:`~sb3_ac_plus.one_step_ac.backend.ActorCriticBackend` with torch autograd, for any policy, space and device.

    :param policy: the policy (it normalises raw observations itself if it holds a normaliser)
    :param actor_params: the parameters the actor's output depends on (actor only, then shared)
    :param critic_params: those the critic's output depends on (shared, then critic only)
    :param flat_params: the flat parameter vector ``[actor only | shared | critic only]`` the parameters are views of
    :param entropy_bonus: whether the actor objective has an entropy term
    :param generator: the random generator that samples the actions
    """

    name = "torch"

    def __init__(
        self,
        policy: ActorCriticPolicy,
        actor_params: Sequence[th.Tensor],
        critic_params: Sequence[th.Tensor],
        flat_params: th.Tensor,
        entropy_bonus: bool,
        generator: th.Generator | None = None,
    ) -> None:
        self.policy = policy
        self.generator = generator
        self._actor_params, self._critic_params = actor_params, critic_params
        critic_ids = {id(p) for p in critic_params}
        self._shares_parameters = any(id(p) in critic_ids for p in actor_params)
        self._trained_params = [*actor_params, *(p for p in critic_params if id(p) not in {id(q) for q in actor_params})]
        n_actor = sum(p.numel() for p in actor_params)
        n_critic = sum(p.numel() for p in critic_params)
        self.actor_params = flat_params[:n_actor]
        self.critic_params = flat_params[flat_params.numel() - n_critic :]
        self.entropy_bonus = entropy_bonus

    def observe(self, raw_obs: Any) -> th.Tensor | dict[str, th.Tensor]:
        return obs_as_tensor(raw_obs, self.policy.device)

    def act(
        self, obs: th.Tensor | dict[str, th.Tensor], noise: Any = None, with_state: bool = True
    ) -> tuple[th.Tensor, ActorOutputs]:
        outputs = actor_outputs(self.policy, obs, generator=self.generator, noise=noise)
        return outputs.actions, outputs

    def evaluate(self, obs: th.Tensor | dict[str, th.Tensor], actions: Any) -> ActorOutputs:
        return actor_outputs(self.policy, obs, th.as_tensor(actions, device=self.policy.device))

    def values(self, obs: Any, next_obs: Any) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        n_rows = _n_rows(obs)
        both = critic_values(self.policy, concat_obs(obs, next_obs))
        values = both[:n_rows]
        return values.detach(), both[n_rows:].detach(), values

    def row_gradients(
        self, actor_state: ActorOutputs, critic_state: th.Tensor, entropy_weights: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor | None]:
        log_prob, entropy = actor_state.log_prob, actor_state.entropy
        objective = log_prob
        if entropy is not None and self.entropy_bonus:
            objective = log_prob + entropy_weights * entropy
        actor_grads, critic_grads = self._per_row(objective, critic_state)
        return actor_grads, critic_grads, log_prob.detach(), None if entropy is None else entropy.detach()

    def _per_row(self, actor_objective: th.Tensor, values: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        n_rows = values.shape[0]
        batched = n_rows > 1
        eye = th.eye(n_rows, device=values.device) if batched else None
        if not self._shares_parameters:
            # Disjoint parameters: one backward pass through the sum gives both gradients.
            outputs = actor_objective + values
            grads = th.autograd.grad(
                outputs if batched else outputs.sum(), self._trained_params, grad_outputs=eye, is_grads_batched=batched
            )
            flat = flat_gradients(grads, n_rows)
            n_actor = self.actor_params.numel()
            return flat[:, :n_actor], flat[:, n_actor:]
        actor_grads = th.autograd.grad(
            actor_objective if batched else actor_objective.sum(),
            self._actor_params,
            grad_outputs=eye,
            is_grads_batched=batched,
            retain_graph=True,
        )
        critic_grads = th.autograd.grad(
            values if batched else values.sum(), self._critic_params, grad_outputs=eye, is_grads_batched=batched
        )
        return flat_gradients(actor_grads, n_rows), flat_gradients(critic_grads, n_rows)


def _n_rows(obs: Any) -> int:
    return next(iter(obs.values())).shape[0] if isinstance(obs, dict) else obs.shape[0]
