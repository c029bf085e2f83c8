"""Online observation normalisation as part of the policy, so that the policy alone acts on raw observations."""

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from torch import nn

from sb3_ac_plus.common.running_statistics import merge_batch

_WHOLE_OBSERVATION = "obs"  # the statistics' name when the observation is not a Dict


def normalized_keys(observation_space: spaces.Space) -> list[str | None]:
    """
    :return: the keys of the observation parts that are normalised: float Box spaces that are not images (None: the
        whole observation)
    """

    def wants_normalization(space: spaces.Space) -> bool:
        return isinstance(space, spaces.Box) and not is_image_space(space, check_channels=False)

    if isinstance(observation_space, spaces.Dict):
        return [key for key, sub_space in observation_space.spaces.items() if wants_normalization(sub_space)]
    return [None] if wants_normalization(observation_space) else []


class RunningMeanStdBuffers(nn.Module):
    """
    Running mean and sample variance of one observation part, held in float64 buffers (``mean``, ``var``, ``count``)
    so that they are saved, loaded and moved with the policy.

    :param shape: shape of one observation
    """

    mean: th.Tensor
    var: th.Tensor
    count: th.Tensor

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", th.zeros(shape, dtype=th.float64))
        self.register_buffer("var", th.ones(shape, dtype=th.float64))
        self.register_buffer("count", th.zeros((), dtype=th.float64))

    def numpy_views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:return: the buffers as NumPy arrays (views of their memory on the CPU, copies elsewhere)"""
        return self.mean.cpu().numpy(), self.var.cpu().numpy(), self.count.cpu().numpy()

    @th.no_grad()
    def update(self, batch: np.ndarray) -> None:
        """
        :param batch: raw observations stacked along the first axis
        """
        mean, var, count = self.numpy_views()
        new_mean, new_var, new_count = merge_batch(mean, var, float(count), batch)
        if self.mean.device.type == "cpu":
            mean[...], var[...], count[...] = new_mean, new_var, new_count
        else:
            self.mean.copy_(th.from_numpy(new_mean))
            self.var.copy_(th.from_numpy(new_var))
            self.count.fill_(new_count)


class ObservationNormalizer(nn.Module):
    """
    Normalises float vector observations: ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``, in float64
    and then cast to float32, with the running statistics of the observations seen in training.

    The statistics are buffers of this module: the policy holding it saves, loads and moves them, and
    ``get_parameters``/``set_parameters`` carry them. The policy's forward passes apply it to raw observations;
    the algorithm updates it (:meth:`update`) with every observation it trains on, and may normalise NumPy batches
    itself (:meth:`normalize_numpy`, the same numbers as :meth:`forward`). Images, discrete and binary observations
    pass through unchanged (SB3's preprocessing handles them). For ``Dict`` spaces each float vector key has its own
    statistics.

    :param observation_space: the environment's observation space
    :param clip_obs: observations are clipped to ``[-clip_obs, clip_obs]`` after normalisation
    :param epsilon: added to the variance to avoid dividing by zero
    """

    def __init__(self, observation_space: spaces.Space, clip_obs: float = 10.0, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.keys = normalized_keys(observation_space)
        self.stats = nn.ModuleDict()
        for key in self.keys:
            space = observation_space[key] if key is not None else observation_space  # type: ignore[index]
            self.stats[_name(key)] = RunningMeanStdBuffers(space.shape)  # type: ignore[arg-type]
        self.clip_obs = clip_obs
        self.epsilon = epsilon

    def statistics(self, key: str | None = None) -> RunningMeanStdBuffers:
        """:return: the statistics of ``key`` (None: the whole observation)"""
        return self.stats[_name(key)]  # type: ignore[return-value]

    def update(self, observations: np.ndarray | dict[str, np.ndarray]) -> None:
        """
        :param observations: a batch of raw observations (one row per env), a dict of batches for ``Dict`` spaces
        """
        for key in self.keys:
            self.statistics(key).update(observations[key] if key is not None else observations)  # type: ignore[index,arg-type]

    def forward(self, observations: th.Tensor | dict[str, th.Tensor]) -> th.Tensor | dict[str, th.Tensor]:
        """
        :param observations: raw observation tensors (one or a batch)
        :return: the normalised observations (a new object; the input is not modified)
        """
        if isinstance(observations, dict):
            normalized = dict(observations)
            for key in self.keys:
                normalized[key] = self._normalize_tensor(key, observations[key])  # type: ignore[index]
            return normalized
        return self._normalize_tensor(None, observations) if self.keys else observations

    def normalize_numpy(self, observations: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """
        :param observations: raw observations (one or a batch), NumPy
        :return: the normalised observations, the same numbers as :meth:`forward` gives
        """
        if isinstance(observations, dict):
            normalized = dict(observations)
            for key in self.keys:
                normalized[key] = self._normalize_array(key, observations[key])  # type: ignore[index]
            return normalized
        return self._normalize_array(None, observations) if self.keys else observations

    def _normalize_tensor(self, key: str | None, obs: th.Tensor) -> th.Tensor:
        stats = self.statistics(key)
        normalized = (obs.to(th.float64) - stats.mean) / th.sqrt(stats.var + self.epsilon)
        return normalized.clamp(-self.clip_obs, self.clip_obs).to(th.float32)

    def _normalize_array(self, key: str | None, obs: np.ndarray) -> np.ndarray:
        mean, var, _ = self.statistics(key).numpy_views()
        normalized = (np.asarray(obs, dtype=np.float64) - mean) / np.sqrt(var + self.epsilon)
        return np.clip(normalized, -self.clip_obs, self.clip_obs).astype(np.float32)


def _name(key: str | None) -> str:
    return _WHOLE_OBSERVATION if key is None else key
