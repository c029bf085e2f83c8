"""The NumPy backend: forward and backward passes of streaming MLP policies, on the memory of the policy's parameters.

At batch size 1 a torch operation costs several microseconds of dispatch and autograd bookkeeping, a NumPy
operation on the same small array about one; an online actor-critic step is about a hundred such operations. This
module computes exactly what the torch path computes (same parameters, same formulas) for the common case: separate
actor and critic MLPs (:class:`~sb3_ac_plus.policies.networks.ActorCriticMlpExtractor` without a shared trunk, as in
:class:`~sb3_ac_plus.policies.streaming.StreamingActorCriticPolicy`) on flat vector observations with Categorical or
diagonal Gaussian actions (a state-independent std, or gSDE's state-dependent noise as SB3 computes it), on the CPU.
The torch policy stays the model: ``predict``, saving and loading, A2C and PPO all use it, and the NumPy arrays here
are views of its parameters, so every update is an update of the model.
"""

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
    """What the backward pass of :class:`_NumpyMLP` needs: the head's input and each hidden layer's
    ``(input, normalised pre-activation, output, 1 / std or None)``."""

    head_input: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]]


class _NumpyMLP:
    """An :class:`MLP` followed by a linear head, in NumPy, writing its gradients into a flat buffer."""

    def __init__(self, mlp: MLP, head: nn.Linear, offsets: dict[int, int]) -> None:
        self.weights = [(_np(layer.weight), _np(layer.bias)) for layer in mlp.linears]
        self.weight_offsets = [(offsets[id(layer.weight)], offsets[id(layer.bias)]) for layer in mlp.linears]
        self.head = (_np(head.weight), _np(head.bias))
        self.head_offsets = (offsets[id(head.weight)], offsets[id(head.bias)])
        self.layer_norm = mlp.layer_norm
        self.layer_norm_eps = mlp.layer_norm_eps
        negative_slope = _activation(mlp.activation)
        assert negative_slope is not None, f"unsupported activation {mlp.activation}"
        self.tanh = math.isnan(negative_slope)
        self.negative_slope = negative_slope

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, ForwardCache]:
        """
        :param x: inputs ``(batch, in)``
        :return: the head's output ``(batch, out)`` and what the backward pass needs
        """
        layers = []
        hidden = x
        for weight, bias in self.weights:
            pre = hidden @ weight.T + bias
            inv_std = None
            if self.layer_norm:
                inv_width = 1.0 / pre.shape[-1]
                pre -= np.add.reduce(pre, axis=-1, keepdims=True) * inv_width
                inv_std = 1.0 / np.sqrt(np.add.reduce(pre * pre, axis=-1, keepdims=True) * inv_width + self.layer_norm_eps)
                pre *= inv_std
            if self.tanh:
                out = np.tanh(pre)
            elif self.negative_slope <= 1.0:
                out = np.maximum(pre, self.negative_slope * pre)
            else:
                out = np.where(pre > 0, pre, self.negative_slope * pre)
            layers.append((hidden, pre, out, inv_std))
            hidden = out
        weight, bias = self.head
        return hidden @ weight.T + bias, ForwardCache(hidden, layers)

    def backward(self, grad_out: np.ndarray, cache: "ForwardCache", grads: np.ndarray) -> None:
        """
        Per-row gradients of ``sum(grad_out * output)``, written into ``grads`` (one row per row of ``grad_out``).

        :param grad_out: gradient with respect to the head's output, ``(rows, out)``
        :param cache: the forward pass's cache (its first ``rows`` rows are used)
        :param grads: ``(rows, n_params)`` buffer laid out as the flat parameter vector
        """
        n_rows = grad_out.shape[0]
        weight, _ = self.head
        w_off, b_off = self.head_offsets
        _write_linear_grads(grads, w_off, b_off, grad_out, cache.head_input[:n_rows])
        grad_hidden = grad_out @ weight
        for depth, ((weight, _), (w_off, b_off), (hidden, pre, out, inv_std)) in enumerate(
            zip(reversed(self.weights), reversed(self.weight_offsets), reversed(cache.layers), strict=True)
        ):
            pre, out = pre[:n_rows], out[:n_rows]
            if self.tanh:
                grad_pre = grad_hidden * (1.0 - out * out)
            else:
                # pre > 0 iff out > 0. The factor is float64, so the hidden layers' gradients are computed in float64
                # and rounded to float32 when written. The float32 form, np.where(pre > 0, g, slope * g), ran 1.1 to 1.2
                # times faster in alternating processes (CartPole-v1, defaults, 8 and 1 envs) but showed no clear gain
                # in a whole comparison, and it rounds differently, which changes every run of this backend.
                grad_pre = grad_hidden * np.where(pre > 0, 1.0, self.negative_slope)
            if inv_std is not None:
                # Backward of (z - mean(z)) / std(z): project out the mean and the normalised direction.
                inv_width = 1.0 / pre.shape[-1]
                mean_grad = np.add.reduce(grad_pre, axis=-1, keepdims=True) * inv_width
                mean_grad_pre = np.add.reduce(grad_pre * pre, axis=-1, keepdims=True) * inv_width
                grad_pre = inv_std[:n_rows] * (grad_pre - mean_grad - pre * mean_grad_pre)
            _write_linear_grads(grads, w_off, b_off, grad_pre, hidden[:n_rows])
            if depth < len(self.weights) - 1:  # the first layer's input needs no gradient
                grad_hidden = grad_pre @ weight


