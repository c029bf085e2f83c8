"""One step of every env, checked before anything of the model changes: actions in, a :class:`Transition` out."""

from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv

from sb3_ac_plus.one_step_ac.observations import all_finite, with_terminal_obs
from sb3_ac_plus.common.reward_scaling import RewardScaler, ScaledRewards


class NonFiniteError(RuntimeError):
    """
    Raised when an observation, a reward or an update is NaN or infinite. The step is not committed: parameters,
    traces, normalisers, n-step windows and counters stay as after the last completed step.
    """


class Transition(NamedTuple):
    """One step of every env, checked, and what the update needs from it; nothing of the model has changed yet."""

    new_obs: Any
    rewards: np.ndarray
    dones: np.ndarray
    infos: list[dict[str, Any]]
    bootstrap_obs: Any  # the next observations, with the terminal one where an episode was truncated
    learn_rewards: np.ndarray  # the rewards learned from (scaled with normalize_rewards)
    scaled: ScaledRewards | None  # the reward scaler's pending statistics
    terminated: np.ndarray


def check_finite_obs(obs: Any, step: int) -> None:
    if not all_finite(obs):
        raise NonFiniteError(f"OneStepAC: non-finite observation from the environment at step {step}")


def _env_actions(actions: np.ndarray, policy: ActorCriticPolicy) -> np.ndarray:
    """The actions as the env takes them: Box actions clipped to the bounds (or unscaled when squashed)."""
    action_space = policy.action_space
    env_actions = actions.reshape((-1, *action_space.shape))  # type: ignore[misc,arg-type]
    if isinstance(action_space, spaces.Box):
        if policy.squash_output:
            return policy.unscale_action(env_actions)
        return np.minimum(np.maximum(env_actions, action_space.low), action_space.high)
    return env_actions


def step_envs(
    env: VecEnv, actions: np.ndarray, policy: ActorCriticPolicy, num_timesteps: int, reward_scaler: RewardScaler | None
) -> Transition:
    """
    Step the envs and check and prepare what the update needs, changing nothing of the model.

    :param actions: the actions sampled, one per env
    :param num_timesteps: the env steps before this one (for the error messages)
    :param reward_scaler: scales the rewards (its statistics pending until the step is committed), or None
    :raises NonFiniteError: for a NaN or infinite reward or observation
    """
    new_obs, rewards, dones, infos = env.step(_env_actions(actions, policy))
    step = num_timesteps + env.num_envs
    if np.count_nonzero(np.isfinite(rewards)) != rewards.size:
        raise NonFiniteError(f"OneStepAC: non-finite reward {rewards} from the environment at step {step}")
    truncated, bootstrap_obs = dones, new_obs
    if np.count_nonzero(dones):
        truncated = np.array([info.get("TimeLimit.truncated", False) for info in infos], dtype=bool) & dones
        bootstrap_obs = with_terminal_obs(new_obs, infos, truncated) if truncated.any() else new_obs
    check_finite_obs(new_obs, step)
    if bootstrap_obs is not new_obs:
        check_finite_obs(bootstrap_obs, step)
    scaled = None if reward_scaler is None else reward_scaler.scale(rewards)
    learn_rewards = rewards.astype(np.float32) if scaled is None else scaled.rewards
    return Transition(new_obs, rewards, dones, infos, bootstrap_obs, learn_rewards, scaled, dones & ~truncated)
