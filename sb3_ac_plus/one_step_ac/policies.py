from stable_baselines3.common.policies import BasePolicy

from sb3_ac_plus.policies.streaming import (
    StreamingActorCriticCnnPolicy,
    StreamingActorCriticPolicy,
    StreamingMultiInputActorCriticPolicy,
)

MlpPolicy = StreamingActorCriticPolicy
CnnPolicy = StreamingActorCriticCnnPolicy
MultiInputPolicy = StreamingMultiInputActorCriticPolicy

# The names OneStepAC("<name>", env) accepts.
POLICY_ALIASES: dict[str, type[BasePolicy]] = {
    "MlpPolicy": MlpPolicy,
    "CnnPolicy": CnnPolicy,
    "MultiInputPolicy": MultiInputPolicy,
}
