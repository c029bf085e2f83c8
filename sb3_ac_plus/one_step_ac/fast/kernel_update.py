"""OneStepAC's acting and update by the compiled kernels: the fast path, for the configurations they compute."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_ac_plus.one_step_ac.fast.adam_rows import adam_rows
from sb3_ac_plus.one_step_ac.fast.bounded_rows import bounded_rows
from sb3_ac_plus.one_step_ac.fast.flat_optimizer import FlatOptimizer
from sb3_ac_plus.one_step_ac.fast.heads import CATEGORICAL
from sb3_ac_plus.one_step_ac.fast.networks import KernelNetworks
from sb3_ac_plus.one_step_ac.online_state import OnlineState
from sb3_ac_plus.one_step_ac.rows import APPLIED, STAT_NAMES, Rows
from sb3_ac_plus.policies.observation_normalizer import RunningMeanStdBuffers

_EMPTY_TRACES = np.zeros((0, 0), dtype=np.float32)
_EMPTY_MOMENTS = np.zeros(0, dtype=np.float32)
_NO_DISCRETE_ACTIONS = np.zeros(0, dtype=np.int64)
_NO_BOX_ACTIONS = np.zeros((0, 0), dtype=np.float32)
_NO_INTENT = np.zeros(0, dtype=np.float64)


class KernelUpdate:
    """
    Acting and the update of :func:`~sb3_ac_plus.one_step_ac.reference.reference_update`, compiled.

    :param policy: a policy :func:`~sb3_ac_plus.one_step_ac.fast.networks.supports_kernels` accepts
    :param trained_params: its parameters in the order of ``flat_params`` (``[actor | critic]``)
    :param flat_params: the flat parameter vector they are views of
    :param n_actor: length of the actor's part
    :param generator: the model's random generator (it samples the actions)
    :param update_rule: ``"obgd"``, ``"adaptive_obgd"``, ``"sgd"``, or ``"optimizer"`` with ``flat_optimizer``
    :param actor_kappa: ObGD's bound strength for the actor; ``critic_kappa`` for the critic
    :param ent_coef: the entropy coefficient
    :param trace_decay: the eligibility traces' decay ``gamma * lambda``
    :param flat_optimizer: the policy's Adam over the flat vector (``update_rule="optimizer"``)
    :param flat_grad: the flat gradient vector its groups read (``update_rule="optimizer"``)
    """

    name = "kernels"

    def __init__(
        self,
        policy: ActorCriticPolicy,
        trained_params: Sequence[th.Tensor],
        flat_params: th.Tensor,
        n_actor: int,
        generator: th.Generator,
        update_rule: str,
        actor_kappa: float,
        critic_kappa: float,
        ent_coef: float,
        trace_decay: float,
        flat_optimizer: FlatOptimizer | None = None,
        flat_grad: th.Tensor | None = None,
    ) -> None:
        offsets, offset = {}, 0
        for param in trained_params:
            offsets[id(param)] = offset
            offset += param.numel()
        self.params = flat_params.numpy()  # the same memory: an update here is an update of the policy
        self.n_actor = n_actor
        self.networks = KernelNetworks(policy, offsets, self.params)
        self.generator = generator
        self.update_rule = update_rule
        self.kappas = (actor_kappa, critic_kappa)
        self.trace_decay = trace_decay
        networks = self.networks
        self.head = (networks.kind, networks.log_std_offset, networks.sde_epsilon, ent_coef)
        self.flat_optimizer = flat_optimizer
        self.flat_grad = None if flat_grad is None else flat_grad.numpy()
        self._views: dict[int, tuple[th.Tensor, np.ndarray]] = {}
        normalizer = getattr(policy, "obs_normalizer", None)
        self.stats: RunningMeanStdBuffers | None = None if normalizer is None else normalizer.statistics()

    def observe(self, raw_obs: Any) -> np.ndarray:
        """:return: the networks' input: the observations normalised with the current statistics, float32"""
        if self.stats is None:
            return np.asarray(raw_obs, dtype=np.float32)
        return self.stats.normalize_numpy(raw_obs)

    def act(self, obs: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        """:return: one action per env (see :meth:`~sb3_ac_plus.one_step_ac.fast.networks.KernelNetworks.act`)"""
        return self.networks.act(obs, self.generator, noise)

    def _view(self, tensor: th.Tensor) -> np.ndarray:
        """:return: a NumPy view of an online-state tensor, made once per tensor (``Tensor.numpy`` costs a microsecond)"""
        cached = self._views.get(id(tensor))
        if cached is None or cached[0] is not tensor:
            if len(self._views) >= 8:
                self._views.clear()  # tensors replaced since (new episodes, a load): drop their views
            self._views[id(tensor)] = cached = (tensor, tensor.numpy())
        return cached[1]

    def checkpoint(self) -> None:
        """Keep a copy of Adam's state (``update_rule="optimizer"``), for :meth:`rollback`."""
        if self.flat_optimizer is not None:
            self.flat_optimizer.save(th.from_numpy(self.params))

    def rollback(self) -> None:
        if self.flat_optimizer is not None:
            self.flat_optimizer.restore(th.from_numpy(self.params))

    def _kernel_rows(self, rows: Rows) -> tuple:
        n_rows = rows.n_rows
        actions = np.asarray(rows.actions)
        if self.networks.kind == CATEGORICAL:
            discrete, box = actions.astype(np.int64).reshape(n_rows), _NO_BOX_ACTIONS
        else:
            discrete, box = _NO_DISCRETE_ACTIONS, np.ascontiguousarray(actions, dtype=np.float32).reshape(n_rows, -1)
        return (
            np.ascontiguousarray(rows.obs, dtype=np.float32),
            np.ascontiguousarray(rows.next_obs, dtype=np.float32),
            rows.next_index,
            rows.returns,
            rows.discounts,
            discrete,
            box,
            rows.trace_index,
        )

    def update(self, rows: Rows, state: OnlineState, actor_lr: float, critic_lr: float) -> tuple[int, int, np.ndarray]:
        """
        Learn from the rows in order, writing the parameters and the online state in place.

        :return: :data:`~sb3_ac_plus.one_step_ac.rows.APPLIED` or the first refused row's reason, that row, and each
            row's statistics ``(n_rows, 5)`` (:data:`~sb3_ac_plus.one_step_ac.rows.STAT_NAMES`)
        """
        stats = np.zeros((rows.n_rows, len(STAT_NAMES)), dtype=np.float64)
        kernel_rows = self._kernel_rows(rows)
        networks = self.networks
        if self.update_rule == "optimizer":
            flat_grad = self.flat_grad
            assert self.flat_optimizer is not None and flat_grad is not None
            result = [APPLIED, 0]

            def adam_update(views: list[tuple], hypers: list[np.ndarray]) -> int:
                result[0], result[1] = adam_rows(
                    self.params, flat_grad, self.n_actor, networks.actor, networks.critic, self.head, kernel_rows,
                    views[0], views[1], hypers[0], hypers[1], stats,
                )  # fmt: skip
                return result[1]

            self.flat_optimizer.fused_steps([actor_lr, critic_lr], adam_update)
            return result[0], result[1], stats
        traces = (_EMPTY_TRACES, _EMPTY_TRACES, 0.0)
        if state.actor_traces is not None and state.critic_traces is not None:
            traces = (self._view(state.actor_traces), self._view(state.critic_traces), self.trace_decay)
        moments = (_EMPTY_MOMENTS, _EMPTY_MOMENTS, 0, 0.0, 0.0)
        if state.actor_moments is not None and state.critic_moments is not None:
            arrays = (self._view(state.actor_moments), self._view(state.critic_moments))
            moments = (*arrays, state.moments_count, *state.moments_decay)
        steps = (actor_lr, critic_lr, *self.kappas, self.update_rule != "sgd")
        intent = (_NO_INTENT, _NO_INTENT)
        if state.intent_stats is not None:
            stats_array = self._view(state.intent_stats)
            intent = (stats_array[0], stats_array[1])
        status, row = bounded_rows(
            self.params, self.n_actor, networks.actor, networks.critic, self.head, kernel_rows, traces, moments, steps,
            intent, stats,
        )  # fmt: skip
        return status, row, stats
