"""The streaming actor-critic policy: the networks that keep batch-size-1 online learning stable."""

from typing import Any, ClassVar

from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from torch import nn

from sb3_ac_plus.policies.actor_critic import PolicyPreset
from sb3_ac_plus.policies.networks import MLP, ActorCriticMlpExtractor

# The names of these modules before the shared trunk existed.
StreamingMLP = MLP
StreamingMlpExtractor = ActorCriticMlpExtractor


class StreamingActorCriticPolicy(PolicyPreset):
    """
    Actor-critic policy with the networks of stream AC(lambda): separate actor and critic MLPs, LayerNorm without
    affine parameters, LeakyReLU and sparse initialisation. It is an ordinary SB3 ``ActorCriticPolicy``, so A2C and
    PPO accept it too. Defaults: ``net_arch=dict(pi=[64, 64], vf=[64, 64])`` (stream AC(lambda) uses 128 units; 64 learned
    as well or better on five of six tasks, worse on LunarLander, and run twice as fast; see ``docs/one_step_ac.md``),
    ``activation_fn=nn.LeakyReLU``,
    ``layer_norm=True``, ``init="sparse"``, ``sparsity=0.9`` (0 gives dense LeCun-uniform weights; the MLPs and the
    action and value heads are initialised, a features extractor keeps its own initialisation), and SB3's
    state-independent log std for Gaussian actions (``std="state_dependent"`` gives stream AC(lambda)'s
    state-dependent std, on OneStepAC's torch path). Every keyword argument of
    :class:`~sb3_ac_plus.policies.actor_critic.ConfigurableActorCriticPolicy` overrides the defaults.
    """

    preset: ClassVar[dict[str, Any]] = dict(
        net_arch=dict(pi=[64, 64], vf=[64, 64]),
        activation_fn=nn.LeakyReLU,
        layer_norm=True,
        init="sparse",
        sparsity=0.9,
        std="state_independent",
    )


class StreamingActorCriticCnnPolicy(StreamingActorCriticPolicy):
    """:class:`StreamingActorCriticPolicy` with SB3's NatureCNN features extractor by default, for images."""

    preset: ClassVar[dict[str, Any]] = {**StreamingActorCriticPolicy.preset, "features_extractor_class": NatureCNN}


class StreamingMultiInputActorCriticPolicy(StreamingActorCriticPolicy):
    """:class:`StreamingActorCriticPolicy` with SB3's CombinedExtractor by default, for ``Dict`` observations."""

    preset: ClassVar[dict[str, Any]] = {**StreamingActorCriticPolicy.preset, "features_extractor_class": CombinedExtractor}
