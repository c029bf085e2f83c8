from sb3_ac_plus.policies.streaming import (
    StreamingActorCriticCnnPolicy,
    StreamingActorCriticPolicy,
    StreamingMultiInputActorCriticPolicy,
)

__all__ = ["StreamingActorCriticCnnPolicy", "StreamingActorCriticPolicy", "StreamingMultiInputActorCriticPolicy"]
