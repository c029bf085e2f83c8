"""OneStepAC: a one-step online actor-critic that updates after every environment step."""

import math
from collections import deque
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from sb3_ac_plus.common.normalization import ObservationNormalizer, RewardScaler
from sb3_ac_plus.common.trace_updates import EligibilityTraces, add_weighted_, l1_norms, obgd_step_sizes
from sb3_ac_plus.one_step_ac.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

SelfOneStepAC = TypeVar("SelfOneStepAC", bound="OneStepAC")

UPDATE_RULES = ("obgd", "sgd", "optimizer")
# Logged statistics, accumulated every update and averaged at each log.
_STAT_NAMES = ("td_error_abs", "critic_loss", "policy_loss", "entropy", "actor_step_size", "critic_step_size")


class NonFiniteError(RuntimeError):
    """Raised when an observation, a reward or an update is NaN or infinite; the model is left unchanged."""


class OneStepAC(OnPolicyAlgorithm):
    """
    One-step online actor-critic (Sutton & Barto's one-step actor-critic and actor-critic with eligibility traces,
    with the stabilisers of stream AC(lambda)). It updates after every environment step, for every env of the VecEnv,
    with no replay buffer and no batch of rollouts.

    At each step, for each env, the TD error ``delta = r + gamma * V(s') * (1 - terminated) - V(s)`` is computed once,
    with the parameters before the update, and used (detached) by both heads. A time-limit truncation bootstraps from
    V of the terminal observation; a termination does not. The critic follows the semi-gradient of TD, the actor
    ``delta * grad log pi(a|s)`` plus the entropy bonus ``|delta| * ent_coef * grad H`` (the bonus is scaled by
    ``|delta|`` as in stream AC(lambda), so it lives in the same trace as the policy gradient).

    Parameters that both heads use (a shared features extractor or trunk) receive both updates: the actor's with the
    actor step size and trace, the critic's with the critic step size and trace (with ``update_rule="optimizer"``
    they are in the critic's parameter group and receive the sum of both gradients).

    Allowed combinations: ``n_steps == 1`` with any ``trace_lambda``; ``n_steps > 1`` only with ``trace_lambda == 0``;
    ``update_rule="optimizer"`` only with ``trace_lambda == 0``.

    :param policy: the policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy, or any ``ActorCriticPolicy``)
    :param env: the environment to learn from (if registered in Gymnasium, can be str)
    :param learning_rate: the actor's step size, a float or a schedule of the progress remaining (from 1 to 0).
        With ``update_rule="obgd"`` it is the nominal step size that the overshooting bound scales down.
    :param critic_learning_rate: the critic's step size (float or schedule); None uses ``learning_rate``
    :param n_steps: bootstrap horizon k: each state is updated with its k-step return, online, as soon as it is
        available (a sliding window per env); 1 is the one-step TD error
    :param gamma: discount factor, in [0, 1]
    :param trace_lambda: eligibility trace decay lambda, in [0, 1]; traces decay by ``gamma * lambda`` and are kept per
        env and reset at episode ends. 0 is the textbook one-step actor-critic.
    :param ent_coef: entropy coefficient, >= 0
    :param update_rule: how traces become updates: ``"obgd"`` (stream AC(lambda)'s overshooting-bounded step size),
        ``"sgd"`` (plain ``lr * delta * trace``) or ``"optimizer"`` (the loss of the one-step actor-critic minimised by
        the policy's torch optimizer, ``policy_kwargs=dict(optimizer_class=...)``, Adam by default; needs
        ``trace_lambda == 0``)
    :param actor_kappa: ObGD bound strength for the actor (> 0; larger gives smaller steps)
    :param critic_kappa: ObGD bound strength for the critic (> 0)
    :param normalize_observations: normalise float vector observations online (running mean and std); the statistics
        are part of the model, so ``predict`` takes raw observations
    :param normalize_rewards: divide rewards by the running std of the discounted return
    :param clip_obs: normalised observations are clipped to ``[-clip_obs, clip_obs]``
    :param stats_window_size: window size for the rollout logging (episodes)
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param monitor_wrapper: whether to wrap the env in a ``Monitor`` when creating it
    :param policy_kwargs: additional arguments to be passed to the policy on creation
    :param verbose: verbosity level: 0 no output, 1 info, 2 debug
    :param seed: seed for the pseudo random generators
    :param device: device (cpu, cuda, ...) on which the code should be run; "auto" uses the GPU if there is one
    :param _init_setup_model: whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: ActorCriticPolicy

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1.0,
        critic_learning_rate: float | Schedule | None = None,
        n_steps: int = 1,
        gamma: float = 0.99,
        trace_lambda: float = 0.8,
        ent_coef: float = 0.01,
        update_rule: str = "obgd",
        actor_kappa: float = 3.0,
        critic_kappa: float = 2.0,
        normalize_observations: bool = True,
        normalize_rewards: bool = True,
        clip_obs: float = 10.0,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        monitor_wrapper: bool = True,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        _check_hyperparameters(
            learning_rate=learning_rate,
            critic_learning_rate=critic_learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            trace_lambda=trace_lambda,
            ent_coef=ent_coef,
            update_rule=update_rule,
            actor_kappa=actor_kappa,
            critic_kappa=critic_kappa,
            clip_obs=clip_obs,
        )
        if policy_kwargs is not None and policy_kwargs.get("use_sde", False):
            raise ValueError("policy_kwargs['use_sde']: OneStepAC does not support gSDE exploration; remove it")
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=trace_lambda,
            ent_coef=ent_coef,
            vf_coef=1.0,
            max_grad_norm=math.inf,
            use_sde=False,
            sde_sample_freq=-1,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            monitor_wrapper=monitor_wrapper,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self.critic_learning_rate = critic_learning_rate
        self.trace_lambda = trace_lambda
        self.update_rule = update_rule
        self.actor_kappa = actor_kappa
        self.critic_kappa = critic_kappa
        self.normalize_observations = normalize_observations
        self.normalize_rewards = normalize_rewards
        self.clip_obs = clip_obs
        if env is not None:
            _check_spaces(self.observation_space, self.action_space)
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ setup

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.critic_lr_schedule = FloatSchedule(
            self.learning_rate if self.critic_learning_rate is None else self.critic_learning_rate
        )
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)
        self._split_parameters()
        if self.update_rule == "optimizer":
            self._build_optimizer()

        # Online state, kept across learn() calls and saved with the model. A loaded model already has it.
        if getattr(self, "_obs_normalizer", None) is None:
            self._obs_normalizer = (
                ObservationNormalizer(self.observation_space, clip_obs=self.clip_obs) if self.normalize_observations else None
            )
            self._reward_scaler = RewardScaler(self.n_envs, self.gamma) if self.normalize_rewards else None
            self._n_updates = 0
            self._reset_episode_state()
        if getattr(self, "_torch_rng_state", None) is not None:
            # Resuming from a saved model continues the exact sampling sequence of the saved run.
            th.set_rng_state(self._torch_rng_state)
        self._torch_rng_state = None
        self._obs_tensor: Any = None
        self._reset_log_stats()

    def _split_parameters(self) -> None:
        """Find which parameters the actor and the critic outputs depend on (both, for shared layers)."""
        obs = self.observation_space.sample()
        obs_tensor, _ = self.policy.obs_to_tensor(obs)
        values, distribution = self._evaluate(obs_tensor)
        actions = distribution.get_actions()
        actor_objective = distribution.log_prob(actions).sum()
        entropy = distribution.entropy()
        if entropy is not None:
            actor_objective = actor_objective + entropy.sum()
        params = list(self.policy.parameters())
        actor_grads = th.autograd.grad(actor_objective, params, allow_unused=True)
        critic_grads = th.autograd.grad(values.sum(), params, allow_unused=True)
        self._actor_params = [p for p, g in zip(params, actor_grads) if g is not None]
        self._critic_params = [p for p, g in zip(params, critic_grads) if g is not None]

    def _build_optimizer(self) -> None:
        """Actor-only parameters at the actor's step size; critic and shared parameters at the critic's."""
        critic_ids = {id(p) for p in self._critic_params}
        actor_only = [p for p in self._actor_params if id(p) not in critic_ids]
        self.policy.optimizer = self.policy.optimizer_class(
            [
                {"params": actor_only, "lr": self.lr_schedule(1.0)},
                {"params": self._critic_params, "lr": self.critic_lr_schedule(1.0)},
            ],
            **self.policy.optimizer_kwargs,
        )

    def _reset_episode_state(self) -> None:
        """Per-env state that belongs to the current episodes: traces, n-step windows and discounted returns."""
        decay = self.gamma * self.trace_lambda
        uses_traces = self.update_rule != "optimizer" and decay > 0.0
        self._actor_traces = EligibilityTraces(self._actor_params, self.n_envs) if uses_traces else None
        self._critic_traces = EligibilityTraces(self._critic_params, self.n_envs) if uses_traces else None
        self._windows: list[deque] | None = [deque() for _ in range(self.n_envs)] if self.n_steps > 1 else None
        if self._reward_scaler is not None:
            self._reward_scaler.reset(self.n_envs)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_actor_params", "_critic_params", "_obs_tensor", "_log_stats"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        if self.update_rule == "optimizer":
            return ["policy", "policy.optimizer"], []
        return ["policy"], []

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the model, including its online state (traces, normalisers, n-step windows and the RNG state)."""
        self._torch_rng_state = th.get_rng_state()
        try:
            super().save(*args, **kwargs)
        finally:
            self._torch_rng_state = None

    # ------------------------------------------------------------------ acting

    def _evaluate(self, obs: th.Tensor | dict[str, th.Tensor]) -> tuple[th.Tensor, Distribution]:
        """One forward pass of the policy: the values, shape ``(batch,)``, and the action distribution."""
        policy = self.policy
        features = policy.extract_features(obs)  # type: ignore[arg-type]
        if policy.share_features_extractor:
            latent_pi, latent_vf = policy.mlp_extractor(features)
        else:
            pi_features, vf_features = features
            latent_pi = policy.mlp_extractor.forward_actor(pi_features)
            latent_vf = policy.mlp_extractor.forward_critic(vf_features)
        values = policy.value_net(latent_vf).flatten()
        return values, policy._get_action_dist_from_latent(latent_pi)

    def _to_env_actions(self, actions: th.Tensor) -> np.ndarray:
        env_actions = actions.cpu().numpy()
        if isinstance(self.action_space, spaces.Box):
            if self.policy.squash_output:
                return self.policy.unscale_action(env_actions)
            return np.clip(env_actions, self.action_space.low, self.action_space.high)
        return env_actions

    def _prepare_obs(self, raw_obs: Any, update_stats: bool) -> th.Tensor | dict[str, th.Tensor]:
        """Check raw observations, update the normaliser (if asked) and return them normalised, as tensors."""
        _check_finite_obs(raw_obs, self.num_timesteps)
        if self._obs_normalizer is not None:
            if update_stats:
                self._obs_normalizer.update(raw_obs)
            raw_obs = self._obs_normalizer.normalize(raw_obs)
        return obs_as_tensor(raw_obs, self.device)  # type: ignore[arg-type]

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """
        Get the policy action from a raw observation (normalised here with the model's own statistics).

        :param observation: the input observation, single or batched
        :param state: unused (no recurrent state)
        :param episode_start: unused (no recurrent state)
        :param deterministic: whether to return the most likely action instead of a sample
        :return: the model's action and None
        """
        if self._obs_normalizer is not None:
            observation = self._obs_normalizer.normalize(observation)
        return self.policy.predict(observation, state, episode_start, deterministic)

    # ------------------------------------------------------------------ learning

    def learn(
        self: SelfOneStepAC,
        total_timesteps: int = 30_000,
        callback: MaybeCallback = None,
        log_interval: int | None = 1000,
        tb_log_name: str = "OneStepAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfOneStepAC:
        """
        Learn online for ``total_timesteps`` env steps (summed over envs), updating after every step.

        :param total_timesteps: the number of env steps to train on; 30,000 by default (CartPole-v1 is solved well
            within it with the default hyperparameters, see the README)
        :param callback: callback(s) called at every step with state of the algorithm
        :param log_interval: number of updates (one per VecEnv step) between two logs; None disables logging
        :param tb_log_name: the name of the run for TensorBoard logging
        :param reset_num_timesteps: whether to reset the current timestep number (and start new episodes)
        :param progress_bar: display a progress bar using tqdm and rich
        :return: the trained model
        """
        if log_interval is not None and log_interval < 1:
            raise ValueError(f"log_interval must be a positive number of updates or None, got {log_interval}")
        new_episodes = reset_num_timesteps or self._last_obs is None
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        assert self.env is not None
        traces = self._actor_traces or self._critic_traces
        if new_episodes or (traces is not None and traces.n_envs != self.n_envs):
            self._reset_episode_state()
        self._obs_tensor = self._prepare_obs(self._last_obs, update_stats=new_episodes)
        callback.on_training_start(locals(), globals())

        iteration = 0
        chunk = log_interval if log_interval is not None else 1000
        while self.num_timesteps < total_timesteps:
            remaining_updates = math.ceil((total_timesteps - self.num_timesteps) / self.n_envs)
            if not self.collect_rollouts(self.env, callback, None, min(chunk, remaining_updates)):
                break
            iteration += 1
            if log_interval is not None:
                self._record_log_stats()
                self.dump_logs(iteration)
        callback.on_training_end()
        return self

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer | None,
        n_rollout_steps: int,
    ) -> bool:
        """
        Step the envs ``n_rollout_steps`` times, updating the actor and the critic after every step.

        :param env: the training environment
        :param callback: callback called at every step (after the update)
        :param rollout_buffer: unused: OneStepAC keeps no rollout buffer
        :param n_rollout_steps: number of steps (updates) per env
        :return: False if a callback stopped training, True otherwise
        """
        self.policy.set_training_mode(True)
        callback.on_rollout_start()
        for _ in range(n_rollout_steps):
            self._update_current_progress_remaining(self.num_timesteps, self._total_timesteps)
            new_obs, rewards, dones, infos = self._online_step(env)
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
        callback.on_rollout_end()
        return True

    def _online_step(self, env: VecEnv) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Act in every env, step them, and update from the new transitions."""
        obs = self._obs_tensor
        one_step = self._windows is None
        with th.set_grad_enabled(one_step):
            values, distribution = self._evaluate(obs)
        actions = distribution.get_actions().detach()
        new_obs, rewards, dones, infos = env.step(self._to_env_actions(actions))
        self.num_timesteps += env.num_envs

        if not np.isfinite(rewards).all():
            raise NonFiniteError(f"OneStepAC: non-finite reward {rewards} from the environment at step {self.num_timesteps}")
        truncated = np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos]) & dones
        terminated = dones & ~truncated
        if self._reward_scaler is not None:
            rewards_used = self._reward_scaler.scale(rewards, dones)
        else:
            rewards_used = rewards.astype(np.float32)
        next_obs = self._prepare_obs(new_obs, update_stats=True)
        # V(s') of each env with the parameters before this step's update; at a truncation, V(terminal observation)
        bootstrap_obs = next_obs
        if truncated.any():
            bootstrap_obs = self._prepare_obs(_with_terminal_obs(new_obs, infos, truncated), update_stats=False)
        with th.no_grad():
            next_values = self.policy.predict_values(bootstrap_obs).flatten()  # type: ignore[arg-type]

        if one_step:
            not_terminated = th.as_tensor(~terminated, dtype=th.float32, device=self.device)
            targets = th.as_tensor(rewards_used, device=self.device) + self.gamma * not_terminated * next_values
            entropy = distribution.entropy()
            self._update(values, distribution.log_prob(actions), entropy, targets)
        else:
            self._n_step_update(obs, actions, rewards_used, dones, terminated, next_values)

        if dones.any():
            done_envs = th.as_tensor(np.flatnonzero(dones), device=self.device)
            for traces in (self._actor_traces, self._critic_traces):
                if traces is not None:
                    traces.reset(done_envs)
        self._obs_tensor = next_obs
        self._last_obs = new_obs
        self._last_episode_starts = dones
        return new_obs, rewards, dones, infos

    def _n_step_update(
        self,
        obs: Any,
        actions: th.Tensor,
        rewards: np.ndarray,
        dones: np.ndarray,
        terminated: np.ndarray,
        next_values: th.Tensor,
    ) -> None:
        """Append this step to each env's window and update every state whose k-step return is now known."""
        assert self._windows is not None
        rows_obs, rows_actions, rows_returns, rows_discounts, rows_env = [], [], [], [], []
        for env_idx, window in enumerate(self._windows):
            window.append((_obs_row(obs, env_idx), actions[env_idx], float(rewards[env_idx])))
            if not dones[env_idx] and len(window) < self.n_steps:
                continue
            # Done: every state left in the window is due (truncated returns). Otherwise the oldest one is.
            n_due = len(window) if dones[env_idx] else 1
            bootstrap = 0.0 if terminated[env_idx] else 1.0
            rewards_in_window = [entry[2] for entry in window]
            for start in range(n_due):
                horizon = len(window) - start
                row_return = sum(self.gamma**i * r for i, r in enumerate(rewards_in_window[start:]))
                rows_obs.append(window[start][0])
                rows_actions.append(window[start][1])
                rows_returns.append(row_return)
                rows_discounts.append(bootstrap * self.gamma**horizon)
                rows_env.append(env_idx)
            for _ in range(n_due):
                window.popleft()
        if not rows_env:
            return
        batch_obs = _stack_obs_rows(rows_obs)
        values, distribution = self._evaluate(batch_obs)
        batch_actions = th.stack(rows_actions)
        targets = (
            th.tensor(rows_returns, dtype=th.float32, device=self.device)
            + th.tensor(rows_discounts, dtype=th.float32, device=self.device) * next_values[rows_env]
        )
        self._update(values, distribution.log_prob(batch_actions), distribution.entropy(), targets)

    def _update(
        self,
        values: th.Tensor,
        log_prob: th.Tensor,
        entropy: th.Tensor | None,
        targets: th.Tensor,
    ) -> None:
        """
        One online update from a batch of rows (one per env in the one-step case).

        :param values: V(s) of each row, with gradient
        :param log_prob: log pi(a|s) of each row, with gradient
        :param entropy: entropy of pi(.|s) of each row, with gradient (None if the distribution has none)
        :param targets: TD targets, without gradient, from the parameters before this update
        """
        delta = targets - values.detach()
        if not th.isfinite(delta).all():
            raise NonFiniteError(
                f"OneStepAC: non-finite TD error {delta.tolist()} at step {self.num_timesteps} "
                "(the value estimates diverged; try smaller step sizes); the update was not applied"
            )
        progress = self._current_progress_remaining
        actor_lr, critic_lr = self.lr_schedule(progress), self.critic_lr_schedule(progress)
        entropy_bonus = self.ent_coef * (entropy if entropy is not None else th.zeros_like(log_prob))
        if self.update_rule == "optimizer":
            self._optimizer_update(values, log_prob, entropy_bonus, delta, actor_lr, critic_lr)
            actor_steps = th.full_like(delta, actor_lr)
            critic_steps = th.full_like(delta, critic_lr)
        else:
            # The entropy gradient enters the trace multiplied by sign(delta): delta * e then carries |delta| * grad H.
            actor_objective = log_prob + delta.sign() * entropy_bonus
            actor_grads = _row_gradients(actor_objective, self._actor_params)
            critic_grads = _row_gradients(values, self._critic_params)
            decay = self.gamma * self.trace_lambda
            if self._actor_traces is not None and self._critic_traces is not None:
                actor_grads = self._actor_traces.accumulate(actor_grads, decay)
                critic_grads = self._critic_traces.accumulate(critic_grads, decay)
            if self.update_rule == "obgd":
                actor_norms, critic_norms = l1_norms(actor_grads), l1_norms(critic_grads)
                if not (th.isfinite(actor_norms).all() and th.isfinite(critic_norms).all()):
                    raise NonFiniteError(
                        f"OneStepAC: non-finite gradient at step {self.num_timesteps}; the update was not applied"
                    )
                actor_steps = obgd_step_sizes(delta, actor_norms, actor_lr, self.actor_kappa)
                critic_steps = obgd_step_sizes(delta, critic_norms, critic_lr, self.critic_kappa)
            else:
                actor_steps = th.full_like(delta, actor_lr)
                critic_steps = th.full_like(delta, critic_lr)
            scale = delta / self.n_envs
            add_weighted_(self._actor_params, actor_grads, actor_steps * scale)
            add_weighted_(self._critic_params, critic_grads, critic_steps * scale)
        self._n_updates += 1
        self._log_count += 1
        with th.no_grad():
            self._log_stats += th.stack(
                [
                    delta.abs().mean(),
                    0.5 * (delta**2).mean(),
                    -(delta * log_prob.detach()).mean(),
                    entropy.detach().mean() if entropy is not None else th.zeros(()),
                    actor_steps.mean(),
                    critic_steps.mean(),
                ]
            )

    def _optimizer_update(
        self,
        values: th.Tensor,
        log_prob: th.Tensor,
        entropy_bonus: th.Tensor,
        delta: th.Tensor,
        actor_lr: float,
        critic_lr: float,
    ) -> None:
        """The textbook form: minimise the one-step actor-critic loss with the policy's torch optimizer."""
        actor_loss = -(delta * log_prob + delta.abs() * entropy_bonus).sum() / self.n_envs
        critic_loss = -(delta * values).sum() / self.n_envs  # gradient of 0.5 * delta^2 with a fixed target
        optimizer = self.policy.optimizer
        optimizer.param_groups[0]["lr"] = actor_lr
        optimizer.param_groups[1]["lr"] = critic_lr
        optimizer.zero_grad(set_to_none=True)
        (actor_loss + critic_loss).backward()
        grads = [p.grad for p in self.policy.parameters() if p.grad is not None]
        if not all(th.isfinite(g).all() for g in grads):
            raise NonFiniteError(f"OneStepAC: non-finite gradient at step {self.num_timesteps}; the update was not applied")
        optimizer.step()

    # ------------------------------------------------------------------ logging

    def _reset_log_stats(self) -> None:
        self._log_stats = th.zeros(len(_STAT_NAMES), device=self.device)
        self._log_count = 0

    def _record_log_stats(self) -> None:
        if self._log_count > 0:
            for name, value in zip(_STAT_NAMES, (self._log_stats / self._log_count).tolist()):
                self.logger.record(f"train/{name}", value)
        self.logger.record("train/learning_rate", self.lr_schedule(self._current_progress_remaining))
        self.logger.record("train/critic_learning_rate", self.critic_lr_schedule(self._current_progress_remaining))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self._reset_log_stats()


