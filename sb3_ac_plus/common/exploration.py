"""Correlated exploration noise for Gaussian policies, one sequence per env and episode.

- :class:`ColoredNoise`: the standard-normal draws of a diagonal Gaussian policy taken from a colored noise sequence
  (power spectrum ``1 / f ** beta``: 0 white, 1 pink, 2 red), generated with the ``colorednoise`` package. Pink noise
  keeps the per-step distribution of the actions (each draw is standard normal) while drifting across steps, which
  reaches far states (a car's hill, a pendulum's top) that white noise averages away.
- :class:`StateDependentNoise`: generalised state-dependent exploration (gSDE, as SB3's A2C and PPO use it): the
  noise is ``latent(s) @ (std * eps)`` with one matrix ``eps`` per env, drawn again at the env's episode start (and
  every ``sde_sample_freq`` steps if asked), so the exploration is a smooth function of the state.

Both keep their state as plain arrays, saved with the model, and draw from generators the model owns.
"""

from collections.abc import Sequence
from typing import Any

import colorednoise
import numpy as np
import torch as th
from stable_baselines3.common.distributions import StateDependentNoiseDistribution
from stable_baselines3.common.policies import ActorCriticPolicy

# Length of one colored noise sequence: the longest correlation it holds. Long enough for the episodes of classic
# control (CartPole 500 steps, MountainCar 999); a longer episode continues with a new sequence.
SEQUENCE_LENGTH = 1000


class ColoredNoise:
    """
    Colored standard-normal noise ``(n_envs, action_dim)``, one sequence per env, restarted at the env's episode ends.

    :param beta: exponent of the power spectrum ``1 / f ** beta`` (0 white, 1 pink, 2 red), >= 0
    :param n_envs: number of envs
    :param action_dim: number of action dimensions
    :param seed: seed of the NumPy generator the sequences are drawn with
    :param sequence_length: number of steps of one sequence
    """

    def __init__(self, beta: float, n_envs: int, action_dim: int, seed: int, sequence_length: int = SEQUENCE_LENGTH) -> None:
        self.beta = beta
        self.rng = np.random.default_rng(seed)
        self.sequences = np.zeros((n_envs, sequence_length, action_dim), dtype=np.float32)
        self.positions = np.zeros(n_envs, dtype=np.int64)
        self.reset(np.arange(n_envs))

    @property
    def n_envs(self) -> int:
        return self.sequences.shape[0]

    def _draw(self, n_sequences: int) -> np.ndarray:
        """New sequences ``(n_sequences, sequence_length, action_dim)``, each dimension its own sequence."""
        _, length, action_dim = self.sequences.shape
        noise = colorednoise.powerlaw_psd_gaussian(self.beta, (n_sequences, action_dim, length), random_state=self.rng)
        return noise.transpose(0, 2, 1).astype(np.float32)

    def reset(self, env_indices: Sequence[int] | np.ndarray) -> None:
        """New sequences for the envs ``env_indices`` (their episodes ended)."""
        indices = np.asarray(env_indices, dtype=np.int64)
        if indices.size:
            self.sequences[indices] = self._draw(indices.size)
            self.positions[indices] = 0

    def sample(self) -> np.ndarray:
        """:return: the next draw of every env ``(n_envs, action_dim)``, float32 (a sequence used up is replaced)"""
        used_up = np.flatnonzero(self.positions >= self.sequences.shape[1])
        self.reset(used_up)
        noise = self.sequences[np.arange(self.n_envs), self.positions]
        self.positions += 1
        return noise

    def state(self) -> dict[str, Any]:
        """:return: the state as plain arrays and a dict of numbers (the generator's)"""
        return {
            "beta": self.beta,
            "sequences": self.sequences.copy(),
            "positions": self.positions.copy(),
            "rng": self.rng.bit_generator.state,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "ColoredNoise":
        """:return: the noise a saved :meth:`state` describes, continuing where it was"""
        n_envs, length, action_dim = state["sequences"].shape
        noise = cls(state["beta"], n_envs, action_dim, seed=0, sequence_length=length)
        noise.sequences[:] = state["sequences"]
        noise.positions[:] = state["positions"]
        noise.rng.bit_generator.state = state["rng"]
        return noise


class StateDependentNoise:
    """
    gSDE's exploration matrices, one per env: standard-normal ``eps`` ``(n_envs, latent_dim, action_dim)`` scaled by
    the policy's current std at every step, so the noise is always drawn from the distribution the update uses.

    :param policy: a policy with ``use_sde=True``
    :param n_envs: number of envs
    :param generator: the random generator of the draws
    """

    def __init__(self, policy: ActorCriticPolicy, n_envs: int, generator: th.Generator) -> None:
        distribution = policy.action_dist
        assert isinstance(distribution, StateDependentNoiseDistribution), "gSDE needs use_sde=True"
        self.distribution = distribution
        self.generator = generator
        shape = distribution.get_std(policy.log_std).shape
        self.eps = th.zeros((n_envs, *shape), device=policy.log_std.device)
        self._eps_numpy: np.ndarray | None = None
        self.resample(np.arange(n_envs))

    @property
    def n_envs(self) -> int:
        return self.eps.shape[0]

    @property
    def eps_numpy(self) -> np.ndarray:
        """``eps`` as a NumPy view (its memory: it follows :meth:`resample`), kept until :meth:`restore` replaces it"""
        if self._eps_numpy is None:
            self._eps_numpy = self.eps.numpy()
        return self._eps_numpy

    def resample(self, env_indices: Sequence[int] | np.ndarray) -> None:
        """New matrices for the envs ``env_indices``."""
        indices = th.as_tensor(np.asarray(env_indices, dtype=np.int64), device=self.eps.device)
        if indices.numel():
            draws = th.randn((indices.numel(), *self.eps.shape[1:]), generator=self.generator, device=self.eps.device)
            self.eps[indices] = draws

    def apply(self, policy: ActorCriticPolicy) -> None:
        """Set the distribution's exploration matrices to ``std * eps`` with the policy's current std."""
        with th.no_grad():
            matrices = self.distribution.get_std(policy.log_std) * self.eps
        self.distribution.exploration_matrices = matrices
        self.distribution.exploration_mat = matrices[0]  # SB3 uses this one matrix for a batch of one

    def state(self) -> np.ndarray:
        return self.eps.cpu().numpy()

    def restore(self, eps: np.ndarray) -> None:
        self.eps = th.as_tensor(eps, device=self.eps.device).clone()
        self._eps_numpy = None
