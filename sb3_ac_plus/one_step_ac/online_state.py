"""The state OneStepAC learns with besides the network's parameters: traces, second moments, n-step windows, the
reward scaler and the exploration noise.

It lives across ``learn()`` calls and is saved with the model. An update writes the traces and moments in place; a
refused update puts them back (:meth:`OnlineState.checkpoint`, :meth:`OnlineState.rollback`). The n-step windows and
the reward scaler's statistics are proposed for a step and committed with it (:meth:`OnlineState.commit`).
"""

from collections import deque
from typing import Any, NamedTuple

import numpy as np
import torch as th

from sb3_ac_plus.common.exploration import ColoredNoise, StateDependentNoise
from sb3_ac_plus.common.reward_scaling import RewardScaler, ScaledRewards

# The running second moments' decay and the term added under the square root, as stream AC(lambda) (of the update
# ``delta * trace``, AdaptiveObGD) and the intentional updates (of the gradient) set them.
BETA2 = 0.999
EPS = 1e-8
# The intentional rule's running statistics of each part, and their values before the first step: the gradient norm's
# normaliser sigma, the mean square of the TD error (its clipping scale) and the mean magnitude of the clipped TD error
# (the policy's normaliser).
INTENT_STATS = ("sigma", "delta_sq", "delta_abs")
INTENT_START = (0.0, 1.0, 0.0)
# Its constants (Sharifnassab et al., 2026): TD errors are clipped at CLIP_MULT times their running RMS (decay
# BETA_CLIP); the policy's TD error is divided by the running mean of its clipped magnitude (decay BETA_NORM).
CLIP_MULT = 20.0
BETA_CLIP = 0.9998
BETA_NORM = 0.9998


class DueStates(NamedTuple):
    """The states whose k-step return a step completes: raw observations, actions, returns, discounts, and envs."""

    obs: list[Any]
    actions: list[np.ndarray]
    returns: list[float]
    discounts: list[float]
    envs: list[int]


class NStepWindows:
    """
    Each env's last ``n_steps`` (raw observation, action, reward), for k-step returns computed online: a state is due as
    soon as its window is full, and every state left in a window is due (with a truncated return) when its episode ends.

    :param n_envs: number of envs
    :param n_steps: the bootstrap horizon k
    :param gamma: the discount factor
    """

    def __init__(self, n_envs: int, n_steps: int, gamma: float) -> None:
        self.windows: list[deque] = [deque() for _ in range(n_envs)]
        self.n_steps = n_steps
        self.gamma = gamma
        self._proposed: list[deque] | None = None

    def propose(
        self, obs: list[Any], actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray, terminated: np.ndarray
    ) -> DueStates:
        """
        Add a step to a copy of each env's window (:meth:`commit` keeps the copies).

        :param obs: each env's observation the action was taken in (raw)
        :param actions: the actions taken; ``rewards`` the (scaled) rewards; ``dones`` and ``terminated`` each env's end
        :return: the states now due, with the discount of the V(s') they bootstrap from (0 after a termination)
        """
        windows = [deque(window) for window in self.windows]
        due = DueStates([], [], [], [], [])
        for env, window in enumerate(windows):
            window.append((obs[env], actions[env], float(rewards[env])))
            if not dones[env] and len(window) < self.n_steps:
                continue
            n_due = len(window) if dones[env] else 1
            bootstrap = 0.0 if terminated[env] else 1.0
            rewards_in_window = [entry[2] for entry in window]
            for start in range(n_due):
                due.obs.append(window[start][0])
                due.actions.append(window[start][1])
                due.returns.append(sum(self.gamma**i * r for i, r in enumerate(rewards_in_window[start:])))
                due.discounts.append(bootstrap * self.gamma ** (len(window) - start))
                due.envs.append(env)
            for _ in range(n_due):
                window.popleft()
        self._proposed = windows
        return due

    def commit(self) -> None:
        if self._proposed is not None:
            self.windows, self._proposed = self._proposed, None

    def state(self) -> list[list[tuple[Any, np.ndarray, float]]]:
        return [list(window) for window in self.windows]

    def restore(self, windows: list[list[tuple[Any, Any, float]]]) -> None:
        self.windows = [deque((obs, np.asarray(action), reward) for obs, action, reward in window) for window in windows]


