"""The NumPy backend: forward and backward passes of streaming MLP policies, on the memory of the policy's parameters.

At batch size 1 a torch operation costs several microseconds of dispatch and autograd bookkeeping, a NumPy
operation on the same small array about one; an online actor-critic step was about a hundred such operations. This
module computes what the torch path computes (same parameters, same formulas, rounded differently) for the common
case: separate actor and critic MLPs (:class:`~sb3_ac_plus.policies.networks.ActorCriticMlpExtractor` without a shared
trunk, as in :class:`~sb3_ac_plus.policies.streaming.StreamingActorCriticPolicy`) on flat vector observations with
Categorical or diagonal Gaussian actions (a state-independent std, or gSDE's state-dependent noise as SB3 computes it),
on the CPU. The passes themselves are compiled kernels (:mod:`~sb3_ac_plus.one_step_ac.mlp_kernels`, and categorical
sampling in :mod:`~sb3_ac_plus.one_step_ac.vector_kernels`), one call each; this module holds their buffers and the
Gaussian and gSDE distributions' parts, in NumPy. The torch policy stays the model: ``predict``, saving and loading,
A2C and PPO all use it, and the NumPy arrays here are views of its parameters, so every update is an update of the
model."""

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn

from sb3_ac_plus.one_step_ac.mlp_kernels import mlp_backward, mlp_forward
from sb3_ac_plus.one_step_ac.vector_kernels import categorical
from sb3_ac_plus.policies.networks import MLP, ActorCriticMlpExtractor
from sb3_ac_plus.policies.observation_normalizer import RunningMeanStdBuffers

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _activation(module: nn.Module) -> float | None:
    """The activation as its slope for negative inputs (LeakyReLU, ReLU), ``nan`` for Tanh, None if unsupported."""
    if type(module) is nn.LeakyReLU:
        return float(module.negative_slope)
    if type(module) is nn.ReLU:
        return 0.0
    if type(module) is nn.Tanh:
        return math.nan
    return None


def supports_fast_path(policy: ActorCriticPolicy, observation_space: spaces.Space, device: th.device) -> bool:
    """
    :return: whether :class:`NumpyActorCritic` computes this policy (else the torch path is used)
    """
    extractor = policy.mlp_extractor
    return (
        device.type == "cpu"
        and isinstance(observation_space, spaces.Box)
        and len(observation_space.shape) == 1
        and type(policy.pi_features_extractor) is FlattenExtractor
        and type(policy.vf_features_extractor) is FlattenExtractor
        and isinstance(extractor, ActorCriticMlpExtractor)
        and not extractor.has_trunk
        and type(extractor.policy_net) is MLP
        and type(extractor.value_net) is MLP
        and _activation(extractor.policy_net.activation) is not None
        and _activation(extractor.value_net.activation) is not None
        and (type(policy.action_dist) in (CategoricalDistribution, DiagGaussianDistribution) or _is_plain_sde(policy))
        and type(policy.action_net) is nn.Linear
        and type(policy.value_net) is nn.Linear
        and not policy.squash_output
        and all(p.dtype == th.float32 for p in policy.parameters())
    )


def _is_plain_sde(policy: ActorCriticPolicy) -> bool:
    """:return: whether the policy explores with gSDE as SB3's defaults set it up (full std, ``exp``, no feature learning
    through the noise, no squashing), the form :class:`NumpyActorCritic` computes"""
    dist = policy.action_dist
    return (
        type(dist) is StateDependentNoiseDistribution
        and dist.full_std
        and not dist.use_expln
        and not dist.learn_features
        and dist.bijector is None
    )


def _np(param: th.Tensor | nn.Module) -> np.ndarray:
    assert isinstance(param, th.Tensor)
    return param.detach().numpy()


class ForwardCache(NamedTuple):
    """What the backward pass of :class:`_NumpyMLP` needs (see :func:`~sb3_ac_plus.one_step_ac.mlp_kernels.mlp_forward`):
    the input and each hidden layer's output (``acts``), each hidden layer's normalised pre-activation (``pres``) and
    ``1 / std`` (``inv_stds``), and the head's input (a view of ``acts``)."""

    acts: np.ndarray
    pres: np.ndarray
    inv_stds: np.ndarray
    head_input: np.ndarray


