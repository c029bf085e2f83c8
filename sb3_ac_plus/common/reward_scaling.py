"""Online reward scaling, training state of the algorithm (saved with the model)."""

import math
from typing import NamedTuple

import numpy as np

from sb3_ac_plus.common.running_statistics import RunningMeanStd, merge_batch, welford_step


class ScaledRewards(NamedTuple):
    """This step's scaled rewards and the scaler's state once the step is committed."""

    rewards: np.ndarray
    returns: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    n_seen: float


class RewardScaler:
    """
    Divides rewards by the standard deviation of the discounted return, tracked per env (as SB3's ``VecNormalize``
    and stream AC(lambda)'s reward scaling do). The mean is not subtracted, so the sign of rewards is kept.

    A step is scaled first (:meth:`scale`, which changes nothing) and committed once its update is applied
    (:meth:`commit`), so that a refused update leaves the scaler as it was.

    The first step is scaled with a variance of 1, whatever the number of envs: one env's first return is a single
    sample, and the first returns of several envs are all equal wherever the reward is constant (CartPole's +1,
    Acrobot's -1), so their sample variance of 0 would multiply that step's rewards by ``1 / sqrt(epsilon)``.

    With one env, :meth:`scale` and :meth:`commit` compute the same float64 operations on Python floats (a NumPy
    operation on a one-element array costs about a microsecond, a float operation a few tens of nanoseconds): the
    same numbers to the last bit.

    :param n_envs: number of environments
    :param gamma: discount factor of the return whose spread is tracked
    :param epsilon: added to the variance to avoid dividing by zero
    """

    def __init__(self, n_envs: int, gamma: float, epsilon: float = 1e-8) -> None:
        self.returns = np.zeros(n_envs, dtype=np.float64)
        self.stats = RunningMeanStd(())
        self.gamma = gamma
        self.epsilon = epsilon

    def scale(self, rewards: np.ndarray) -> ScaledRewards:
        """
        :param rewards: this step's rewards, one per env
        :return: the scaled rewards (float32, with the statistics including this step) and the pending state
        """
        if rewards.shape == (1,):
            return self._scale_one(float(rewards[0]))
        returns = self.returns * self.gamma + rewards
        mean, var, count = merge_batch(self.stats.mean, self.stats.var, self.stats.count, returns)
        scale_var = var if self.stats.count > 0 else np.ones_like(var)
        scaled = (rewards / np.sqrt(scale_var + self.epsilon)).astype(np.float32)
        return ScaledRewards(scaled, returns, mean, var, count)

    def _scale_one(self, reward: float) -> ScaledRewards:
        """:meth:`scale` for one env, in floats: :func:`welford_step`, as :func:`merge_batch` computes one sample."""
        count = self.stats.count
        ret = float(self.returns[0]) * self.gamma + reward
        new_mean, new_var = welford_step(float(self.stats.mean), float(self.stats.var), count, ret)
        scale_var = new_var if count > 0 else 1.0
        scaled = np.array([reward / math.sqrt(scale_var + self.epsilon)], dtype=np.float32)
        return ScaledRewards(scaled, np.array([ret]), np.array(new_mean), np.array(new_var), count + 1.0)

    def commit(self, scaled: ScaledRewards, dones: np.ndarray) -> None:
        """
        :param scaled: what :meth:`scale` returned for this step
        :param dones: whether each env's episode ended at this step (its return starts again from 0)
        """
        self.stats.mean, self.stats.var, self.stats.count = scaled.mean, scaled.var, scaled.n_seen
        if dones.shape == (1,):
            self.returns = np.zeros(1) if dones[0] else scaled.returns
        else:
            self.returns = np.where(dones, 0.0, scaled.returns)

    def state(self) -> dict[str, np.ndarray | float]:
        """:return: the scaler's state as plain arrays and numbers (for saving)"""
        return {
            "returns": self.returns.copy(),
            "mean": self.stats.mean.copy(),
            "var": self.stats.var.copy(),
            "count": self.stats.count,
        }

    def restore(self, state: dict[str, np.ndarray | float]) -> None:
        """:param state: what :meth:`state` returned"""
        self.returns = np.array(state["returns"], dtype=np.float64)
        self.stats.mean = np.array(state["mean"], dtype=np.float64)
        self.stats.var = np.array(state["var"], dtype=np.float64)
        self.stats.count = float(state["count"])

    def reset(self, n_envs: int) -> None:
        """Forget the per-env returns (after a reset of the environments), keeping the statistics."""
        self.returns = np.zeros(n_envs, dtype=np.float64)
