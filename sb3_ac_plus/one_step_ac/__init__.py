from sb3_ac_plus.one_step_ac.one_step_ac import NonFiniteError, OneStepAC
from sb3_ac_plus.one_step_ac.policy_aliases import CnnPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["CnnPolicy", "MlpPolicy", "MultiInputPolicy", "NonFiniteError", "OneStepAC"]
