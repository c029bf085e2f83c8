"""Online observation normalisation as part of the policy, so that the policy alone acts on raw observations."""

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from torch import nn

from sb3_ac_plus.common.running_statistics import merge_batch
from sb3_ac_plus.policies.normalizer_kernels import merge_row_, normalize_rows

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
    so that they are saved, loaded and moved with the policy, and the normalisation they give.

    On the CPU, :meth:`update` and :meth:`normalize_numpy` work on NumPy views of the buffers (the online learner calls
    them at every step); change the statistics through :meth:`update` or ``load_state_dict``.

    :param shape: shape of one observation
    :param clip_obs: normalised observations are clipped to ``[-clip_obs, clip_obs]``
    :param epsilon: added to the variance to avoid dividing by zero
    """

    mean: th.Tensor
    var: th.Tensor
    count: th.Tensor

    def __init__(self, shape: tuple[int, ...], clip_obs: float, epsilon: float) -> None:
        super().__init__()
        self.register_buffer("mean", th.zeros(shape, dtype=th.float64))
        self.register_buffer("var", th.ones(shape, dtype=th.float64))
        self.register_buffer("count", th.zeros((), dtype=th.float64))
        self.clip_obs = clip_obs
        self.epsilon = epsilon
        # NumPy views of the buffers and sqrt(var + epsilon), until the buffers are replaced or loaded; and the same
        # flattened (the count as one element), as the compiled kernels take them.
        self._numpy: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._flat: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_numpy": None, "_flat": None}  # a copy makes views of its own buffers

    def _apply(self, fn: Any, recurse: bool = True) -> "RunningMeanStdBuffers":
        self._numpy = self._flat = None  # .to(), .double(), ... may replace the buffers
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._numpy = self._flat = None
        super()._load_from_state_dict(*args, **kwargs)

    def _numpy_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._numpy is not None:
            return self._numpy
        mean, var, count = self.mean.cpu().numpy(), self.var.cpu().numpy(), self.count.cpu().numpy()
        state = mean, var, count, np.sqrt(var + self.epsilon)
        if self.mean.device.type == "cpu":
            self._numpy = state  # views of the buffers' memory
            if mean.dtype == var.dtype == count.dtype == np.float64:
                self._flat = mean.reshape(-1), var.reshape(-1), count.reshape(1), state[3].reshape(-1)
        return state

    @staticmethod
    def _kernel_takes(obs: Any, mean: np.ndarray) -> bool:
        """:return: whether the compiled kernels take ``obs``: a float array, a batch of observations shaped as ``mean``"""
        return isinstance(obs, np.ndarray) and obs.dtype.kind == "f" and obs.shape[1:] == mean.shape

    def update(self, batch: np.ndarray) -> None:
        """
        :param batch: raw observations stacked along the first axis
        """
        mean, var, count, std = self._numpy_state()
        if (flat := self._flat) is not None and self._kernel_takes(batch, mean) and batch.shape[0] == 1:
            merge_row_(batch.reshape(-1), *flat, self.epsilon)  # the usual online case: one env
            return
        new_mean, new_var, new_count = merge_batch(mean, var, float(count), batch)
        if self._numpy is not None:
            mean[...], var[...], count[...] = new_mean, new_var, new_count
            np.add(new_var, self.epsilon, out=std)
            np.sqrt(std, out=std)
        else:
            self.mean.copy_(th.from_numpy(new_mean))
            self.var.copy_(th.from_numpy(new_var))
            self.count.fill_(new_count)

    def forward(self, obs: th.Tensor) -> th.Tensor:
        """
        :param obs: raw observations (one or a batch)
        :return: ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``, computed in float64, as float32
        """
        normalized = (obs.to(th.float64) - self.mean) / th.sqrt(self.var + self.epsilon)
        return normalized.clamp(-self.clip_obs, self.clip_obs).to(th.float32)

    def normalize_numpy(self, obs: np.ndarray) -> np.ndarray:
        """
        :param obs: raw observations (one or a batch), NumPy
        :return: the same numbers as :meth:`forward` gives
        """
        mean, _, _, std = self._numpy_state()
        if (flat := self._flat) is not None and self._kernel_takes(obs, mean):
            out = np.empty(obs.shape, dtype=np.float32)
            n_rows = obs.shape[0]
            normalize_rows(obs.reshape(n_rows, -1), flat[0], flat[3], float(self.clip_obs), out.reshape(n_rows, -1))
            return out
        normalized = (obs - mean) / std  # float64, as obs - mean promotes to the statistics' dtype
        np.minimum(normalized, self.clip_obs, out=normalized)
        np.maximum(normalized, -self.clip_obs, out=normalized)
        return normalized.astype(np.float32)


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
            self.stats[_name(key)] = RunningMeanStdBuffers(space.shape, clip_obs, epsilon)  # type: ignore[arg-type]
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
                normalized[key] = self.statistics(key)(observations[key])  # type: ignore[index]
            return normalized
        return self.statistics()(observations) if self.keys else observations

    def normalize_numpy(self, observations: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """
        :param observations: raw observations (one or a batch), NumPy
        :return: the normalised observations, the same numbers as :meth:`forward` gives
        """
        if isinstance(observations, dict):
            normalized = dict(observations)
            for key in self.keys:
                normalized[key] = self.statistics(key).normalize_numpy(observations[key])  # type: ignore[index]
            return normalized
        return self.statistics().normalize_numpy(observations) if self.keys else observations


def _name(key: str | None) -> str:
    return _WHOLE_OBSERVATION if key is None else key
