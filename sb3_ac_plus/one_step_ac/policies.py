from sb3_ac_plus.policies.streaming import (
    StreamingActorCriticCnnPolicy,
    StreamingActorCriticPolicy,
    StreamingMultiInputActorCriticPolicy,
)

MlpPolicy = StreamingActorCriticPolicy
CnnPolicy = StreamingActorCriticCnnPolicy
MultiInputPolicy = StreamingMultiInputActorCriticPolicy
