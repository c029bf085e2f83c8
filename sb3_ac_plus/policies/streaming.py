"""The streaming actor-critic policy: the networks that keep batch-size-1 online learning stable."""

import itertools
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import Schedule
from torch import nn
from torch.nn import functional as F

from sb3_ac_plus.common.initialization import sparse_init_module_


class StreamingMLP(nn.Module):
    """
    ``Linear -> LayerNorm (no affine parameters) -> activation`` for each hidden layer.

    The forward pass calls the functional ops directly: at batch size 1 the per-module call overhead of an
    ``nn.Sequential`` is a large part of an online update.

    :param input_dim: size of the input
    :param layer_sizes: size of each hidden layer (empty: the identity)
    :param activation_fn: activation class
    :param layer_norm: whether to normalise each layer's pre-activations
    """

    def __init__(self, input_dim: int, layer_sizes: list[int], activation_fn: type[nn.Module], layer_norm: bool) -> None:
        super().__init__()
        if any(not isinstance(size, int) or size <= 0 for size in layer_sizes):
            raise ValueError(f"net_arch: layer sizes must be positive integers, got {layer_sizes}")
        sizes = [input_dim, *layer_sizes]
        self.linears = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in itertools.pairwise(sizes))
        self.activation = activation_fn()
        self.layer_norm = layer_norm

    def forward(self, x: th.Tensor) -> th.Tensor:
        for linear in self.linears:
            x = F.linear(x, linear.weight, linear.bias)  # type: ignore[arg-type]
            if self.layer_norm:
                x = F.layer_norm(x, x.shape[-1:])
            x = self.activation(x)
        return x


class StreamingMlpExtractor(nn.Module):
    """
    Separate actor and critic :class:`StreamingMLP` (the ``mlp_extractor`` SB3 policies expect).

    :param feature_dim: size of the features from the features extractor
    :param net_arch: ``dict(pi=[...], vf=[...])`` or a list used for both
    :param activation_fn: activation class
    :param layer_norm: whether to use LayerNorm without affine parameters after each linear layer
    """

    def __init__(
        self,
        feature_dim: int,
        net_arch: list[int] | dict[str, list[int]],
        activation_fn: type[nn.Module],
        layer_norm: bool,
    ) -> None:
        super().__init__()
        if isinstance(net_arch, dict):
            unknown = set(net_arch) - {"pi", "vf"}
            if unknown:
                raise ValueError(f"net_arch: unknown keys {sorted(unknown)}; allowed keys are 'pi' and 'vf'")
            pi_sizes, vf_sizes = list(net_arch.get("pi", [])), list(net_arch.get("vf", []))
        else:
            pi_sizes = vf_sizes = list(net_arch)
        self.policy_net = StreamingMLP(feature_dim, pi_sizes, activation_fn, layer_norm)
        self.value_net = StreamingMLP(feature_dim, vf_sizes, activation_fn, layer_norm)
        self.latent_dim_pi = pi_sizes[-1] if pi_sizes else feature_dim
        self.latent_dim_vf = vf_sizes[-1] if vf_sizes else feature_dim

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        return self.policy_net(features)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.value_net(features)


class StreamingActorCriticPolicy(ActorCriticPolicy):
    """
    Actor-critic policy with the networks of stream AC(lambda): separate actor and critic MLPs, LayerNorm without
    affine parameters, LeakyReLU and sparse initialisation. It is an ordinary SB3 ``ActorCriticPolicy``, so A2C and
    PPO accept it too. Gaussian actions use SB3's state-independent log std.

    :param observation_space: observation space
    :param action_space: action space
    :param lr_schedule: learning rate schedule (used by the optimizer SB3 builds)
    :param net_arch: hidden layer sizes, ``dict(pi=[...], vf=[...])`` or one list for both (default 128, 128)
    :param activation_fn: activation class (default ``nn.LeakyReLU``)
    :param layer_norm: LayerNorm without affine parameters after each hidden linear layer
    :param sparsity: fraction of each unit's inputs zeroed at initialisation, in [0, 1); 0 gives dense LeCun-uniform
        weights. Applies to the MLPs and the action and value heads; a features extractor keeps its own initialisation.
    :param use_sde: not supported by OneStepAC; kept for SB3 compatibility
    :param log_std_init: initial log std of Gaussian actions
    :param full_std: see SB3's ``ActorCriticPolicy``
    :param use_expln: see SB3's ``ActorCriticPolicy``
    :param squash_output: see SB3's ``ActorCriticPolicy``
    :param features_extractor_class: features extractor class
    :param features_extractor_kwargs: keyword arguments of the features extractor
    :param share_features_extractor: whether actor and critic share the features extractor
    :param normalize_images: whether to divide images by 255
    :param optimizer_class: optimizer class (used by A2C, PPO and OneStepAC's ``update_rule="optimizer"``)
    :param optimizer_kwargs: keyword arguments of the optimizer
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.LeakyReLU,
        layer_norm: bool = True,
        sparsity: float = 0.9,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"policy_kwargs['sparsity'] must be in [0, 1), got {sparsity}")
        self.layer_norm = layer_norm
        self.sparsity = sparsity
        if net_arch is None:
            net_arch = dict(pi=[128, 128], vf=[128, 128])
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            ortho_init=False,
            use_sde=use_sde,
            log_std_init=log_std_init,
            full_std=full_std,
            use_expln=use_expln,
            squash_output=squash_output,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = StreamingMlpExtractor(  # type: ignore[assignment]
            self.features_dim,
            net_arch=self.net_arch,  # type: ignore[arg-type]
            activation_fn=self.activation_fn,
            layer_norm=self.layer_norm,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        if self.sparsity > 0.0:
            for module in (self.mlp_extractor, self.action_net, self.value_net):
                sparse_init_module_(module, self.sparsity)
        else:
            for module in (self.mlp_extractor, self.action_net, self.value_net):
                for layer in module.modules():
                    if isinstance(layer, nn.Linear):
                        layer.reset_parameters()
                        nn.init.zeros_(layer.bias)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("ortho_init", None)
        data.update(layer_norm=self.layer_norm, sparsity=self.sparsity)
        return data


class StreamingActorCriticCnnPolicy(StreamingActorCriticPolicy):
    """:class:`StreamingActorCriticPolicy` with SB3's NatureCNN features extractor by default, for images."""

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class StreamingMultiInputActorCriticPolicy(StreamingActorCriticPolicy):
    """:class:`StreamingActorCriticPolicy` with SB3's CombinedExtractor by default, for ``Dict`` observations."""

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
