"""What the reference update reads from any SB3 actor-critic policy: actions, log-probabilities, entropy and V(s)."""

import math
from typing import Any, NamedTuple

import torch as th
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy

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