class OnlineState:
    """
    Eligibility traces (one per env and part, ``e <- gamma * lambda * e + grad``, zeroed at episode ends), AdaptiveObGD's
    second moments (one per part, with the updates they have seen), the n-step windows, the reward scaler, and the
    colored noise or gSDE's exploration matrices of the current episodes.

    :param n_actor: length of the actor's part of the parameter vector; ``n_critic`` the critic's
    :param device: device of the traces and moments (the parameters')
    :param traces: whether there are eligibility traces (``gamma * trace_lambda > 0`` and no torch optimizer)
    :param moments: whether there are second moments (``update_rule`` ``"adaptive_obgd"`` or ``"intentional"``)
    :param intentional: whether there are the intentional rule's statistics (``update_rule="intentional"``)
    :param n_steps: the bootstrap horizon k (windows when above 1)
    :param gamma: the discount factor
    :param reward_scaler: the reward scaler (``normalize_rewards``), or None
    """

    def __init__(
        self,
        n_actor: int,
        n_critic: int,
        device: th.device,
        traces: bool,
        moments: bool,
        n_steps: int,
        gamma: float,
        reward_scaler: RewardScaler | None,
        intentional: bool = False,
    ) -> None:
        self.sizes, self.device, self.has_traces, self.n_steps, self.gamma = (
            (n_actor, n_critic),
            device,
            traces,
            n_steps,
            gamma,
        )
        self.actor_traces: th.Tensor | None = None
        self.critic_traces: th.Tensor | None = None
        self.actor_moments = th.zeros(n_actor, device=device) if moments else None
        self.critic_moments = th.zeros(n_critic, device=device) if moments else None
        self.moments_count = 0
        self.moments_decay = (BETA2, EPS)
        # one row per part (actor, critic), the columns of INTENT_STATS
        self.intent_stats = th.tensor([INTENT_START, INTENT_START], dtype=th.float64) if intentional else None
        self.windows: NStepWindows | None = None
        self.reward_scaler = reward_scaler
        self.colored_noise: ColoredNoise | None = None
        self.sde_noise: StateDependentNoise | None = None
        self.n_envs = 0
        self._live: list[th.Tensor] = []  # what the last checkpoint copied, its copies, and NumPy views of both (CPU)
        self._saved: list[th.Tensor] = []
        self._arrays: list[tuple[np.ndarray, np.ndarray]] | None = None

    def new_episodes(
        self, n_envs: int, colored_noise: ColoredNoise | None = None, sde_noise: StateDependentNoise | None = None
    ) -> None:
        """Start new episodes in ``n_envs`` envs: zero traces, empty windows, new noise; the moments and statistics stay."""
        self.n_envs = n_envs
        if self.has_traces:
            self.actor_traces = th.zeros((n_envs, self.sizes[0]), device=self.device)
            self.critic_traces = th.zeros((n_envs, self.sizes[1]), device=self.device)
        self.windows = NStepWindows(n_envs, self.n_steps, self.gamma) if self.n_steps > 1 else None
        self.colored_noise, self.sde_noise = colored_noise, sde_noise
        if self.reward_scaler is not None:
            self.reward_scaler.reset(n_envs)

    def _tensors(self) -> list[th.Tensor]:
        tensors = (self.actor_traces, self.critic_traces, self.actor_moments, self.critic_moments, self.intent_stats)
        return [tensor for tensor in tensors if tensor is not None]

    def checkpoint(self, params: th.Tensor) -> None:
        """Keep a copy of ``params``, the traces and the moments, for :meth:`rollback` (every step: on the CPU, copied
        through NumPy views, a third of torch's per-call cost)."""
        tensors = [params, *self._tensors()]
        if len(tensors) != len(self._live) or any(t is not live for t, live in zip(tensors, self._live, strict=False)):
            self._live, self._saved = tensors, [th.empty_like(t) for t in tensors]
            on_cpu = all(t.device.type == "cpu" for t in tensors)
            self._arrays = [(s.numpy(), t.numpy()) for s, t in zip(self._saved, tensors, strict=True)] if on_cpu else None
        if self._arrays is not None:
            for saved_array, array in self._arrays:
                np.copyto(saved_array, array)
        else:
            for saved, tensor in zip(self._saved, tensors, strict=True):
                saved.copy_(tensor)

    def rollback(self, params: th.Tensor) -> None:
        """Put back ``params``, the traces and the moments of the last :meth:`checkpoint`."""
        with th.no_grad():
            for saved, tensor in zip(self._saved, [params, *self._tensors()], strict=True):
                tensor.copy_(saved)

    def commit(self, n_rows: int, dones: np.ndarray, scaled: ScaledRewards | None) -> None:
        """
        Move past a step whose update of ``n_rows`` rows was applied: the moments have seen the rows, the proposed
        windows become the windows, the reward scaler takes the step's statistics (``scaled``), and the envs whose
        episode ended (``dones``) get zero traces and new noise.
        """
        if self.actor_moments is not None:
            self.moments_count += n_rows
        if self.windows is not None:
            self.windows.commit()
        if scaled is not None and self.reward_scaler is not None:
            self.reward_scaler.commit(scaled, dones)
        if not np.count_nonzero(dones):
            return
        ended = np.flatnonzero(dones)
        if self.actor_traces is not None and self.critic_traces is not None:
            index = th.as_tensor(ended, device=self.actor_traces.device)
            self.actor_traces[index] = 0.0
            self.critic_traces[index] = 0.0
        if self.colored_noise is not None:
            self.colored_noise.reset(ended)
        if self.sde_noise is not None:
            self.sde_noise.resample(ended)

    def state(self) -> dict[str, Any]:
        """:return: the state as NumPy arrays, numbers and lists (saved with the model)"""
        state: dict[str, Any] = {"episode_n_envs": self.n_envs}
        if self.actor_traces is not None and self.critic_traces is not None:
            state["traces"] = (self.actor_traces.cpu().numpy(), self.critic_traces.cpu().numpy())
        if self.actor_moments is not None and self.critic_moments is not None:
            state["second_moments"] = (self.actor_moments.cpu().numpy(), self.critic_moments.cpu().numpy(), self.moments_count)
        if self.intent_stats is not None:
            state["intent_stats"] = self.intent_stats.numpy().copy()
        if self.windows is not None:
            state["windows"] = self.windows.state()
        if self.reward_scaler is not None:
            state["reward_scaler"] = self.reward_scaler.state()
        if self.colored_noise is not None:
            state["colored_noise"] = self.colored_noise.state()
        if self.sde_noise is not None:
            state["sde_noise"] = self.sde_noise.state()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` after :meth:`new_episodes` (entries this configuration does not have are ignored)."""
        self.n_envs = state["episode_n_envs"]
        if "traces" in state and self.has_traces:
            self.actor_traces = th.as_tensor(state["traces"][0], device=self.device).clone()
            self.critic_traces = th.as_tensor(state["traces"][1], device=self.device).clone()
        if "second_moments" in state and self.actor_moments is not None:
            actor, critic, self.moments_count = state["second_moments"]
            self.actor_moments = th.as_tensor(actor, device=self.device).clone()
            self.critic_moments = th.as_tensor(critic, device=self.device).clone()
        if "intent_stats" in state and self.intent_stats is not None:
            self.intent_stats = th.as_tensor(state["intent_stats"], dtype=th.float64).clone()
        if "windows" in state and self.windows is not None:
            self.windows.restore(state["windows"])
        if "reward_scaler" in state and self.reward_scaler is not None:
            self.reward_scaler.restore(state["reward_scaler"])
        if "colored_noise" in state and self.colored_noise is not None:
            self.colored_noise = ColoredNoise.from_state(state["colored_noise"])
        if "sde_noise" in state and self.sde_noise is not None:
            self.sde_noise.restore(state["sde_noise"])
