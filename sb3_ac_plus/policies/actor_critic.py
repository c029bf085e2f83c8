"""One configurable actor-critic policy, of which the named policies are presets."""

import copy
import inspect
import math
import warnings
from functools import partial
from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_ac_plus.common.initialization import sparse_init_module_
from sb3_ac_plus.policies.distributions import MeanLogStdNet, StateDependentStdGaussianDistribution
from sb3_ac_plus.policies.networks import ActorCriticMlpExtractor, parse_net_arch
from sb3_ac_plus.policies.observation_normalizer import ObservationNormalizer

INITS = ("orthogonal", "sparse", "default")
STD_FORMS = ("state_independent", "state_dependent")


class ConfigurableActorCriticPolicy(ActorCriticPolicy):
    """
    An SB3 ``ActorCriticPolicy`` whose networks are set by ``policy_kwargs``: an optional trunk shared by the actor
    and the critic, then separate actor and critic MLPs, with or without LayerNorm, with orthogonal, sparse or
    PyTorch's default initialisation, and a state-independent or state-dependent std for Gaussian actions. A2C, PPO
    and OneStepAC all accept it. The defaults are SB3's ``MlpPolicy``; the named policies
    (:class:`~sb3_ac_plus.policies.presets.SharedTrunkActorCriticPolicy`,
    :class:`~sb3_ac_plus.policies.presets.SeparateActorCriticPolicy`,
    :class:`~sb3_ac_plus.policies.streaming.StreamingActorCriticPolicy`) only change the defaults.

    Parameters the actor and the critic share (the trunk, a shared features extractor) receive the gradients of both.
    Under A2C and PPO that is the gradient of the summed loss. Under OneStepAC with ``update_rule="obgd"`` or
    ``"sgd"`` they receive the actor's update (actor step size, actor trace) plus the critic's update (critic step
    size, critic trace); with ``update_rule="optimizer"`` they are in the critic's parameter group and receive the sum
    of both gradients at the critic's learning rate. A shared trunk runs OneStepAC on the torch path (the NumPy fast
    path computes separate networks only).

    :param observation_space: observation space
    :param action_space: action space
    :param lr_schedule: learning rate schedule (used by the optimizer SB3 builds)
    :param net_arch: hidden layer sizes, ``dict(shared=[...], pi=[...], vf=[...])`` (each key optional: ``shared``
        is the trunk both heads use, ``pi`` and ``vf`` the actor's and the critic's own layers) or one list for both
        ``pi`` and ``vf``. None gives SB3's default: ``dict(pi=[64, 64], vf=[64, 64])``, or no layers after NatureCNN.
    :param activation_fn: activation class (default ``nn.Tanh``)
    :param layer_norm: LayerNorm without affine parameters after each hidden linear layer (default False)
    :param init: initialisation of the MLPs and the heads: ``"orthogonal"`` (SB3's: gain sqrt(2) for hidden layers
        and the features extractor, 0.01 for the action head, 1 for the value head, zero biases), ``"sparse"``
        (stream AC(lambda)'s: LeCun-uniform weights with a fraction ``sparsity`` of each unit's inputs zeroed, zero
        biases; the features extractor keeps its own initialisation) or ``"default"`` (PyTorch's)
    :param sparsity: fraction of each unit's inputs zeroed by ``init="sparse"``, in [0, 1); 0 gives dense
        LeCun-uniform weights. Ignored by the other schemes.
    :param std: std of Gaussian actions: ``"state_independent"`` (SB3's learned ``log_std`` vector) or
        ``"state_dependent"`` (a linear layer of the actor's latent adds to ``log_std``, see
        :class:`~sb3_ac_plus.policies.distributions.StateDependentStdGaussianDistribution`). Ignored for other
        action spaces.
    :param use_sde: gSDE exploration (A2C and PPO only; not with ``std="state_dependent"``)
    :param log_std_init: initial log std of Gaussian actions
    :param full_std: see SB3's ``ActorCriticPolicy`` (gSDE only)
    :param use_expln: see SB3's ``ActorCriticPolicy`` (gSDE only)
    :param squash_output: see SB3's ``ActorCriticPolicy`` (gSDE only)
    :param features_extractor_class: features extractor class (``FlattenExtractor``, ``NatureCNN``,
        ``CombinedExtractor`` or your own)
    :param features_extractor_kwargs: keyword arguments of the features extractor
    :param share_features_extractor: whether actor and critic share the features extractor
    :param normalize_images: whether to divide images by 255
    :param optimizer_class: optimizer class (used by A2C, PPO and OneStepAC's ``update_rule="optimizer"``)
    :param optimizer_kwargs: keyword arguments of the optimizer
    :param normalize_observations: normalise float vector observations with running statistics (an
        :class:`~sb3_ac_plus.policies.observation_normalizer.ObservationNormalizer` held by the policy, saved with it)
        in every forward pass, so the policy takes raw observations. The statistics move only when an algorithm
        updates them: OneStepAC sets this from its own ``normalize_observations`` and updates them as it trains.
    :param clip_obs: normalised observations are clipped to ``[-clip_obs, clip_obs]``
    :param unknown_kwargs: none are accepted: an unknown key raises a ValueError listing the allowed ones
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        layer_norm: bool = False,
        init: str = "orthogonal",
        sparsity: float = 0.9,
        std: str = "state_independent",
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
        normalize_observations: bool = False,
        clip_obs: float = 10.0,
        **unknown_kwargs: Any,
    ) -> None:
        if unknown_kwargs:
            raise ValueError(_unknown_keys_message(type(self), unknown_kwargs))
        if isinstance(net_arch, list) and len(net_arch) > 0 and isinstance(net_arch[0], dict):
            # SB3's pre-1.8 form, which SB3 still accepts with the same warning.
            warnings.warn(
                "As shared layers in the mlp_extractor are removed since SB3 v1.8.0, you should now pass directly a "
                "dictionary and not a list (net_arch=dict(pi=..., vf=...) instead of net_arch=[dict(pi=..., vf=...)])"
            )
            net_arch = net_arch[0]
        if net_arch is None:
            net_arch = [] if features_extractor_class is NatureCNN else dict(pi=[64, 64], vf=[64, 64])
        check_policy_kwargs(net_arch, activation_fn, layer_norm, init, sparsity, std, use_sde)
        self.layer_norm = layer_norm
        self.init = init
        self.sparsity = sparsity
        self.std = std
        self.full_std = full_std
        self.use_expln = use_expln
        if not isinstance(normalize_observations, bool):
            raise ValueError(f"policy_kwargs['normalize_observations'] must be True or False, got {normalize_observations!r}")
        if (
            isinstance(clip_obs, bool)
            or not isinstance(clip_obs, (int, float))
            or not math.isfinite(clip_obs)
            or clip_obs <= 0
        ):
            raise ValueError(f"policy_kwargs['clip_obs'] must be a positive finite float, got {clip_obs!r}")
        self.normalize_observations = normalize_observations
        self.clip_obs = clip_obs
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            ortho_init=False,  # initialisation is ours, in _initialize
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
        self.mlp_extractor = ActorCriticMlpExtractor(  # type: ignore[assignment]
            self.features_dim,
            net_arch=self.net_arch,  # type: ignore[arg-type]
            activation_fn=self.activation_fn,
            layer_norm=self.layer_norm,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        normalizer = ObservationNormalizer(self.observation_space, self.clip_obs) if self.normalize_observations else None
        self.obs_normalizer = normalizer if normalizer is not None and normalizer.keys else None
        if self.std == "state_dependent" and type(self.action_dist) is DiagGaussianDistribution:
            self.action_dist = StateDependentStdGaussianDistribution(get_action_dim(self.action_space))
        super()._build(lr_schedule)
        self._initialize()

    def _initialize(self) -> None:
        """Initialise the parameters in place (the optimizer SB3 built holds the same tensors)."""
        heads = (self.mlp_extractor, self.action_net, self.value_net)
        if self.init == "orthogonal":
            # SB3's gains and order (the same random draws as SB3's MlpPolicy with ortho_init=True).
            gains: dict[nn.Module, float] = {self.features_extractor: math.sqrt(2)}
            gains.update({self.mlp_extractor: math.sqrt(2), self.action_net: 0.01, self.value_net: 1.0})
            if not self.share_features_extractor:
                del gains[self.features_extractor]
                gains.update({self.pi_features_extractor: math.sqrt(2), self.vf_features_extractor: math.sqrt(2)})
            for module, gain in gains.items():
                module.apply(partial(self.init_weights, gain=gain))
        elif self.init == "sparse" and self.sparsity > 0.0:
            for module in heads:
                sparse_init_module_(module, self.sparsity)
        elif self.init == "sparse":
            for module in heads:
                for layer in module.modules():
                    if isinstance(layer, nn.Linear):
                        layer.reset_parameters()
                        if layer.bias is not None:
                            nn.init.zeros_(layer.bias)
        if isinstance(self.action_net, MeanLogStdNet):
            self.action_net.reset_log_std_net()

    # The three entry points of SB3's ActorCriticPolicy that take observations (forward and evaluate_actions go
    # through extract_features): each normalises raw observations once.

    def extract_features(  # type: ignore[override]
        self, obs: PyTorchObs, features_extractor: BaseFeaturesExtractor | None = None
    ) -> th.Tensor | tuple[th.Tensor, th.Tensor]:
        return super().extract_features(self.normalize_obs(obs), features_extractor)

    def get_distribution(self, obs: PyTorchObs) -> Distribution:
        return super().get_distribution(self.normalize_obs(obs))

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        return super().predict_values(self.normalize_obs(obs))

    def normalize_obs(self, obs: PyTorchObs) -> PyTorchObs:
        """
        :param obs: raw observation tensors
        :return: the observations normalised with the policy's running statistics (unchanged without them)
        """
        return obs if self.obs_normalizer is None else self.obs_normalizer(obs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("ortho_init", None)
        data.update(
            normalize_observations=self.normalize_observations,
            clip_obs=self.clip_obs,
            layer_norm=self.layer_norm,
            init=self.init,
            sparsity=self.sparsity,
            std=self.std,
            # SB3 saves these three as None without gSDE and forgets share_features_extractor.
            full_std=self.full_std,
            use_expln=self.use_expln,
            squash_output=self.squash_output,
            share_features_extractor=self.share_features_extractor,
        )
        return data


class PolicyPreset(ConfigurableActorCriticPolicy):
    """
    A :class:`ConfigurableActorCriticPolicy` with other defaults: ``preset`` holds them, and any keyword argument
    overrides them.
    """

    preset: ClassVar[dict[str, Any]] = {}

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        super().__init__(observation_space, action_space, lr_schedule, **{**copy.deepcopy(self.preset), **kwargs})


def allowed_policy_kwargs() -> list[str]:
    """:return: the keyword arguments the policies accept (the keys of ``policy_kwargs``)"""
    skip = {"self", "observation_space", "action_space", "lr_schedule", "unknown_kwargs"}
    return [name for name in inspect.signature(ConfigurableActorCriticPolicy.__init__).parameters if name not in skip]


def _unknown_keys_message(policy_class: type, unknown_kwargs: dict[str, Any]) -> str:
    message = (
        f"policy_kwargs: unknown key(s) {sorted(unknown_kwargs)} for {policy_class.__name__}; "
        f"allowed keys: {', '.join(allowed_policy_kwargs())}"
    )
    if "ortho_init" in unknown_kwargs:
        message += " (instead of ortho_init, use init='orthogonal' or init='default')"
    return message


def check_policy_kwargs(
    net_arch: list[int] | dict[str, list[int]],
    activation_fn: type[nn.Module],
    layer_norm: bool,
    init: str,
    sparsity: float,
    std: str,
    use_sde: bool,
) -> None:
    """Raise a ValueError naming the first invalid policy keyword argument and what is allowed."""
    parse_net_arch(net_arch)
    if not (isinstance(activation_fn, type) and issubclass(activation_fn, nn.Module)):
        raise ValueError(f"policy_kwargs['activation_fn'] must be an nn.Module class such as nn.ReLU, got {activation_fn!r}")
    if not isinstance(layer_norm, bool):
        raise ValueError(f"policy_kwargs['layer_norm'] must be True or False, got {layer_norm!r}")
    if init not in INITS:
        raise ValueError(f"policy_kwargs['init'] must be one of {INITS}, got {init!r}")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"policy_kwargs['sparsity'] must be in [0, 1), got {sparsity!r}")
    if std not in STD_FORMS:
        raise ValueError(f"policy_kwargs['std'] must be one of {STD_FORMS}, got {std!r}")
    if std == "state_dependent" and use_sde:
        raise ValueError("policy_kwargs['std']: 'state_dependent' does not combine with use_sde=True (gSDE has its own std)")