class _NumpyMLP:
    """An :class:`MLP` followed by a linear head, computed by the compiled kernels on the flat parameter vector."""

    def __init__(self, mlp: MLP, head: nn.Linear, offsets: dict[int, int], params: np.ndarray) -> None:
        self.params = params
        linears = [*mlp.linears, head]
        self.layout = np.array(
            [[offsets[id(layer.weight)], offsets[id(layer.bias)], layer.in_features, layer.out_features] for layer in linears],
            dtype=np.int64,
        )
        self.n_hidden = len(mlp.linears)
        self.n_out = head.out_features
        self.head_width = head.in_features
        self.width = int(self.layout[:-1, 2:].max()) if self.n_hidden > 0 else head.in_features
        self.layer_norm = mlp.layer_norm
        self.layer_norm_eps = float(mlp.layer_norm_eps)
        negative_slope = _activation(mlp.activation)
        assert negative_slope is not None, f"unsupported activation {mlp.activation}"
        self.negative_slope = negative_slope

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, ForwardCache]:
        """
        :param x: inputs ``(batch, in)``, float32
        :return: the head's output ``(batch, out)`` and what the backward pass needs
        """
        n_rows = x.shape[0]
        acts = np.empty((self.n_hidden + 1, n_rows, self.width), dtype=np.float32)
        pres = np.empty((self.n_hidden, n_rows, self.width), dtype=np.float32)
        inv_stds = np.empty((self.n_hidden, n_rows), dtype=np.float32)
        inv_stds.fill(1.0)  # np.ones costs twice as much
        out = np.empty((n_rows, self.n_out), dtype=np.float32)
        mlp_forward(
            self.params, self.layout, x, self.layer_norm, self.layer_norm_eps, self.negative_slope, acts, pres, inv_stds, out
        )
        return out, ForwardCache(acts, pres, inv_stds, acts[self.n_hidden, :, : self.head_width])

    def backward(self, grad_out: np.ndarray, cache: "ForwardCache", grads: np.ndarray) -> None:
        """
        Per-row gradients of ``sum(grad_out * output)``, written into ``grads`` (one row per row of ``grad_out``).

        :param grad_out: gradient with respect to the head's output, ``(rows, out)``
        :param cache: the forward pass's cache (its first ``rows`` rows are used)
        :param grads: ``(rows, n_params)`` buffer laid out as the flat parameter vector
        """
        mlp_backward(
            self.params,
            self.layout,
            np.ascontiguousarray(grad_out, dtype=np.float32),
            self.layer_norm,
            self.negative_slope,
            cache.acts,
            cache.pres,
            cache.inv_stds,
            grads,
        )


def _categorical_state(logits: np.ndarray, cache: ForwardCache, uniform: np.ndarray, actions: np.ndarray) -> dict[str, Any]:
    """
    The actor's state for Categorical actions: log-probabilities, probabilities, entropy and the actions' log-probability.

    :param uniform: one uniform draw per row to sample ``actions`` with (written into it), or none to keep them
    """
    n_rows = logits.shape[0]
    log_probs, probs = np.empty_like(logits), np.empty_like(logits)
    log_prob, entropy = np.empty(n_rows, dtype=np.float32), np.empty(n_rows, dtype=np.float32)
    categorical(logits, uniform, actions, log_probs, probs, log_prob, entropy)
    return {
        "cache": cache,
        "log_probs": log_probs,
        "probs": probs,
        "actions": actions,
        "log_prob": log_prob,
        "entropy": entropy,
    }