def _row_gradients(outputs: th.Tensor, params: list[th.Tensor]) -> list[th.Tensor]:
    """Gradient of each row of ``outputs`` with respect to ``params``: tensors shaped ``(n_rows, *param.shape)``."""
    if outputs.shape[0] == 1:
        return [g.unsqueeze(0) for g in th.autograd.grad(outputs.sum(), params, retain_graph=True)]
    eye = th.eye(outputs.shape[0], dtype=outputs.dtype, device=outputs.device)
    return list(th.autograd.grad(outputs, params, grad_outputs=eye, is_grads_batched=True, retain_graph=True))


def _obs_row(obs: th.Tensor | dict[str, th.Tensor], idx: int) -> th.Tensor | dict[str, th.Tensor]:
    if isinstance(obs, dict):
        return {key: value[idx] for key, value in obs.items()}
    return obs[idx]


def _stack_obs_rows(rows: list) -> th.Tensor | dict[str, th.Tensor]:
    if isinstance(rows[0], dict):
        return {key: th.stack([row[key] for row in rows]) for key in rows[0]}
    return th.stack(rows)


def _with_terminal_obs(new_obs: Any, infos: list[dict[str, Any]], truncated: np.ndarray) -> Any:
    """A copy of ``new_obs`` where each truncated env's row is its terminal observation."""
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


