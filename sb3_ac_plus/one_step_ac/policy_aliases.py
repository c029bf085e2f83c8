from stable_baselines3.common.policies import BasePolicy

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

MlpPolicy = StreamingActorCriticPolicy
CnnPolicy = StreamingActorCriticCnnPolicy
MultiInputPolicy = StreamingMultiInputActorCriticPolicy

# The names OneStepAC("<name>", env) accepts. The default names are the streaming networks.
POLICY_ALIASES: dict[str, type[BasePolicy]] = {
    "MlpPolicy": MlpPolicy,
    "CnnPolicy": CnnPolicy,
    "MultiInputPolicy": MultiInputPolicy,
    "StreamingMlpPolicy": StreamingActorCriticPolicy,
    "StreamingCnnPolicy": StreamingActorCriticCnnPolicy,
    "StreamingMultiInputPolicy": StreamingMultiInputActorCriticPolicy,
    "SharedMlpPolicy": SharedTrunkActorCriticPolicy,
    "SharedCnnPolicy": SharedTrunkActorCriticCnnPolicy,
    "SharedMultiInputPolicy": SharedTrunkMultiInputActorCriticPolicy,
    "SeparateMlpPolicy": SeparateActorCriticPolicy,
    "SeparateCnnPolicy": SeparateActorCriticCnnPolicy,
    "SeparateMultiInputPolicy": SeparateMultiInputActorCriticPolicy,
}