class NumpyActorCritic:
    """
    The actor and the critic of a supported policy (see :func:`supports_fast_path`) in NumPy.

    :param policy: the policy; its parameters must be views of one flat vector laid out as ``offsets`` says
    :param offsets: position of each parameter (by ``id``) in the flat vector
    :param params: the flat vector (a NumPy view of it, float32)
    """

    def __init__(self, policy: ActorCriticPolicy, offsets: dict[int, int], params: np.ndarray) -> None:
        extractor = cast(ActorCriticMlpExtractor, policy.mlp_extractor)
        self.actor = _NumpyMLP(extractor.policy_net, policy.action_net, offsets, params)  # type: ignore[arg-type]
        self.critic = _NumpyMLP(extractor.value_net, policy.value_net, offsets, params)  # type: ignore[arg-type]
        self.sde = type(policy.action_dist) is StateDependentNoiseDistribution
        self.sde_epsilon = float(cast(StateDependentNoiseDistribution, policy.action_dist).epsilon) if self.sde else 0.0
        self.gaussian = self.sde or type(policy.action_dist) is DiagGaussianDistribution
        # (action_dim,) for a state-independent std; (latent_dim, action_dim) with gSDE
        self.log_std = _np(policy.log_std) if self.gaussian else np.zeros(0, dtype=np.float32)
        self.log_std_offset = offsets[id(policy.log_std)] if self.gaussian else 0
        self.n_params = params.size
        self._grads: np.ndarray | None = None
        # the two MLPs as the compiled updates take them (sequential_rows, optimizer_row): each one's layout,
        # LayerNorm flag and epsilon, and LeakyReLU slope
        actor, critic = self.actor, self.critic
        self.kernel_mlps: tuple[np.ndarray, bool, float, float, np.ndarray, bool, float, float] = (
            actor.layout,
            actor.layer_norm,
            actor.layer_norm_eps,
            actor.negative_slope,
            critic.layout,
            critic.layer_norm,
            critic.layer_norm_eps,
            critic.negative_slope,
        )

    def act(
        self,
        obs: np.ndarray,
        generator: th.Generator | None = None,
        noise: np.ndarray | None = None,
        with_state: bool = True,
    ) -> tuple[np.ndarray, dict[str, Any] | None]:
        """
        Sample actions (with a torch generator, drawing what the torch backend draws) and keep what the update needs.

        :param obs: normalised observations ``(n_envs, obs_dim)``, float32
        :param generator: the random generator (None: torch's global one)
        :param noise: the standard-normal draws of Gaussian actions ``(n_envs, action_dim)``; None draws them. With
            gSDE, the standard-normal draws ``eps`` of each env's exploration matrix ``(n_envs, latent_dim,
            action_dim)`` (required): the action is ``mean + latent @ (std * eps)``, as SB3 samples it
        :param with_state: False skips the Gaussian's state (None instead), for a caller that does not use it
        :return: the actions and the actor's forward state
        """
        out, cache = self.actor.forward(obs)
        if self.sde:
            if noise is None:
                raise ValueError("gSDE: act() needs the exploration matrices' draws (noise)")
            latent = cache.head_input
            offsets = np.einsum("rl,rla->ra", latent, np.exp(self.log_std) * noise).astype(np.float32)
            actions = (out + offsets).astype(np.float32)
            return actions, (self._sde_state(out, cache, offsets) if with_state else None)
        if self.gaussian:
            if noise is None:
                noise = th.randn(out.shape, generator=generator).numpy()
            actions = (out + np.exp(self.log_std) * noise).astype(np.float32)
            return actions, (self._gaussian_state(out, cache, noise) if with_state else None)
        uniform = th.rand((out.shape[0],), generator=generator).numpy()
        state = _categorical_state(out, cache, uniform, np.zeros(out.shape[0], dtype=np.intp))
        return state["actions"], state

    def evaluate(self, obs: np.ndarray, actions: np.ndarray) -> dict[str, Any]:
        """
        The actor's pass at actions taken earlier (the n-step update), with the current parameters.

        :param obs: normalised observations ``(rows, obs_dim)``, float32
        :param actions: the actions ``(rows,)`` (Categorical) or ``(rows, action_dim)`` (Gaussian)
        :return: the actor's forward state, as :meth:`act` returns it
        """
        out, cache = self.actor.forward(obs)
        if self.sde:
            return self._sde_state(out, cache, (actions - out).astype(np.float32))
        if self.gaussian:
            # The standard-normal draw that gives these actions under the current mean and std.
            noise = ((actions - out) * np.exp(-self.log_std)).astype(np.float32)
            return self._gaussian_state(out, cache, noise)
        return _categorical_state(out, cache, np.zeros(0, dtype=np.float32), actions.astype(np.intp))

    def _gaussian_state(self, mean: np.ndarray, cache: ForwardCache, noise: np.ndarray) -> dict[str, Any]:
        return {"cache": cache, "mean": mean, "std": np.exp(self.log_std), "noise": noise}

    def _sde_state(self, mean: np.ndarray, cache: ForwardCache, offsets: np.ndarray) -> dict[str, Any]:
        """
        gSDE's Gaussian at the actions ``mean + offsets``: per row, ``std_j = sqrt(sum_i latent_i^2 s_ij^2 + epsilon)``
        with ``s = exp(log_std)`` (the latent without gradient, as SB3's ``learn_features=False``); ``noise`` is the
        offsets in units of that std.
        """
        latent = cache.head_input
        scale = np.exp(self.log_std)
        scale_sq = scale * scale
        variance = (latent * latent) @ scale_sq + self.sde_epsilon
        std = np.sqrt(variance)
        return {
            "cache": cache,
            "mean": mean,
            "std": std,
            "noise": offsets / std,
            "latent_sq": latent * latent,
            "scale_sq": scale_sq,
            "variance": variance,
        }

    def values(self, obs: np.ndarray) -> tuple[np.ndarray, ForwardCache]:
        """
        :param obs: normalised observations ``(batch, obs_dim)``
        :return: V(obs) ``(batch,)`` and the critic's forward state
        """
        out, cache = self.critic.forward(obs)
        return out[:, 0], cache

    def log_prob_entropy(self, state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """
        :return: log pi(a|s) and the entropy of pi(.|s), each ``(n_envs,)``
        """
        if self.sde:
            log_std = np.log(state["std"])
            log_prob = (-0.5 * state["noise"] ** 2 - log_std - _HALF_LOG_2PI).sum(axis=-1)
            return log_prob, (0.5 + _HALF_LOG_2PI + log_std).sum(axis=-1)
        if self.gaussian:
            log_prob = (-0.5 * state["noise"] ** 2 - self.log_std - _HALF_LOG_2PI).sum(axis=-1)
            entropy = np.full(log_prob.shape, (0.5 + _HALF_LOG_2PI + self.log_std).sum())
            return log_prob, entropy
        return state["log_prob"], state["entropy"]

    def gradients(
        self, actor_state: dict[str, Any], critic_cache: ForwardCache, entropy_weights: np.ndarray, entropy: np.ndarray
    ) -> np.ndarray:
        """
        Per-env gradients of ``log pi(a|s) + entropy_weights * H(pi(.|s))`` (actor part of the flat vector) and of
        ``V(s)`` (critic part), for the first ``n_envs`` rows of the critic's forward pass.

        :param actor_state: from :meth:`act`
        :param critic_cache: from :meth:`values`; its first ``n_envs`` rows are the states acted in
        :param entropy_weights: weight of the entropy in the actor objective, per env
        :param entropy: the entropy per env (from :meth:`log_prob_entropy`)
        :return: ``(n_envs, n_params)`` gradients (a buffer reused at the next call)
        """
        n_envs = entropy_weights.shape[0]
        if self._grads is None or self._grads.shape[0] != n_envs:
            self._grads = np.zeros((n_envs, self.n_params), dtype=np.float32)
        grads = self._grads
        if self.sde:
            # d log N(a; mu, std) / d mu = noise / std; with std_j^2 = sum_i latent_i^2 s_ij^2 + epsilon,
            # d (log N + w H) / d log s_ij = (noise_j^2 - 1 + w) latent_i^2 s_ij^2 / std_j^2
            noise, std = actor_state["noise"], actor_state["std"]
            grad_out = noise / std
            per_action = (noise * noise - 1.0 + entropy_weights[:, None]) / actor_state["variance"]
            grad_log_std = actor_state["latent_sq"][:, :, None] * actor_state["scale_sq"] * per_action[:, None, :]
            grads[:, self.log_std_offset : self.log_std_offset + self.log_std.size] = grad_log_std.reshape(n_envs, -1)
        elif self.gaussian:
            # d log N(a; mu, std) / d mu = noise / std ; / d log_std = noise^2 - 1 ; d H / d log_std = 1
            noise, std = actor_state["noise"], actor_state["std"]
            grad_out = noise / std
            grads[:, self.log_std_offset : self.log_std_offset + noise.shape[1]] = noise**2 - 1.0 + entropy_weights[:, None]
        else:
            log_probs, probs, actions = actor_state["log_probs"], actor_state["probs"], actor_state["actions"]
            grad_out = -probs
            grad_out[np.arange(n_envs), actions] += 1.0
            # d H / d logits_j = -p_j (log p_j + H)
            grad_out -= entropy_weights[:, None] * probs * (log_probs + entropy[:, None])
        self.actor.backward(grad_out, actor_state["cache"], grads)
        self.critic.backward(np.ones((n_envs, 1), dtype=np.float32), critic_cache, grads)
        return grads


class NumpyBackend:
    """
    :class:`~sb3_ac_plus.one_step_ac.backend.ActorCriticBackend` with :class:`NumpyActorCritic`.

    :param policy: a policy :func:`supports_fast_path` accepts; its parameters are views of ``flat_params``, laid out as
        ``[actor only | critic only]``
    :param trained_params: the parameters in the order of ``flat_params``
    :param flat_params: the flat parameter vector
    :param n_actor: length of the actor's part
    :param generator: the random generator that samples the actions
    """

    name = "numpy"

    def __init__(
        self,
        policy: ActorCriticPolicy,
        trained_params: Sequence[th.Tensor],
        flat_params: th.Tensor,
        n_actor: int,
        generator: th.Generator | None = None,
    ) -> None:
        self.generator = generator
        offsets, offset = {}, 0
        for param in trained_params:
            offsets[id(param)] = offset
            offset += param.numel()
        # NumPy views of the parameter vector (the same memory), valid while the policy's parameters stay in place.
        params = flat_params.numpy()
        assert params.size == offset, "the trained parameters must lay out the flat vector"
        self.networks = NumpyActorCritic(policy, offsets, params)
        self.actor_params, self.critic_params = params[:n_actor], params[n_actor:]
        self.n_actor = n_actor
        normalizer = getattr(policy, "obs_normalizer", None)
        self.stats: RunningMeanStdBuffers | None = None if normalizer is None else normalizer.statistics()

    def observe(self, raw_obs: np.ndarray) -> np.ndarray:
        if self.stats is None:
            return np.asarray(raw_obs, dtype=np.float32)
        return self.stats.normalize_numpy(raw_obs)

    def act(
        self, obs: np.ndarray, noise: np.ndarray | None = None, with_state: bool = True
    ) -> tuple[np.ndarray, dict[str, Any] | None]:
        return self.networks.act(obs, self.generator, noise, with_state)

    def evaluate(self, obs: np.ndarray, actions: np.ndarray) -> dict[str, Any]:
        return self.networks.evaluate(obs, actions)

    def values(self, obs: np.ndarray, next_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, ForwardCache]:
        n_rows = obs.shape[0]
        both, cache = self.networks.values(np.concatenate([obs, next_obs]))
        return both[:n_rows], both[n_rows:], cache

    def row_gradients(
        self, actor_state: dict[str, Any], critic_state: ForwardCache, entropy_weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        log_prob, entropy = self.networks.log_prob_entropy(actor_state)
        grads = self.networks.gradients(actor_state, critic_state, entropy_weights, entropy)
        return grads[:, : self.n_actor], grads[:, self.n_actor :], log_prob, entropy
