from sb3_ac_plus.policies.actor_critic import ConfigurableActorCriticPolicy
from sb3_ac_plus.policies.distributions import StateDependentStdGaussianDistribution
from sb3_ac_plus.policies.presets import (
    SeparateActorCriticCnnPolicy,
    SeparateActorCriticPolicy,
    SeparateMultiInputActorCriticPolicy,
    SharedTrunkActorCriticCnnPolicy,
    SharedTrunkActorCriticPolicy,
    SharedTrunkMultiInputActorCriticPolicy,
)
from sb3_ac_plus.policies.streaming import (
    StreamingActorCriticCnnPolicy,
    StreamingActorCriticPolicy,
    StreamingMultiInputActorCriticPolicy,
)

__all__ = [
    "ConfigurableActorCriticPolicy",
    "SeparateActorCriticCnnPolicy",
    "SeparateActorCriticPolicy",
    "SeparateMultiInputActorCriticPolicy",
    "SharedTrunkActorCriticCnnPolicy",
    "SharedTrunkActorCriticPolicy",
    "SharedTrunkMultiInputActorCriticPolicy",
    "StateDependentStdGaussianDistribution",
    "StreamingActorCriticCnnPolicy",
    "StreamingActorCriticPolicy",
    "StreamingMultiInputActorCriticPolicy",
]