def _write_linear_grads(
    grads: np.ndarray, weight_offset: int, bias_offset: int, grad_pre: np.ndarray, inputs: np.ndarray
) -> None:
    n_rows, n_out = grad_pre.shape
    n_in = inputs.shape[1]
    block = grads[:, weight_offset : weight_offset + n_out * n_in].reshape(n_rows, n_out, n_in)
    # Per-row outer products. From float32 gradients (the heads') einsum writes them faster than a broadcast multiply;
    # from the float64 gradients of the hidden layers (see backward) a broadcast multiply is faster (67 us against
    # 92 us for 8 rows of 64 x 64) and gives the same numbers (the product in float64, then rounded to float32).
    if grad_pre.dtype == np.float32:
        np.einsum("ro,ri->roi", grad_pre, inputs, out=block)
    else:
        np.multiply(grad_pre[:, :, None], inputs[:, None, :], out=block, casting="same_kind")
    grads[:, bias_offset : bias_offset + n_out] = grad_pre


def _log_softmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:return: the log-probabilities and the probabilities of categorical logits ``(rows, n)``"""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return log_probs, np.exp(log_probs)


class NumpyActorCritic:
    """
    The actor and the critic of a supported policy (see :func:`supports_fast_path`) in NumPy.

    :param policy: the policy; its parameters must be views of one flat vector laid out as ``offsets`` says
    :param offsets: position of each parameter (by ``id``) in the flat vector
    :param n_params: length of the flat vector
    """

    def __init__(self, policy: ActorCriticPolicy, offsets: dict[int, int], n_params: int) -> None:
        extractor = cast(ActorCriticMlpExtractor, policy.mlp_extractor)
        self.actor = _NumpyMLP(extractor.policy_net, policy.action_net, offsets)  # type: ignore[arg-type]
        self.critic = _NumpyMLP(extractor.value_net, policy.value_net, offsets)  # type: ignore[arg-type]
        self.sde = type(policy.action_dist) is StateDependentNoiseDistribution
        self.sde_epsilon = float(cast(StateDependentNoiseDistribution, policy.action_dist).epsilon) if self.sde else 0.0
        self.gaussian = self.sde or type(policy.action_dist) is DiagGaussianDistribution
        # (action_dim,) for a state-independent std; (latent_dim, action_dim) with gSDE
        self.log_std = _np(policy.log_std) if self.gaussian else np.zeros(0, dtype=np.float32)
        self.log_std_offset = offsets[id(policy.log_std)] if self.gaussian else 0
        self.n_params = n_params
        self._grads: np.ndarray | None = None

    def act(
        self, obs: np.ndarray, generator: th.Generator | None = None, noise: np.ndarray | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """
        Sample actions (with a torch generator, drawing what the torch backend draws) and keep what the update needs.

        :param obs: normalised observations ``(n_envs, obs_dim)``, float32
        :param generator: the random generator (None: torch's global one)
        :param noise: the standard-normal draws of Gaussian actions ``(n_envs, action_dim)``; None draws them. With
            gSDE, the standard-normal draws ``eps`` of each env's exploration matrix ``(n_envs, latent_dim,
            action_dim)`` (required): the action is ``mean + latent @ (std * eps)``, as SB3 samples it
        :return: the actions and the actor's forward state
        """
        out, cache = self.actor.forward(obs)
        if self.sde:
            if noise is None:
                raise ValueError("gSDE: act() needs the exploration matrices' draws (noise)")
            latent = cache.head_input
            offsets = np.einsum("rl,rla->ra", latent, np.exp(self.log_std) * noise).astype(np.float32)
            return (out + offsets).astype(np.float32), self._sde_state(out, cache, offsets)
        if self.gaussian:
            if noise is None:
                noise = th.randn(out.shape, generator=generator).numpy()
            actions = (out + np.exp(self.log_std) * noise).astype(np.float32)
            return actions, self._gaussian_state(out, cache, noise)
        log_probs, probs = _log_softmax(out)
        uniform = th.rand((probs.shape[0], 1), generator=generator).numpy()
        actions = np.minimum((probs.cumsum(axis=-1) < uniform).sum(axis=-1), probs.shape[-1] - 1)
        return actions, {"cache": cache, "log_probs": log_probs, "probs": probs, "actions": actions}

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
        log_probs, probs = _log_softmax(out)
        return {"cache": cache, "log_probs": log_probs, "probs": probs, "actions": actions.astype(np.intp)}

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
        log_probs, probs, actions = state["log_probs"], state["probs"], state["actions"]
        log_prob = log_probs[np.arange(actions.shape[0]), actions]
        entropy = -(probs * log_probs).sum(axis=-1)
        return log_prob, entropy

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
        self.networks = NumpyActorCritic(policy, offsets, offset)
        # NumPy views of the parameter vector (the same memory), valid while the policy's parameters stay in place.
        params = flat_params.numpy()
        self.actor_params, self.critic_params = params[:n_actor], params[n_actor:]
        self.n_actor = n_actor
        normalizer = getattr(policy, "obs_normalizer", None)
        self.stats: RunningMeanStdBuffers | None = None if normalizer is None else normalizer.statistics()

    def observe(self, raw_obs: np.ndarray) -> np.ndarray:
        if self.stats is None:
            return np.asarray(raw_obs, dtype=np.float32)
        return self.stats.normalize_numpy(raw_obs)

    def act(self, obs: np.ndarray, noise: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        return self.networks.act(obs, self.generator, noise)

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