def _check_finite_obs(obs: Any, step: int) -> None:
    arrays = obs.values() if isinstance(obs, dict) else [obs]
    for array in arrays:
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise NonFiniteError(f"OneStepAC: non-finite observation from the environment at step {step}")


_SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_SUPPORTED_OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Dict)


def _check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    if not isinstance(action_space, _SUPPORTED_ACTION_SPACES):
        allowed = ", ".join(space.__name__ for space in _SUPPORTED_ACTION_SPACES)
        raise ValueError(f"env: OneStepAC does not support the action space {action_space}; allowed: {allowed}")
    if not isinstance(observation_space, _SUPPORTED_OBSERVATION_SPACES):
        allowed = ", ".join(space.__name__ for space in _SUPPORTED_OBSERVATION_SPACES)
        raise ValueError(f"env: OneStepAC does not support the observation space {observation_space}; allowed: {allowed}")


def _check_step_size(name: str, value: float | Schedule | None, allow_none: bool = False) -> None:
    if value is None:
        if not allow_none:
            raise ValueError(f"{name} must be a positive float or a schedule, got None")
        return
    start = value(1.0) if callable(value) else value
    if not isinstance(start, (int, float)) or not math.isfinite(start) or start <= 0:
        raise ValueError(f"{name} must be a positive finite float (or a schedule giving one), got {start!r}")


