"""Small helpers for batches of observations that are arrays or dicts of arrays (``Dict`` spaces)."""

from typing import Any

import numpy as np
import torch as th


def obs_row(obs: Any, idx: int) -> Any:
    """Row ``idx`` of a batch (an array, a tensor, or a dict of either)."""
    if isinstance(obs, dict):
        return {key: value[idx] for key, value in obs.items()}
    return obs[idx]


def obs_slice(obs: Any, idx: int) -> Any:
    """Row ``idx`` of a batch as a batch of one (an array, a tensor, or a dict of either)."""
    if isinstance(obs, dict):
        return {key: value[idx : idx + 1] for key, value in obs.items()}
    return obs[idx : idx + 1]


def stack_obs_rows(rows: list[Any]) -> Any:
    """A batch from rows (arrays, tensors, or dicts of either)."""
    if isinstance(rows[0], dict):
        return {key: stack_obs_rows([row[key] for row in rows]) for key in rows[0]}
    if isinstance(rows[0], th.Tensor):
        return th.stack(rows)
    return np.stack(rows)


def with_terminal_obs(new_obs: Any, infos: list[dict[str, Any]], truncated: np.ndarray) -> Any:
    """A copy of ``new_obs`` where each truncated env's row is its terminal observation (from the VecEnv's infos)."""
    if isinstance(new_obs, dict):
        result = {key: value.copy() for key, value in new_obs.items()}
        for idx in np.flatnonzero(truncated):
            for key in result:
                result[key][idx] = infos[idx]["terminal_observation"][key]
        return result
    result = new_obs.copy()
    for idx in np.flatnonzero(truncated):
        result[idx] = infos[idx]["terminal_observation"]
    return result


def all_finite(obs: Any) -> bool:
    """Whether every float entry of the observations is finite."""
    arrays = obs.values() if isinstance(obs, dict) else [obs]
    for array in arrays:
        array = np.asarray(array)
        if array.dtype.kind == "f" and np.count_nonzero(np.isfinite(array)) != array.size:
            return False
    return True
