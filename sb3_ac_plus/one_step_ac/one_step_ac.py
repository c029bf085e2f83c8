"""OneStepAC: a one-step online actor-critic that updates after every environment step."""

import math
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule
from stable_baselines3.common.vec_env import VecEnv
from threadpoolctl import threadpool_limits

from sb3_ac_plus.common.exploration import ColoredNoise, StateDependentNoise
from sb3_ac_plus.one_step_ac.fast import FlatOptimizer, KernelUpdate, start_compiler, supports_kernels
from sb3_ac_plus.one_step_ac.hyperparameters import (
    check_hyperparameters,
    check_online_modules,
    check_spaces,
    default_step_sizes,
    saved_by,
)
from sb3_ac_plus.one_step_ac.env_steps import NonFiniteError, Transition, check_finite_obs, step_envs
from sb3_ac_plus.one_step_ac.observations import obs_row, stack_obs_rows
from sb3_ac_plus.one_step_ac.online_state import OnlineState
from sb3_ac_plus.one_step_ac.parameter_layout import flatten_parameters_, is_view_of, split_parameters
from sb3_ac_plus.one_step_ac.policy_aliases import POLICY_ALIASES
from sb3_ac_plus.one_step_ac.reference import ReferenceUpdate
from sb3_ac_plus.common.reward_scaling import RewardScaler
from sb3_ac_plus.one_step_ac.rows import APPLIED, NON_FINITE_DELTA, NON_FINITE_GRADIENT, STAT_NAMES, Rows
from sb3_ac_plus.policies.actor_critic import ConfigurableActorCriticPolicy
from sb3_ac_plus.policies.observation_normalizer import ObservationNormalizer

SelfOneStepAC = TypeVar("SelfOneStepAC", bound="OneStepAC")
__all__ = ["NonFiniteError", "OneStepAC"]

SAVE_FORMAT = 3  # saved with every model; a model without it, or with another, was not saved by this version
_REFUSALS = {
    NON_FINITE_DELTA: "its TD error is not finite (the value estimates diverged)",
    NON_FINITE_GRADIENT: "its gradient is not finite",
}


