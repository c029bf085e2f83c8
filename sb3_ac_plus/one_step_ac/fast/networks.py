"""The policy as the compiled kernels see it: the network layout, built in one place, and acting at one row per env.

The kernels compute the policies of this package (:class:`~sb3_ac_plus.policies.networks.ActorCriticMlpExtractor`
without a shared trunk, as :class:`~sb3_ac_plus.policies.streaming.StreamingActorCriticPolicy` and the separate
presets build it) on flat vector observations, with Categorical, diagonal Gaussian or gSDE actions, on the CPU. They
read the weights from the policy's own flat parameter vector (:mod:`~sb3_ac_plus.one_step_ac.parameter_layout`), so
the torch policy stays the model: ``predict``, saving and loading use it unchanged.
"""

import math
from typing import cast

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

from sb3_ac_plus.one_step_ac.fast.heads import CATEGORICAL, GAUSSIAN, SDE
from sb3_ac_plus.one_step_ac.fast.mlp import mlp_forward
from sb3_ac_plus.one_step_ac.fast.sampling import sample_categorical
from sb3_ac_plus.policies.networks import MLP, ActorCriticMlpExtractor


def _activation(module: nn.Module) -> float | None:
    """The activation as its slope for negative inputs (LeakyReLU, ReLU), ``nan`` for Tanh, None if unsupported."""
    if type(module) is nn.LeakyReLU:
        return float(module.negative_slope)
    if type(module) is nn.ReLU:
        return 0.0
    if type(module) is nn.Tanh:
        return math.nan
    return None


def _is_plain_sde(policy: ActorCriticPolicy) -> bool:
    """Whether the policy explores with gSDE as SB3's defaults set it up (full std, ``exp``, no feature learning
    through the noise, no squashing)."""
    dist = policy.action_dist
    return (
        type(dist) is StateDependentNoiseDistribution
        and dist.full_std
        and not dist.use_expln
        and not dist.learn_features
        and dist.bijector is None
    )


def supports_kernels(policy: ActorCriticPolicy, observation_space: spaces.Space, device: th.device) -> bool:
    """:return: whether the compiled kernels compute this policy (else OneStepAC runs the reference update)"""
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


def _layout(mlp: MLP, head: nn.Linear, offsets: dict[int, int]) -> np.ndarray:
    """One row ``(weight_offset, bias_offset, n_in, n_out)`` per linear layer, the head last (see ``fast.mlp``)."""
    linears = [*mlp.linears, head]
    rows = [[offsets[id(layer.weight)], offsets[id(layer.bias)], layer.in_features, layer.out_features] for layer in linears]
    return np.array(rows, dtype=np.int64)


def _mlp_arguments(mlp: MLP, head: nn.Linear, offsets: dict[int, int]) -> tuple[np.ndarray, bool, float, float]:
    """:return: an MLP and its head as the kernels take them: layout, LayerNorm flag and epsilon, activation"""
    slope = _activation(mlp.activation)
    assert slope is not None, f"unsupported activation {mlp.activation}"
    return _layout(mlp, head, offsets), mlp.layer_norm, float(mlp.layer_norm_eps), slope


class KernelNetworks:
    """
    The actor and the critic of a policy :func:`supports_kernels` accepts, as the kernels take them.

    :param policy: the policy; its parameters are views of ``params``
    :param offsets: the position of each parameter (by ``id``) in the flat parameter vector
    :param params: the flat parameter vector (a NumPy view of the policy's, float32)
    """

    def __init__(self, policy: ActorCriticPolicy, offsets: dict[int, int], params: np.ndarray) -> None:
        extractor = cast(ActorCriticMlpExtractor, policy.mlp_extractor)
        actor, critic = extractor.policy_net, extractor.value_net
        self.params = params
        self.kind = (
            SDE if _is_plain_sde(policy) else GAUSSIAN if type(policy.action_dist) is DiagGaussianDistribution else CATEGORICAL
        )
        self.sde_epsilon = (
            float(cast(StateDependentNoiseDistribution, policy.action_dist).epsilon) if self.kind == SDE else 0.0
        )
        # log_std: (action_dim,) for a state-independent std, (latent_dim, action_dim) with gSDE
        self.log_std = policy.log_std.detach().numpy() if self.kind != CATEGORICAL else np.zeros(0, dtype=np.float32)
        self.log_std_offset = offsets[id(policy.log_std)] if self.kind != CATEGORICAL else 0
        self.actor = _mlp_arguments(actor, policy.action_net, offsets)  # type: ignore[arg-type]
        self.critic = _mlp_arguments(critic, policy.value_net, offsets)  # type: ignore[arg-type]
        layout = self.actor[0]
        self._n_out = int(layout[-1, 3])
        self._latent_dim = int(layout[-1, 2])
        self._width = int(max(layout[:, 2].max(), layout[:-1, 3].max() if len(layout) > 1 else 0))

    def act(self, obs: np.ndarray, generator: th.Generator, noise: np.ndarray | None) -> np.ndarray:
        """
        Sample one action per row, drawing what the reference draws from ``generator``.

        :param obs: normalised observations ``(n_envs, obs_dim)``, float32
        :param generator: the model's random generator
        :param noise: the standard-normal draws of Gaussian actions ``(n_envs, action_dim)`` (colored noise; None draws
            white noise); with gSDE, the draws ``eps`` of each env's exploration matrix ``(n_envs, latent_dim,
            action_dim)`` (required): the action is ``mean + latent @ (exp(log_std) * eps)``, as SB3 samples it
        :return: the actions ``(n_envs,)`` (Categorical) or ``(n_envs, action_dim)``
        """
        n_rows = obs.shape[0]
        layout, layer_norm, eps, slope = self.actor
        n_hidden = layout.shape[0] - 1
        acts = np.empty((n_hidden + 1, n_rows, self._width), dtype=np.float32)
        pres = np.empty((max(n_hidden, 1), n_rows, self._width), dtype=np.float32)
        inv_stds = np.ones((max(n_hidden, 1), n_rows), dtype=np.float32)
        out = np.empty((n_rows, self._n_out), dtype=np.float32)
        mlp_forward(self.params, layout, obs, layer_norm, eps, slope, acts, pres, inv_stds, out)
        if self.kind == CATEGORICAL:
            actions = np.zeros(n_rows, dtype=np.int64)
            sample_categorical(out, th.rand((n_rows,), generator=generator).numpy(), actions)
            return actions
        if self.kind == SDE:
            if noise is None:
                raise ValueError("gSDE: act() needs the exploration matrices' draws (noise)")
            latent = acts[n_hidden, :, : self._latent_dim]
            return (out + np.einsum("rl,rla->ra", latent, np.exp(self.log_std) * noise)).astype(np.float32)
        if noise is None:
            noise = th.randn(out.shape, generator=generator).numpy()
        return (out + np.exp(self.log_std) * noise).astype(np.float32)
