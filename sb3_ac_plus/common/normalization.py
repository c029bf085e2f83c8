"""Online observation normalisation and reward scaling, kept inside the model so that it is saved with it."""

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space


class WelfordMeanStd:
    """
    Running mean and sample variance (Welford's algorithm, merged batch by batch with Chan's formula).

    Until two samples have been seen the variance is 1, so the first observations are not blown up by a
    near-zero variance estimate (the choice made by stream AC(lambda)).

    :param shape: shape of one sample
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.sum_sq = np.zeros(shape, dtype=np.float64)
        self.count = 0

    @property
    def var(self) -> np.ndarray:
        if self.count < 2:
            return np.ones_like(self.mean)
        return self.sum_sq / (self.count - 1)

    def update(self, batch: np.ndarray) -> None:
        """
        :param batch: samples stacked along the first axis
        """
        batch = np.asarray(batch, dtype=np.float64)
        n_batch = batch.shape[0]
        if n_batch == 1:  # the usual online case: one env
            self.count += 1
            diff = batch[0] - self.mean
            self.mean = self.mean + diff / self.count
            self.sum_sq = self.sum_sq + diff * (batch[0] - self.mean)
            return
        if n_batch == 0:
            return
        batch_mean = batch.mean(axis=0)
        batch_sum_sq = ((batch - batch_mean) ** 2).sum(axis=0)
        total = self.count + n_batch
        diff = batch_mean - self.mean
        self.mean = self.mean + diff * (n_batch / total)
        self.sum_sq = self.sum_sq + batch_sum_sq + diff**2 * (self.count * n_batch / total)
        self.count = total


def _normalized_keys(observation_space: spaces.Space) -> list[str | None]:
    """Keys of the observation parts that are normalised: float Box spaces that are not images (None: the whole obs)."""

    def wants_normalization(space: spaces.Space) -> bool:
        return isinstance(space, spaces.Box) and not is_image_space(space, check_channels=False)

    if isinstance(observation_space, spaces.Dict):
        return [key for key, sub_space in observation_space.spaces.items() if wants_normalization(sub_space)]
    return [None] if wants_normalization(observation_space) else []


class ObservationNormalizer:
    """
    Normalises float vector observations online: ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``.

    Images, discrete observations and binary observations pass through unchanged (SB3's preprocessing handles them).
    For ``Dict`` spaces each float vector key has its own statistics.

    :param observation_space: the environment's observation space
    :param clip_obs: observations are clipped to ``[-clip_obs, clip_obs]`` after normalisation
    :param epsilon: added to the variance to avoid dividing by zero
    """

    def __init__(self, observation_space: spaces.Space, clip_obs: float = 10.0, epsilon: float = 1e-8) -> None:
        self.keys = _normalized_keys(observation_space)
        self.stats: dict[str | None, WelfordMeanStd] = {}
        for key in self.keys:
            space = observation_space[key] if key is not None else observation_space  # type: ignore[index]
            self.stats[key] = WelfordMeanStd(space.shape)  # type: ignore[arg-type]
        self.clip_obs = clip_obs
        self.epsilon = epsilon

    @property
    def active(self) -> bool:
        return len(self.keys) > 0

    def update(self, observations: Any) -> None:
        """
        :param observations: a batch of observations (one row per env), a dict of batches for ``Dict`` spaces
        """
        for key in self.keys:
            self.stats[key].update(observations[key] if key is not None else observations)

    def _normalize_array(self, key: str | None, obs: np.ndarray) -> np.ndarray:
        stats = self.stats[key]
        normalized = (obs - stats.mean) / np.sqrt(stats.var + self.epsilon)
        return np.clip(normalized, -self.clip_obs, self.clip_obs).astype(np.float32)

    def normalize(self, observations: Any) -> Any:
        """
        Normalise without updating the statistics; works on one observation or a batch.

        :param observations: raw observations
        :return: normalised observations (a new object; the input is not modified)
        """
        if not self.active:
            return observations
        if None in self.stats:
            return self._normalize_array(None, observations)
        normalized = dict(observations)
        for key in self.keys:
            normalized[key] = self._normalize_array(key, observations[key])
        return normalized


class RewardScaler:
    """
    Divides rewards by the standard deviation of the discounted return, tracked per env (as SB3's ``VecNormalize``
    and stream AC(lambda)'s reward scaling do). The mean is not subtracted, so the sign of rewards is kept.

    :param n_envs: number of environments
    :param gamma: discount factor of the return whose spread is tracked
    :param epsilon: added to the variance to avoid dividing by zero
    """

    def __init__(self, n_envs: int, gamma: float, epsilon: float = 1e-8) -> None:
        self.returns = np.zeros(n_envs, dtype=np.float64)
        self.stats = WelfordMeanStd(())
        self.gamma = gamma
        self.epsilon = epsilon

    def scale(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """
        Update the statistics with this step's rewards and return the scaled rewards.

        :param rewards: this step's rewards, one per env
        :param dones: whether each env's episode ended at this step
        :return: scaled rewards, float32
        """
        self.returns = self.returns * self.gamma + rewards
        self.stats.update(self.returns)
        self.returns[dones] = 0.0
        return (rewards / np.sqrt(self.stats.var + self.epsilon)).astype(np.float32)

    def reset(self, n_envs: int) -> None:
        """Forget the per-env returns (after a reset of the environments), keeping the statistics."""
        self.returns = np.zeros(n_envs, dtype=np.float64)