class OneStepAC(OnPolicyAlgorithm):
    """
    One-step online actor-critic (Sutton & Barto's one-step actor-critic and actor-critic with eligibility traces,
    with the stabilisers of stream AC(lambda): sparse initialisation, LayerNorm, online observation and reward
    normalisation; by default with the step sizes of intentional updates, Sharifnassab et al., 2026). It updates after
    every environment step, with no replay buffer and no batch of rollouts; the envs of a VecEnv step are learned from
    one after the other, in env order, each with the parameters the previous one left, as one env would learn from the
    same transitions.

    The update is specified in :mod:`sb3_ac_plus.one_step_ac.reference` (torch autograd, any policy and device); the
    compiled kernels of :mod:`sb3_ac_plus.one_step_ac.fast` compute the same update for this package's policies on flat
    vector observations on the CPU (Categorical, Gaussian or gSDE actions; ObGD, AdaptiveObGD, intentional, SGD or Adam).
    ``learn()`` runs torch and NumPy's BLAS single-threaded (restoring the settings after).

    Parameters that both heads use (a shared trunk or features extractor) receive both updates. Allowed combinations:
    ``n_steps > 1`` only with ``trace_lambda == 0``; ``update_rule="optimizer"`` only with ``trace_lambda == 0``.
    See docs/one_step_ac.md.

    :param policy: the policy model to use: "MlpPolicy", "CnnPolicy", "MultiInputPolicy" (the streaming networks),
        "SharedMlpPolicy", "SeparateMlpPolicy", "StreamingMlpPolicy" and their Cnn/MultiInput forms, or any
        ``ActorCriticPolicy`` class
    :param env: the environment to learn from (if registered in Gymnasium, can be str)
    :param learning_rate: the actor's step size, a float or a schedule of the progress remaining (from 1 to 0): with
        ``"intentional"`` the intended change of the policy's log-probability per step, eta; with ObGD the nominal
        step size that the overshooting bound scales down. None: the update rule's default, for ``"intentional"``
        0.005 per action dimension (0.005 on Discrete actions, 0.03 with 6 continuous ones), else 1.0
    :param critic_learning_rate: the critic's step size (float or schedule); with ``"intentional"`` the fraction of the
        TD error each step moves the value by. None: 0.5 for ``"intentional"``, else ``learning_rate``
    :param n_steps: bootstrap horizon k: each state is updated with its k-step return as soon as it is known (a sliding
        window per env); 1 is the one-step TD error
    :param gamma: discount factor, in [0, 1]
    :param trace_lambda: eligibility trace decay lambda, in [0, 1]: traces decay by ``gamma * lambda``, one per env,
        reset at episode ends; 0 is the textbook one-step actor-critic
    :param ent_coef: entropy coefficient, >= 0 (the bonus ``ent_coef * |delta| * grad H`` of stream AC(lambda))
    :param update_rule: how the gradients become updates: ``"intentional"`` (the default; intentional updates: each
        step changes the output by an intended amount, ``learning_rate`` (the actor's eta) and
        ``critic_learning_rate`` (the critic's) times the processed TD error; see
        :class:`~sb3_ac_plus.one_step_ac.reference.IntentionalStep`), ``"obgd"`` (stream AC(lambda)'s
        overshooting-bounded step size), ``"adaptive_obgd"`` (the trace divided by the RMS of past updates, then ObGD's
        bound), ``"sgd"`` (plain ``lr * delta * trace``) or ``"optimizer"`` (the one-step actor-critic loss minimised
        by the policy's torch optimizer, ``policy_kwargs=dict(optimizer_class=...)``, Adam by default)
    :param actor_kappa: ObGD's bound strength for the actor (> 0; larger gives smaller steps)
    :param critic_kappa: ObGD's bound strength for the critic (> 0)
    :param use_sde: explore with generalised state-dependent exploration (gSDE, Box actions): the noise is
        ``latent(s) @ (std * eps)`` with one matrix ``eps`` per env, drawn at the start of each of its episodes
    :param sde_sample_freq: with ``use_sde``, also draw new matrices every ``sde_sample_freq`` updates; -1 only at
        episode starts
    :param noise_beta: colored exploration noise for diagonal Gaussian policies: each env's standard-normal draws follow
        a sequence with power spectrum ``1 / f ** noise_beta`` (0 white, the default; 1 pink; 2 red), a new sequence at
        each episode start; ``predict`` outside ``learn`` draws white noise
    :param normalize_observations: normalise float vector observations online (running mean and std). The statistics
        live in the policy (``policy.obs_normalizer``), so the model, the policy alone and ``evaluate_policy`` all take
        raw observations. Needs a policy of this package.
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

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = POLICY_ALIASES
    policy: ActorCriticPolicy

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule | None = None,
        critic_learning_rate: float | Schedule | None = None,
        n_steps: int = 1,
        gamma: float = 0.99,
        trace_lambda: float = 0.8,
        ent_coef: float = 0.01,
        update_rule: str = "intentional",
        actor_kappa: float = 3.0,
        critic_kappa: float = 1.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        noise_beta: float = 0.0,
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
        check_hyperparameters(
            learning_rate=learning_rate,
            critic_learning_rate=critic_learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            trace_lambda=trace_lambda,
            ent_coef=ent_coef,
            update_rule=update_rule,
            actor_kappa=actor_kappa,
            critic_kappa=critic_kappa,
            sde_sample_freq=sde_sample_freq,
            noise_beta=noise_beta,
            use_sde=use_sde,
            clip_obs=clip_obs,
        )
        for key in ("normalize_observations", "clip_obs", "use_sde"):
            if policy_kwargs is not None and key in policy_kwargs:
                raise ValueError(f"policy_kwargs['{key}']: set {key} on OneStepAC itself, which passes it to the policy")
        super().__init__(
            policy,
            env,
            learning_rate=0.0,  # set below, where the action space gives the default
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=trace_lambda,
            ent_coef=ent_coef,
            vf_coef=1.0,
            max_grad_norm=math.inf,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            monitor_wrapper=monitor_wrapper,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        if env is not None:  # BaseAlgorithm.load builds the model without an env, then sets the saved values
            check_spaces(self.observation_space, self.action_space)
        action_space = self.action_space if env is not None else None
        self.learning_rate, self.critic_learning_rate = default_step_sizes(
            update_rule, learning_rate, critic_learning_rate, action_space
        )
        self.trace_lambda = trace_lambda
        self.update_rule = update_rule
        self.actor_kappa = actor_kappa
        self.critic_kappa = critic_kappa
        self.noise_beta = noise_beta
        self.normalize_observations = normalize_observations
        self.normalize_rewards = normalize_rewards
        self.clip_obs = clip_obs
        self._loading = not _init_setup_model  # BaseAlgorithm.load fills in the saved data, then calls _setup_model
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ setup

    def _setup_model(self) -> None:
        saved_state = self.__dict__.pop("_online_state", None)  # only a saved model has it
        if self._loading and (saved_state is None or getattr(self, "_save_format", None) != SAVE_FORMAT):
            raise ValueError(f"OneStepAC.load: {saved_by(self.__dict__)}")
        self._save_format = SAVE_FORMAT
        self._setup_lr_schedule()
        critic_lr = self.learning_rate if self.critic_learning_rate is None else self.critic_learning_rate
        self.critic_lr_schedule = FloatSchedule(critic_lr)
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self._policy_arguments()
        )
        self.policy = self.policy.to(self.device)
        check_online_modules(self.policy)
        # The model's own generator samples the actions, so that saving and loading never touch torch's global one.
        self._generator = th.Generator(device=self.device)
        self._generator.manual_seed(self.seed if self.seed is not None else int(th.randint(2**62, ())))
        if self.noise_beta > 0.0 and type(self.policy.action_dist) is not DiagGaussianDistribution:
            raise ValueError(
                f"noise_beta={self.noise_beta}: colored noise needs a diagonal Gaussian policy (Box actions, "
                f"use_sde=False); this policy's distribution is {type(self.policy.action_dist).__name__}"
            )
        self._split = split_parameters(self.policy, self.observation_space)
        self._flat_params = flatten_parameters_(self._split.trained)
        self._n_actor = sum(p.numel() for p in self._split.actor)
        if self.update_rule == "optimizer":
            self.policy.optimizer = self._split.optimizer(self.policy, self.lr_schedule(1.0), self.critic_lr_schedule(1.0))
        scaler = RewardScaler(self.n_envs, self.gamma) if self.normalize_rewards else None
        traces = self.update_rule != "optimizer" and self.gamma * self.trace_lambda > 0.0
        n_critic = sum(p.numel() for p in self._split.critic)
        moments, intentional = self.update_rule in ("adaptive_obgd", "intentional"), self.update_rule == "intentional"
        self._state = OnlineState(
            self._n_actor, n_critic, self.device, traces, moments, self.n_steps, self.gamma, scaler, intentional
        )
        self._n_updates = 0
        self._new_episodes()
        if saved_state is not None:
            self._n_updates = saved_state["n_updates"]
            self._generator.set_state(th.from_numpy(saved_state["generator"]))
            self._state.restore(saved_state)
        self._loading = False
        self._engine: KernelUpdate | ReferenceUpdate | None = None
        self._use_kernels = True  # tests switch it off to run the reference
        self._log_stats: list[np.ndarray] = []
        if supports_kernels(self.policy, self.observation_space, self.device) and not self._split.shared:
            start_compiler()  # numba's one-time start (about 0.4 s), when the model is built rather than in learn()

    def _policy_arguments(self) -> dict[str, Any]:
        """The policy's keyword arguments: ``policy_kwargs``, gSDE and the observation normalisation OneStepAC asks for."""
        if issubclass(self.policy_class, ConfigurableActorCriticPolicy):
            extra = {"normalize_observations": self.normalize_observations, "clip_obs": self.clip_obs}
            return {**self.policy_kwargs, "use_sde": self.use_sde, **extra}
        if self.normalize_observations:
            raise ValueError(
                "normalize_observations=True needs a policy that holds the observation normaliser (a subclass of "
                f"ConfigurableActorCriticPolicy, as every policy alias of OneStepAC is); {self.policy_class.__name__} "
                "is not one: pass normalize_observations=False or use one of this package's policies"
            )
        return {**self.policy_kwargs, "use_sde": self.use_sde}

    @property
    def obs_normalizer(self) -> ObservationNormalizer | None:
        """The policy's observation normaliser (None without observation normalisation)."""
        return getattr(self.policy, "obs_normalizer", None)

    def _new_episodes(self) -> None:
        """New episodes in every env: zero traces, empty n-step windows, new exploration noise."""
        colored = None
        if self.noise_beta > 0.0:
            seed = int(th.randint(2**62, (), generator=self._generator))
            colored = ColoredNoise(self.noise_beta, self.n_envs, int(np.prod(self.action_space.shape)), seed)  # type: ignore[arg-type]
        sde = StateDependentNoise(self.policy, self.n_envs, self._generator) if self.use_sde else None
        self._state.new_episodes(self.n_envs, colored, sde)
        if sde is not None:
            sde.apply(self.policy)

    def _setup_engine(self) -> None:
        """The compiled kernels where they compute this configuration, else the reference update."""
        if not is_view_of(self._split.trained, self._flat_params):
            self._flat_params = flatten_parameters_(self._split.trained)  # the policy was moved (policy.to)
        settings = dict(actor_kappa=self.actor_kappa, critic_kappa=self.critic_kappa, ent_coef=self.ent_coef)
        settings["trace_decay"] = self.gamma * self.trace_lambda
        kernels = self._use_kernels and not self._split.shared
        kernels = kernels and supports_kernels(self.policy, self.observation_space, self.device)
        flat_optimizer, flat_grad = None, None
        if kernels and self.update_rule == "optimizer":
            flat_grad = th.zeros_like(self._flat_params)
            flat_optimizer = FlatOptimizer.build(self.policy.optimizer, self._flat_params, flat_grad)
            n_params = self._flat_params.numel()
            kernels = flat_optimizer is not None and flat_optimizer.groups_are([(0, self._n_actor), (self._n_actor, n_params)])
        if kernels:
            self._engine = KernelUpdate(
                self.policy, self._split.trained, self._flat_params, self._n_actor, self._generator, self.update_rule,
                flat_optimizer=flat_optimizer, flat_grad=flat_grad, **settings,
            )  # fmt: skip
        else:
            self._engine = ReferenceUpdate(
                self.policy, self._split, self._flat_params, self._generator, self.update_rule, **settings
            )

    # ------------------------------------------------------------------ saving

    def _excluded_save_params(self) -> list[str]:
        excluded = ["_loading", "_generator", "_split", "_flat_params", "_n_actor", "_state", "_n_updates"]
        return [*super()._excluded_save_params(), *excluded, "_engine", "_obs_input", "_log_stats", "_use_kernels"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        if self.update_rule == "optimizer":
            return ["policy", "policy.optimizer"], []
        return ["policy"], []

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the model, with its online state (traces, reward scaler, n-step windows, sampling generator)."""
        self._online_state = {
            **self._state.state(),
            "n_updates": self._n_updates,
            "generator": self._generator.get_state().numpy(),
        }
        try:
            super().save(*args, **kwargs)
        finally:
            del self._online_state

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

        :param total_timesteps: the number of env steps to train on
        :param callback: callback(s) called at every step with state of the algorithm
        :param log_interval: number of updates (one per VecEnv step) between two logs; None disables logging
        :param tb_log_name: the name of the run for TensorBoard logging
        :param reset_num_timesteps: whether to reset the current timestep number (and start new episodes)
        :param progress_bar: display a progress bar using tqdm and rich
        :return: the trained model
        """
        if log_interval is not None and (
            isinstance(log_interval, bool) or not isinstance(log_interval, int) or log_interval < 1
        ):
            raise ValueError(f"log_interval must be a positive number of updates or None, got {log_interval!r}")
        new_episodes = reset_num_timesteps or self._last_obs is None
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        assert self.env is not None
        if new_episodes or self._state.n_envs != self.n_envs:
            self._new_episodes()
        check_finite_obs(self._last_obs, self.num_timesteps)
        if new_episodes and self.obs_normalizer is not None:
            self.obs_normalizer.update(self._last_obs)  # type: ignore[arg-type]
        self._setup_engine()
        assert self._engine is not None
        self._obs_input = self._engine.observe(self._last_obs)
        self._log_stats = []
        self._track_stats = log_interval is not None and len(self.logger.output_formats) > 0
        callback.on_training_start(locals(), globals())
        n_threads = th.get_num_threads()
        th.set_num_threads(1)
        # NumPy's BLAS too: its multi-threaded products collapse as soon as another process holds a core.
        blas_limits = threadpool_limits(limits=1, user_api="blas")
        try:
            iteration = 0
            while self.num_timesteps < total_timesteps:
                remaining_updates = math.ceil((total_timesteps - self.num_timesteps) / self.n_envs)
                if not self.collect_rollouts(self.env, callback, None, min(log_interval or 1000, remaining_updates)):
                    break
                iteration += 1
                if log_interval is not None:
                    self._record_log_stats()
                    self.dump_logs(iteration)
        finally:
            blas_limits.restore_original_limits()  # first: torch's own BLAS may be among them
            th.set_num_threads(n_threads)
        callback.on_training_end()
        return self

    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer | None, n_rollout_steps: int
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
            new_obs, rewards, dones, infos = self._step(env)[:4]
            callback.update_locals(locals())
            if not callback.on_step():
                self._refresh_sde_matrices()
                return False
            self._update_info_buffer(infos, dones)
        self._refresh_sde_matrices()
        callback.on_rollout_end()
        return True

    def _step(self, env: VecEnv) -> Transition:
        """Act in every env, step them, learn from the rows the step gives, and commit."""
        engine = self._engine
        assert engine is not None
        raw_obs = self._last_obs
        actions = engine.act(self._obs_input, self._exploration_noise())
        step = step_envs(env, actions, self.policy, self.num_timesteps, self._state.reward_scaler)
        rows = self._rows(step, raw_obs, actions)
        if rows is not None:
            self._learn_from(rows)
        self._commit(step, 0 if rows is None else rows.n_rows)
        return step

    def _exploration_noise(self) -> np.ndarray | None:
        """This step's colored noise draws, or gSDE's matrices' draws for the kernels (None: white noise)."""
        state = self._state
        if state.sde_noise is not None:
            if isinstance(self._engine, KernelUpdate):
                return state.sde_noise.eps_numpy  # the policy's matrices are refreshed once per rollout chunk
            state.sde_noise.apply(self.policy)
            return None
        return None if state.colored_noise is None else state.colored_noise.sample()

    def _refresh_sde_matrices(self) -> None:
        """With gSDE, set the policy's exploration matrices (what ``predict`` samples with) for its current std."""
        if self._state.sde_noise is not None:
            self._state.sde_noise.apply(self.policy)

    def _rows(self, step: Transition, raw_obs: Any, actions: np.ndarray) -> Rows | None:
        """
        The rows this step gives: one per env (one-step TD, each following its env's trace), or the states whose
        k-step return it completes (``n_steps > 1``); None when no state is due yet.
        """
        engine = self._engine
        assert engine is not None
        next_obs = engine.observe(step.bootstrap_obs)
        windows = self._state.windows
        if windows is None:
            envs = np.arange(self.n_envs)
            discounts = (self.gamma * ~step.terminated).astype(np.float32)
            trace_index = envs if self._state.actor_traces is not None else np.full(self.n_envs, -1)
            return Rows(self._obs_input, actions, step.learn_rewards, discounts, next_obs, envs, trace_index)
        due = windows.propose(
            [obs_row(raw_obs, env) for env in range(self.n_envs)], actions, step.learn_rewards, step.dones, step.terminated
        )
        if not due.envs:
            return None
        returns, discounts = np.array(due.returns, dtype=np.float32), np.array(due.discounts, dtype=np.float32)
        obs = engine.observe(stack_obs_rows(due.obs))
        return Rows(obs, np.stack(due.actions), returns, discounts, next_obs, np.array(due.envs), np.full(len(due.envs), -1))

    def _learn_from(self, rows: Rows) -> None:
        """Learn from the rows in order; if a row is refused, put everything back and raise :class:`NonFiniteError`."""
        engine = self._engine
        assert engine is not None
        progress = self._current_progress_remaining
        self._state.checkpoint(self._flat_params)
        engine.checkpoint()
        status, row, stats = engine.update(rows, self._state, self.lr_schedule(progress), self.critic_lr_schedule(progress))
        if status != APPLIED:
            self._state.rollback(self._flat_params)
            engine.rollback()
            reason = _REFUSALS.get(status, "its step would make parameters non-finite (the step sizes are too large)")
            raise NonFiniteError(
                f"OneStepAC: the update at step {self.num_timesteps} was not applied: row {row} of {rows.n_rows}: {reason}"
            )
        if self._track_stats:
            self._log_stats.append(stats)

    def _commit(self, step: Transition, n_rows: int) -> None:
        """Move every piece of online state past this step."""
        self._state.commit(n_rows, step.dones, step.scaled)
        if (normalizer := self.obs_normalizer) is not None:
            normalizer.update(step.new_obs)
        assert self._engine is not None
        self._obs_input = self._engine.observe(step.new_obs)
        self._last_obs = step.new_obs
        self._last_episode_starts = step.dones
        self.num_timesteps += len(step.dones)
        if n_rows > 0:
            self._n_updates += 1
        sde_noise = self._state.sde_noise
        if sde_noise is not None and self.sde_sample_freq > 0 and self._n_updates % self.sde_sample_freq == 0:
            sde_noise.resample(np.arange(self.n_envs))

    def _record_log_stats(self) -> None:
        if self._log_stats:
            stats = np.concatenate(self._log_stats)
            delta = stats[:, 0]
            self.logger.record("train/td_error_abs", float(np.abs(delta).mean()))
            self.logger.record("train/critic_loss", float(0.5 * (delta * delta).mean()))
            self.logger.record("train/policy_loss", float(-(delta * stats[:, 1]).mean()))
            for column in (2, 3, 4):
                self.logger.record(f"train/{STAT_NAMES[column]}", float(stats[:, column].mean()))
        self.logger.record("train/learning_rate", self.lr_schedule(self._current_progress_remaining))
        self.logger.record("train/critic_learning_rate", self.critic_lr_schedule(self._current_progress_remaining))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self._log_stats = []
