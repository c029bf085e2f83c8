"""The shared-trunk and the separate-networks actor-critic policies, for vectors, images and Dict observations."""

from typing import Any, ClassVar

from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from torch import nn

from sb3_ac_plus.policies.actor_critic import PolicyPreset


class SharedTrunkActorCriticPolicy(PolicyPreset):
    """
    The actor-critic of the Keras and PyTorch CartPole examples: one hidden layer (128 units, ReLU) shared by an
    action head and a value head. Defaults: ``net_arch=dict(shared=[128])``, ``activation_fn=nn.ReLU``,
    ``layer_norm=True``, ``init="orthogonal"``, state-independent std. LayerNorm (without affine parameters) is the
    one change from the tutorials' network: without it the shared trunk collapses under OneStepAC's default step
    sizes on CartPole-v1 (see the README); ``layer_norm=False`` gives the tutorials' network exactly. Every keyword
    argument of
    :class:`~sb3_ac_plus.policies.actor_critic.ConfigurableActorCriticPolicy` overrides them (for example
    ``net_arch=dict(shared=[64, 64], pi=[32], vf=[32])``).

    How the trunk learns: under A2C and PPO, from the gradient of the summed loss. Under OneStepAC with
    ``update_rule="obgd"`` or ``"sgd"``, the trunk receives the actor's update (actor step size ``learning_rate``,
    actor trace) plus the critic's update (critic step size ``critic_learning_rate``, critic trace), each as it would
    for an actor-only or critic-only parameter; with ``update_rule="optimizer"`` the trunk is in the critic's parameter
    group and receives the sum of the actor's and the critic's gradients at the critic's learning rate. OneStepAC runs
    it with torch autograd (the NumPy fast path computes separate networks only).
    """

    preset: ClassVar[dict[str, Any]] = dict(
        net_arch=dict(shared=[128]), activation_fn=nn.ReLU, layer_norm=True, init="orthogonal", std="state_independent"
    )


class SharedTrunkActorCriticCnnPolicy(SharedTrunkActorCriticPolicy):
    """:class:`SharedTrunkActorCriticPolicy` with SB3's NatureCNN features extractor, for images."""

    preset: ClassVar[dict[str, Any]] = {**SharedTrunkActorCriticPolicy.preset, "features_extractor_class": NatureCNN}


class SharedTrunkMultiInputActorCriticPolicy(SharedTrunkActorCriticPolicy):
    """:class:`SharedTrunkActorCriticPolicy` with SB3's CombinedExtractor, for ``Dict`` observations."""

    preset: ClassVar[dict[str, Any]] = {**SharedTrunkActorCriticPolicy.preset, "features_extractor_class": CombinedExtractor}


class SeparateActorCriticPolicy(PolicyPreset):
    """
    Separate actor and critic MLPs, as in Spinning Up's ``MLPActorCritic`` and SB3's ``MlpPolicy``, with SB3's
    defaults: ``net_arch=dict(pi=[64, 64], vf=[64, 64])``, ``activation_fn=nn.Tanh``, ``layer_norm=False``,
    ``init="orthogonal"``, state-independent std. With the same seed it draws the same initial parameters as SB3's
    ``MlpPolicy`` and computes the same outputs. Every keyword argument of
    :class:`~sb3_ac_plus.policies.actor_critic.ConfigurableActorCriticPolicy` overrides the defaults. OneStepAC runs it
    on its NumPy fast path (vector observations, Categorical or Gaussian actions).
    """

    preset: ClassVar[dict[str, Any]] = dict(
        activation_fn=nn.Tanh, layer_norm=False, init="orthogonal", std="state_independent"
    )


class SeparateActorCriticCnnPolicy(SeparateActorCriticPolicy):
    """:class:`SeparateActorCriticPolicy` with SB3's NatureCNN features extractor (and, as SB3, no hidden layers)."""

    preset: ClassVar[dict[str, Any]] = {**SeparateActorCriticPolicy.preset, "features_extractor_class": NatureCNN}


class SeparateMultiInputActorCriticPolicy(SeparateActorCriticPolicy):
    """:class:`SeparateActorCriticPolicy` with SB3's CombinedExtractor, for ``Dict`` observations."""

    preset: ClassVar[dict[str, Any]] = {**SeparateActorCriticPolicy.preset, "features_extractor_class": CombinedExtractor}
