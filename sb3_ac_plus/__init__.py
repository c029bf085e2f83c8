from sb3_ac_plus.one_step_ac import NonFiniteError, OneStepAC
from sb3_ac_plus.policies import (
    ConfigurableActorCriticPolicy,
    SeparateActorCriticCnnPolicy,
    SeparateActorCriticPolicy,
    SeparateMultiInputActorCriticPolicy,
    SharedTrunkActorCriticCnnPolicy,
    SharedTrunkActorCriticPolicy,
    SharedTrunkMultiInputActorCriticPolicy,
    StreamingActorCriticCnnPolicy,
    StreamingActorCriticPolicy,
    StreamingMultiInputActorCriticPolicy,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurableActorCriticPolicy",
    "NonFiniteError",
    "OneStepAC",
    "SeparateActorCriticCnnPolicy",
    "SeparateActorCriticPolicy",
    "SeparateMultiInputActorCriticPolicy",
    "SharedTrunkActorCriticCnnPolicy",
    "SharedTrunkActorCriticPolicy",
    "SharedTrunkMultiInputActorCriticPolicy",
    "StreamingActorCriticCnnPolicy",
    "StreamingActorCriticPolicy",
    "StreamingMultiInputActorCriticPolicy",
]