def _check_hyperparameters(
    learning_rate: float | Schedule,
    critic_learning_rate: float | Schedule | None,
    n_steps: int,
    gamma: float,
    trace_lambda: float,
    ent_coef: float,
    update_rule: str,
    actor_kappa: float,
    critic_kappa: float,
    clip_obs: float,
) -> None:
    """Raise a ValueError naming the first invalid hyperparameter and what is allowed."""
    _check_step_size("learning_rate", learning_rate)
    _check_step_size("critic_learning_rate", critic_learning_rate, allow_none=True)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    for name, value in (("gamma", gamma), ("trace_lambda", trace_lambda)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    if not (math.isfinite(ent_coef) and ent_coef >= 0.0):
        raise ValueError(f"ent_coef must be a finite float >= 0, got {ent_coef!r}")
    if update_rule not in UPDATE_RULES:
        raise ValueError(f"update_rule must be one of {UPDATE_RULES}, got {update_rule!r}")
    for name, value in (("actor_kappa", actor_kappa), ("critic_kappa", critic_kappa), ("clip_obs", clip_obs)):
        if not (math.isfinite(value) and value > 0.0):
            raise ValueError(f"{name} must be a positive finite float, got {value!r}")
    if n_steps > 1 and trace_lambda > 0.0:
        raise ValueError(
            f"n_steps={n_steps} with trace_lambda={trace_lambda}: k-step returns and eligibility traces do not combine; "
            "use n_steps=1 with traces, or trace_lambda=0 with n_steps > 1"
        )
    if update_rule == "optimizer" and trace_lambda > 0.0:
        raise ValueError(
            f"update_rule='optimizer' needs trace_lambda=0 (a torch optimizer has no eligibility traces), got {trace_lambda}"
        )
