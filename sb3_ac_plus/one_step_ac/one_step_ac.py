"""OneStepAC: a one-step online actor-critic that updates after every environment step."""

import math
from collections import deque
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule
from stable_baselines3.common.vec_env import VecEnv
from threadpoolctl import threadpool_limits

from sb3_ac_plus.one_step_ac.backend import ActorCriticBackend
from sb3_ac_plus.one_step_ac.exploration import ColoredNoise, StateDependentNoise
from sb3_ac_plus.one_step_ac.flat_optimizer import FlatOptimizer
from sb3_ac_plus.one_step_ac.flat_parameters import flatten_parameters_, is_view_of
from sb3_ac_plus.one_step_ac.head_kernels import CATEGORICAL, GAUSSIAN, SDE
from sb3_ac_plus.one_step_ac.kernel_options import start_compiler
from sb3_ac_plus.one_step_ac.numpy_backend import NumpyBackend, supports_fast_path
from sb3_ac_plus.one_step_ac.optimizer_kernels import optimizer_rows
from sb3_ac_plus.one_step_ac.observations import all_finite, obs_row, obs_slice, stack_obs_rows, with_terminal_obs
from sb3_ac_plus.one_step_ac.sequential_kernels import APPLIED, NON_FINITE_DELTA, NON_FINITE_GRADIENT, sequential_rows
from sb3_ac_plus.one_step_ac.torch_backend import TorchBackend, actor_outputs, critic_values
from sb3_ac_plus.one_step_ac.reward_scaling import RewardScaler, ScaledRewards
from sb3_ac_plus.one_step_ac.second_moments import SecondMoments
from sb3_ac_plus.one_step_ac.trace_updates import EligibilityTraces, add_weighted_, l1_norms, obgd_step_sizes, update_is_safe
from sb3_ac_plus.one_step_ac.hyperparameters import check_hyperparameters, check_online_modules, check_spaces
from sb3_ac_plus.one_step_ac.policies import POLICY_ALIASES
from sb3_ac_plus.policies.actor_critic import ConfigurableActorCriticPolicy
from sb3_ac_plus.policies.observation_normalizer import ObservationNormalizer
from sb3_ac_plus.policies.streaming import StreamingActorCriticPolicy

SelfOneStepAC = TypeVar("SelfOneStepAC", bound="OneStepAC")

_ROW_0 = np.zeros(1, dtype=np.int64)  # one env's row bootstraps from its own next state
# Logged statistics, accumulated every update and averaged at each log.
_STAT_NAMES = ("td_error_abs", "critic_loss", "policy_loss", "entropy", "actor_step_size", "critic_step_size")


# Saved with every model. Models saved before the observation normaliser moved into the policy have none; format 2
# models were saved when the streaming policies' hidden layers were (128, 128) by default, format 3 ones with (64, 64).
SAVE_FORMAT = 3
LOADABLE_FORMATS = (2, 3)
FORMAT_2_NET_ARCH = dict(pi=[128, 128], vf=[128, 128])


class NonFiniteError(RuntimeError):
    """
    Raised when an observation, a reward or an update is NaN or infinite. The step is not committed: parameters,
    traces, normalisers, n-step windows and counters stay as after the last completed step.
    """


class Transition(NamedTuple):
    """
    One step of every env and what an update needs from it; nothing of the model has changed yet.

    ``bootstrap_obs`` are the raw next observations with the terminal observation where an episode was truncated,
    ``learn_rewards`` the rewards learned from (scaled with ``normalize_rewards``), ``scaled`` the reward scaler's
    pending state.
    """

    new_obs: Any
    rewards: np.ndarray
    dones: np.ndarray
    infos: list[dict[str, Any]]
    bootstrap_obs: Any
    learn_rewards: np.ndarray
    scaled: ScaledRewards | None
    terminated: np.ndarray


class PendingUpdate(NamedTuple):
    """
    A checked update, applied by ``OneStepAC._commit``: ``params += weights @ direction`` for the actor's and the
    critic's part of the parameter vector, each ``(params, direction, weights)`` (None when a torch optimizer has
    applied it already, or there is nothing to update), the logged statistics, whether it counts as an update, the
    n-step windows after this step, and how many rows ``combine_envs="sequential"`` has applied already (their traces
    and second moments are proposed, for ``_commit`` to commit).
    """

    actor: tuple[Any, Any, Any] | None
    critic: tuple[Any, Any, Any] | None
    stats: list[float] | None
    applied: bool = True
    windows: list[deque] | None = None
    rows_in_place: int = 0


class Rows(NamedTuple):
    """
    The transitions ``combine_envs="sequential"`` learns from in turn, one row each: the states acted in (as the
    backend takes them, normalised with the statistics before this step), the actions taken (NumPy), each row's reward
    (the k-step discounted sum with ``n_steps > 1``) and discount of V(s') (0 at a termination), every env's next
    observation (as the backend takes them), the env each row bootstraps from, and the env whose eligibility trace
    each row follows (None without traces).
    """

    obs: Any
    actions: np.ndarray
    returns: np.ndarray
    discounts: np.ndarray
    next_obs: Any
    next_index: np.ndarray
    trace_index: np.ndarray | None

    @property
    def n_rows(self) -> int:
        return len(self.returns)


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

    :param policy: the policy model to use: "MlpPolicy", "CnnPolicy", "MultiInputPolicy" (the streaming networks),
        "SharedMlpPolicy", "SeparateMlpPolicy", "StreamingMlpPolicy" and their Cnn/MultiInput forms, or any
        ``ActorCriticPolicy`` class
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
        ``"adaptive_obgd"`` (stream AC(lambda)'s AdaptiveObGD: the trace divided element-wise by the RMS of past
        updates ``delta * trace``, as Adam does, then ObGD's bound; see
        :mod:`~sb3_ac_plus.one_step_ac.second_moments`), ``"sgd"`` (plain ``lr * delta * trace``) or ``"optimizer"``
        (the loss of the one-step actor-critic minimised by the policy's torch optimizer,
        ``policy_kwargs=dict(optimizer_class=...)``, Adam by default; needs ``trace_lambda == 0``)
    :param actor_kappa: ObGD bound strength for the actor (> 0; larger gives smaller steps)
    :param critic_kappa: ObGD bound strength for the critic (> 0). 1.5 (2.0 before) keeps more solved CartPole seeds
        solved and learned better on Acrobot, Pendulum, LunarLander, HalfCheetah and Hopper (docs/one_step_ac.md,
        Defaults across tasks); the tuning studies' blocks all chose 1.0 to 1.4
    :param combine_envs: how the transitions of the envs of one VecEnv step are learned from:

        - ``"sequential"`` (default): one after the other, in env order, each with the parameters (and traces) the
          previous env's update left, so the VecEnv step is the update a single env would make from the same
          transitions in that order, each bounded by ObGD on its own. Every env-step moves the parameters as far as a
          step of a single env, and no update is computed from parameters another env's update has already moved
          (which ``"sum"`` does). At ``n_envs=1`` it is ``"sum"`` (and on the NumPy fast path every ``combine_envs``
          runs the compiled call below with one row). On the NumPy fast path (ObGD, AdaptiveObGD or SGD, Categorical
          or Gaussian actions) the rows run in one compiled call, as fast as ``"sum"``; elsewhere (gSDE,
          ``"optimizer"``, the torch path) it costs a forward and backward pass per env instead of one batched pass.
          With ``update_rule="optimizer"`` it is one optimizer step per env, each on the gradient at the parameters
          the previous step left. What it cannot remove is that the transitions come from ``n_envs`` interleaved
          episodes: on CartPole-v1 with the defaults, 2 envs reach 475 in as many env steps as one env, 8 in about
          1.75 times as many, at 2.7 times the env-steps/s (docs/one_step_ac.md, "Several envs").
        - ``"sum"``: each env's update is bounded on its own (ObGD), all computed with the parameters of the step's
          start, and added (the former default).
        - ``"bounded_sum"``: the envs' updates are added and ObGD bounds the sum as a whole (one step size, as if the
          envs' traces were one trace); at ``n_envs=1`` it is ``"sum"``.
        - ``"mean"``: the mean of the envs' bounded updates (sb3-ac-plus before 0.2): each env-step moves the
          parameters ``1 / n_envs`` as far.
        - ``"each"`` (``update_rule="optimizer"`` only): one optimizer step per env, in env order, each with that env's
          gradient at the parameters of the VecEnv step's start. With ``"sum"`` (or ``"mean"``) the optimizer takes
          one step on the envs' summed (averaged) loss, and an Adam step moves each parameter by about its step size
          whatever the gradient's scale, so ``n_envs`` envs make ``n_envs`` times fewer steps per env step than one
          env; ``"each"`` makes as many as one env would, with the forward and backward passes batched over envs.

        See the docs (``docs/one_step_ac.md``, Several envs) for the measurements behind the default.
    :param use_sde: explore with generalised state-dependent exploration (gSDE, as SB3's A2C and PPO; Box actions):
        the noise is a function of the state, ``latent(s) @ (std * eps)``, with one matrix ``eps`` per env drawn at
        the start of each of its episodes
    :param sde_sample_freq: with ``use_sde``, also draw new matrices every ``sde_sample_freq`` steps (updates);
        -1 only at episode starts
    :param noise_beta: colored exploration noise for diagonal Gaussian policies: the standard-normal draws of each
        env follow a sequence with power spectrum ``1 / f ** noise_beta`` (0 white, the default; 1 pink; 2 red), a new
        sequence at each episode start (see :mod:`~sb3_ac_plus.one_step_ac.exploration`); the per-step distribution
        of the actions, and so the update, is unchanged. ``predict`` outside ``learn`` draws white noise.
    :param normalize_observations: normalise float vector observations online (running mean and std). The statistics
        live in the policy (``policy.obs_normalizer``), so the model, the policy alone, ``policy.predict`` and
        ``evaluate_policy(model.policy, ...)`` all take raw observations. Needs a policy of this package
        (:class:`~sb3_ac_plus.policies.actor_critic.ConfigurableActorCriticPolicy` and its presets).
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

    Speed: with the default policy on flat vector observations and Categorical or Gaussian actions (any ``n_steps``,
    any ``update_rule``, white or colored noise or gSDE), the per-step forward and backward passes run in NumPy on the
    policy's own parameter memory (:mod:`sb3_ac_plus.one_step_ac.numpy_backend`), and a torch optimizer
    (``update_rule="optimizer"``) steps the flat parameter vector, one tensor per param group
    (:mod:`sb3_ac_plus.one_step_ac.flat_optimizer`); every other configuration runs the same update with torch
    autograd. ``learn()`` runs torch and NumPy's BLAS single-threaded (restoring the settings
    after): at these batch sizes extra threads only add synchronisation, and collapse when another process holds a core.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = POLICY_ALIASES
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
        critic_kappa: float = 1.5,
        combine_envs: str = "sequential",
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
            combine_envs=combine_envs,
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
            learning_rate=learning_rate,
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
        self.critic_learning_rate = critic_learning_rate
        self.trace_lambda = trace_lambda
        self.update_rule = update_rule
        self.actor_kappa = actor_kappa
        self.critic_kappa = critic_kappa
        self.combine_envs = combine_envs
        self.noise_beta = noise_beta
        self.normalize_observations = normalize_observations
        self.normalize_rewards = normalize_rewards
        self.clip_obs = clip_obs
        if env is not None:
            check_spaces(self.observation_space, self.action_space)
        self._loading = not _init_setup_model  # BaseAlgorithm.load fills in the saved data, then calls _setup_model
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ setup

    def _setup_model(self) -> None:
        online_state = self.__dict__.pop("_online_state", None)  # only a saved model has it
        saved_format = getattr(self, "_save_format", None)
        if self._loading and (online_state is None or saved_format not in LOADABLE_FORMATS):
            raise ValueError(
                "OneStepAC.load: this model was saved by an older sb3-ac-plus, before the observation normaliser "
                "became part of the policy, and this version cannot load it; train it again"
            )
        if self._loading and saved_format == 2 and issubclass(self.policy_class, StreamingActorCriticPolicy):
            # saved with the streaming policies' former default hidden layers
            self.policy_kwargs = {"net_arch": FORMAT_2_NET_ARCH, **self.policy_kwargs}
        self._save_format = SAVE_FORMAT
        self._setup_lr_schedule()
        self.critic_lr_schedule = FloatSchedule(
            self.learning_rate if self.critic_learning_rate is None else self.critic_learning_rate
        )
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self._policy_arguments()
        )
        self.policy = self.policy.to(self.device)
        check_online_modules(self.policy)
        # The model's own generator samples the actions, so that saving and loading never touch torch's global one.
        self._generator = th.Generator(device=self.device)
        self._generator.manual_seed(self.seed if self.seed is not None else int(th.randint(2**62, ())))
        self._check_exploration()
        self._sde_noise = StateDependentNoise(self.policy, self.n_envs, self._generator) if self.use_sde else None
        if self._sde_noise is not None:
            self._sde_noise.apply(self.policy)
        self._split_parameters()
        if self.update_rule == "optimizer":
            self._build_optimizer()

        # Online state, kept across learn() calls and saved with the model.
        self._reward_scaler = RewardScaler(self.n_envs, self.gamma) if self.normalize_rewards else None
        self._actor_moments: SecondMoments | None = None
        self._critic_moments: SecondMoments | None = None
        if self.update_rule == "adaptive_obgd":
            self._actor_moments = SecondMoments(self._flat_actor.numel(), self.device)
            self._critic_moments = SecondMoments(self._flat_critic.numel(), self.device)
        self._n_updates = 0
        self._reset_episode_state()
        if online_state is not None:
            self._restore_online_state(online_state)
        self._loading = False
        self._backend: ActorCriticBackend | None = None
        self._obs_input: Any = None  # the backend's input for the current observations
        self._use_fast_path = True  # tests switch it off to check the torch backend
        self._track_stats = False
        self._reset_log_stats()
        if not self._shares_parameters and supports_fast_path(self.policy, self.observation_space, self.device):
            # numba's one-time start in this process (about 0.4 s), when the model is built rather than in learn()
            start_compiler()

    def _policy_arguments(self) -> dict[str, Any]:
        """The policy's keyword arguments: ``policy_kwargs``, gSDE and the observation normalisation OneStepAC asks for."""
        if issubclass(self.policy_class, ConfigurableActorCriticPolicy):
            return {
                **self.policy_kwargs,
                "use_sde": self.use_sde,
                "normalize_observations": self.normalize_observations,
                "clip_obs": self.clip_obs,
            }
        if self.normalize_observations:
            raise ValueError(
                "normalize_observations=True needs a policy that holds the observation normaliser (a subclass of "
                f"ConfigurableActorCriticPolicy, as every policy alias of OneStepAC is); {self.policy_class.__name__} "
                "is not one: pass normalize_observations=False or use one of this package's policies"
            )
        return {**self.policy_kwargs, "use_sde": self.use_sde}

    def _check_exploration(self) -> None:
        if self.noise_beta > 0.0 and type(self.policy.action_dist) is not DiagGaussianDistribution:
            raise ValueError(
                f"noise_beta={self.noise_beta}: colored noise needs a diagonal Gaussian policy (Box actions, "
                f"use_sde=False); this policy's distribution is {type(self.policy.action_dist).__name__}"
            )

    @property
    def obs_normalizer(self) -> ObservationNormalizer | None:
        """The policy's observation normaliser (None without observation normalisation)."""
        return getattr(self.policy, "obs_normalizer", None)

    def _split_parameters(self) -> None:
        """
        Find which parameters the actor and the critic outputs depend on, and lay them out as one vector
        ``[actor only | shared | critic only]`` so that the actor's and the critic's parts are contiguous slices.
        """
        obs_tensor, _ = self.policy.obs_to_tensor(self.observation_space.sample())
        self.policy.set_training_mode(False)  # which parameters matter does not depend on the mode
        outputs = actor_outputs(self.policy, obs_tensor)
        actor_objective = outputs.log_prob.sum()
        if outputs.entropy is not None:
            actor_objective = actor_objective + outputs.entropy.sum()
        params = [p for p in self.policy.parameters() if p.requires_grad]
        actor_grads = th.autograd.grad(actor_objective, params, allow_unused=True)
        critic_grads = th.autograd.grad(critic_values(self.policy, obs_tensor).sum(), params, allow_unused=True)
        in_actor = [g is not None for g in actor_grads]
        in_critic = [g is not None for g in critic_grads]
        actor_only = [p for p, a, c in zip(params, in_actor, in_critic, strict=True) if a and not c]
        shared = [p for p, a, c in zip(params, in_actor, in_critic, strict=True) if a and c]
        critic_only = [p for p, a, c in zip(params, in_actor, in_critic, strict=True) if c and not a]
        self._actor_params = actor_only + shared
        self._critic_params = shared + critic_only
        self._trained_params = actor_only + shared + critic_only
        self._shares_parameters = len(shared) > 0
        self.policy.set_training_mode(True)
        self._flatten_parameters()

    def _flatten_parameters(self) -> None:
        self._flat_params = flatten_parameters_(self._trained_params)
        n_actor = sum(p.numel() for p in self._actor_params)
        n_critic = sum(p.numel() for p in self._critic_params)
        self._flat_actor = self._flat_params[:n_actor]
        self._flat_critic = self._flat_params[self._flat_params.numel() - n_critic :]

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
        self._actor_traces: EligibilityTraces | None = None
        self._critic_traces: EligibilityTraces | None = None
        if self.update_rule != "optimizer" and self.gamma * self.trace_lambda > 0.0:
            self._actor_traces = EligibilityTraces(self._flat_actor.numel(), self.n_envs, self.device)
            self._critic_traces = EligibilityTraces(self._flat_critic.numel(), self.n_envs, self.device)
        self._windows: list[deque] | None = [deque() for _ in range(self.n_envs)] if self.n_steps > 1 else None
        self._colored_noise: ColoredNoise | None = None
        if self.noise_beta > 0.0:
            seed = int(th.randint(2**62, (), generator=self._generator))
            action_dim = int(np.prod(self.action_space.shape))  # type: ignore[arg-type]
            self._colored_noise = ColoredNoise(self.noise_beta, self.n_envs, action_dim, seed)
        if self.use_sde:
            self._sde_noise = StateDependentNoise(self.policy, self.n_envs, self._generator)
        if self._reward_scaler is not None:
            self._reward_scaler.reset(self.n_envs)
        self._episode_n_envs = self.n_envs

    def _setup_backend(self) -> None:
        """The NumPy backend where it computes this configuration (see the class docstring), else the torch one."""
        self._flat_optimizer: FlatOptimizer | None = None
        self._optimizer_kernel = False
        self._backend = TorchBackend(
            self.policy,
            self._actor_params,
            self._critic_params,
            self._flat_params,
            entropy_bonus=self.ent_coef > 0.0,
            generator=self._generator,
        )
        if (
            self._use_fast_path
            and not self._shares_parameters
            and supports_fast_path(self.policy, self.observation_space, self.device)
        ):
            self._backend = NumpyBackend(
                self.policy, self._trained_params, self._flat_params, self._flat_actor.numel(), self._generator
            )
        if self.update_rule == "optimizer":
            # The optimizer reads each parameter's .grad: views of one flat gradient the per-row updates write.
            self._flat_grad = th.zeros_like(self._flat_params)
            self._flat_grad_numpy = self._flat_grad.numpy()
            self._grad_views = []
            offset = 0
            for param in self._trained_params:
                self._grad_views.append(self._flat_grad[offset : offset + param.numel()].view_as(param))
                offset += param.numel()
            if isinstance(self._backend, NumpyBackend):
                self._flat_optimizer = FlatOptimizer.build(self.policy.optimizer, self._flat_params, self._flat_grad)
        n_actor, n_params = self._flat_actor.numel(), self._flat_params.numel()
        # With NumPy's Adam on the [actor | critic] groups, one env's one-step update and a VecEnv step's rows with
        # combine_envs="sequential" (one Adam step per row, in turn) are one compiled call (optimizer_rows).
        self._optimizer_kernel = self._flat_optimizer is not None and self._flat_optimizer.groups_are(
            [(0, n_actor), (n_actor, n_params)]
        )

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "_loading",
            "_generator",
            "_actor_traces",
            "_critic_traces",
            "_actor_moments",
            "_critic_moments",
            "_colored_noise",
            "_sde_noise",
            "_reward_scaler",
            "_windows",
            "_n_updates",
            "_episode_n_envs",
            "_actor_params",
            "_critic_params",
            "_trained_params",
            "_flat_params",
            "_flat_actor",
            "_flat_critic",
            "_backend",
            "_flat_grad",
            "_flat_optimizer",
            "_grad_views",
            "_obs_input",
            "_log_stats",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        if self.update_rule == "optimizer":
            return ["policy", "policy.optimizer"], []
        return ["policy"], []

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the model, with its online state (traces, reward scaler, n-step windows, sampling generator)."""
        self._online_state = self._online_state_arrays()
        try:
            super().save(*args, **kwargs)
        finally:
            del self._online_state

    def _online_state_arrays(self) -> dict[str, Any]:
        """The online state as plain NumPy arrays, numbers and lists (nothing tied to this package's classes)."""
        state: dict[str, Any] = {
            "n_updates": self._n_updates,
            "episode_n_envs": self._episode_n_envs,
            "generator": self._generator.get_state().numpy(),
        }
        if self._actor_traces is not None and self._critic_traces is not None:
            state["traces"] = (self._actor_traces.traces.cpu().numpy(), self._critic_traces.traces.cpu().numpy())
        if self._reward_scaler is not None:
            state["reward_scaler"] = self._reward_scaler.state()
        if self._actor_moments is not None and self._critic_moments is not None:
            state["second_moments"] = (
                self._actor_moments.moments.cpu().numpy(),
                self._critic_moments.moments.cpu().numpy(),
                self._actor_moments.count,
            )
        if self._colored_noise is not None:
            state["colored_noise"] = self._colored_noise.state()
        if self._sde_noise is not None:
            state["sde_noise"] = self._sde_noise.state()
        if self._windows is not None:
            state["windows"] = [
                [(_to_numpy(obs), _to_numpy(action), reward) for obs, action, reward in window] for window in self._windows
            ]
        return state

    def _restore_online_state(self, state: dict[str, Any]) -> None:
        self._n_updates = state["n_updates"]
        self._episode_n_envs = state["episode_n_envs"]
        self._generator.set_state(th.from_numpy(state["generator"]))
        if "traces" in state:
            self._actor_traces = EligibilityTraces.from_array(state["traces"][0], self.device)
            self._critic_traces = EligibilityTraces.from_array(state["traces"][1], self.device)
        if "reward_scaler" in state and self._reward_scaler is not None:
            self._reward_scaler.restore(state["reward_scaler"])
        if "second_moments" in state and self.update_rule == "adaptive_obgd":
            actor_moments, critic_moments, count = state["second_moments"]
            self._actor_moments = SecondMoments.from_array(actor_moments, count, self.device)
            self._critic_moments = SecondMoments.from_array(critic_moments, count, self.device)
        if "colored_noise" in state and self.noise_beta > 0.0:
            self._colored_noise = ColoredNoise.from_state(state["colored_noise"])
        if "sde_noise" in state and self._sde_noise is not None:
            self._sde_noise.restore(state["sde_noise"])
        if "windows" in state:
            self._windows = [deque(self._window_entry(*entry) for entry in window) for window in state["windows"]]

    @staticmethod
    def _window_entry(obs: Any, action: Any, reward: float) -> tuple[Any, np.ndarray, float]:
        return _to_numpy(obs), np.asarray(_to_numpy(action)), reward

    # ------------------------------------------------------------------ acting

    def _to_env_actions(self, actions: th.Tensor | np.ndarray) -> np.ndarray:
        env_actions = actions.cpu().numpy() if isinstance(actions, th.Tensor) else actions
        env_actions = env_actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc,arg-type]
        if isinstance(self.action_space, spaces.Box):
            if self.policy.squash_output:
                return self.policy.unscale_action(env_actions)
            # np.clip's numbers, without its Python-level dispatch
            return np.minimum(np.maximum(env_actions, self.action_space.low), self.action_space.high)
        return env_actions

    def _exploration_noise(self) -> np.ndarray | None:
        """
        The standard-normal draws of this step's Gaussian actions when they are colored (None: the backend draws
        white noise); with gSDE, sets the exploration matrices for the policy's current std, and returns their
        standard-normal draws to the NumPy backend, which computes the noise itself.
        """
        if self._sde_noise is not None:
            if isinstance(self._backend, NumpyBackend):
                return self._sde_noise.eps_numpy  # the policy's matrices are refreshed once per rollout chunk
            self._sde_noise.apply(self.policy)
            return None
        return None if self._colored_noise is None else self._colored_noise.sample()

    def _check_obs(self, raw_obs: Any) -> None:
        if not all_finite(raw_obs):
            raise NonFiniteError(f"OneStepAC: non-finite observation from the environment at step {self.num_timesteps}")

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
        if new_episodes or self._episode_n_envs != self.n_envs:
            self._reset_episode_state()
        self._check_obs(self._last_obs)
        if new_episodes and self.obs_normalizer is not None:
            self.obs_normalizer.update(self._last_obs)  # type: ignore[arg-type]
        if not is_view_of(self._trained_params, self._flat_params):
            self._flatten_parameters()  # the policy was moved (policy.to) since the last call
        self._setup_backend()
        assert self._backend is not None
        self._obs_input = self._backend.observe(self._last_obs)
        self._track_stats = log_interval is not None and len(self.logger.output_formats) > 0
        callback.on_training_start(locals(), globals())

        n_threads = th.get_num_threads()
        th.set_num_threads(1)
        # NumPy's BLAS too: from about 16 envs its matrix products go multi-threaded, which collapses (4x slower,
        # measured) as soon as another process holds a core.
        blas_limits = threadpool_limits(limits=1, user_api="blas")
        try:
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
        finally:
            blas_limits.restore_original_limits()  # first: torch's own BLAS may be among them
            th.set_num_threads(n_threads)
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
        if self._windows is not None:
            step = self._n_step_step
        elif self.update_rule == "optimizer":
            step = self._optimizer_step
        else:
            step = self._one_step
        for _ in range(n_rollout_steps):
            self._update_current_progress_remaining(self.num_timesteps, self._total_timesteps)
            new_obs, rewards, dones, infos = step(env)[:4]
            callback.update_locals(locals())
            if not callback.on_step():
                self._refresh_sde_matrices()
                return False
            self._update_info_buffer(infos, dones)
        self._refresh_sde_matrices()
        callback.on_rollout_end()
        return True

    def _refresh_sde_matrices(self) -> None:
        """With gSDE, set the policy's exploration matrices (what ``predict`` samples with) for its current std."""
        if self._sde_noise is not None:
            self._sde_noise.apply(self.policy)

    def _env_step(self, env: VecEnv, actions: th.Tensor | np.ndarray) -> Transition:
        """Step the envs and check and prepare what the update needs, changing nothing of the model."""
        new_obs, rewards, dones, infos = env.step(self._to_env_actions(actions))
        pending_steps = self.num_timesteps + env.num_envs
        # np.count_nonzero: the cheapest test of a small array (a.all() and a.any() cost several times more)
        if np.count_nonzero(np.isfinite(rewards)) != rewards.size:
            raise NonFiniteError(f"OneStepAC: non-finite reward {rewards} from the environment at step {pending_steps}")
        if np.count_nonzero(dones):
            truncated = np.array([info.get("TimeLimit.truncated", False) for info in infos], dtype=bool) & dones
            bootstrap_obs = with_terminal_obs(new_obs, infos, truncated) if truncated.any() else new_obs
        else:
            truncated, bootstrap_obs = dones, new_obs
        if not (all_finite(new_obs) and (bootstrap_obs is new_obs or all_finite(bootstrap_obs))):
            raise NonFiniteError(f"OneStepAC: non-finite observation from the environment at step {pending_steps}")
        scaled = None if self._reward_scaler is None else self._reward_scaler.scale(rewards)
        learn_rewards = rewards.astype(np.float32) if scaled is None else scaled.rewards
        return Transition(new_obs, rewards, dones, infos, bootstrap_obs, learn_rewards, scaled, dones & ~truncated)

    def _one_step(self, env: VecEnv) -> Transition:
        """One step of every env and its update, with ObGD's bounded step or plain SGD, and eligibility traces."""
        backend = self._backend
        assert backend is not None
        compiled = self._sequential or self._one_env_kernel  # the compiled call recomputes the actor's pass
        actions, actor = backend.act(self._obs_input, self._exploration_noise(), with_state=not compiled)
        step = self._env_step(env, actions)
        if compiled:
            self._commit(step, self._sequential_one_step(step, actions))
            return step
        # V(s) and V(s') in one pass, both with the parameters and statistics before this step's update.
        values, next_values, critic = backend.values(self._obs_input, backend.observe(step.bootstrap_obs))
        delta = self._td_errors(step, values, next_values)
        actor_grads, critic_grads, log_prob, entropy = backend.row_gradients(actor, critic, self._entropy_weights(delta))
        update = self._bounded_update(
            delta, actor_grads, critic_grads, backend.actor_params, backend.critic_params, log_prob, entropy
        )
        self._commit(step, update)
        return step

    def _sequential_one_step(self, step: Transition, actions: Any) -> PendingUpdate:
        """The one-step update of ``combine_envs="sequential"``: each env's transition in turn."""
        backend = self._backend
        assert backend is not None
        rows = np.arange(self.n_envs)
        discounts = (self.gamma * ~step.terminated).astype(np.float32)
        traces = rows if self._actor_traces is not None else None
        next_input = backend.observe(step.bootstrap_obs)
        return self._sequential_update(
            Rows(self._obs_input, _to_numpy(actions), step.learn_rewards, discounts, next_input, rows, traces)
        )

    def _optimizer_step(self, env: VecEnv) -> Transition:
        """One step of every env and its update by the policy's torch optimizer (``update_rule="optimizer"``)."""
        backend = self._backend
        assert backend is not None
        one_env_kernel = self._optimizer_kernel and self.n_envs == 1
        actions, actor = backend.act(
            self._obs_input, self._exploration_noise(), with_state=not (self._sequential or one_env_kernel)
        )
        step = self._env_step(env, actions)
        if self._sequential:
            self._commit(step, self._sequential_one_step(step, actions))
            return step
        if one_env_kernel:
            self._commit(step, self._optimizer_kernel_update(step, actions))
            return step
        values, next_values, critic = backend.values(self._obs_input, backend.observe(step.bootstrap_obs))
        delta = self._td_errors(step, values, next_values)
        self._commit(step, self._optimizer_update(actor, critic, delta))
        return step

    def _optimizer_kernel_update(self, step: Transition, actions: np.ndarray) -> PendingUpdate:
        """
        :meth:`_optimizer_update` for one env in one compiled call (:meth:`_optimizer_kernel_rows` with one row): V(s)
        and V(s'), the TD error, the losses' gradient (written into the flat gradient) and Adam's step, applied only if
        every new parameter is finite.
        """
        backend = self._backend
        assert isinstance(backend, NumpyBackend)
        discounts = np.array([0.0 if step.terminated[0] else self.gamma], dtype=np.float32)
        rows = Rows(self._obs_input, actions, step.learn_rewards, discounts, backend.observe(step.bootstrap_obs), _ROW_0, None)
        actor_lr, critic_lr = self._optimizer_step_sizes()
        stats = self._optimizer_kernel_rows(rows, actor_lr, critic_lr)
        return PendingUpdate(None, None, self._update_stats(stats[:, 0], stats[:, 1], stats[:, 2], actor_lr, critic_lr))

    def _optimizer_kernel_rows(self, rows: Rows, actor_lr: float, critic_lr: float) -> np.ndarray:
        """
        One Adam step per row, in order, each at the parameters the rows before it left, in one compiled call
        (:func:`~sb3_ac_plus.one_step_ac.optimizer_kernels.optimizer_rows`): per row V(s) and V(s'), the TD error, the
        losses' gradient (written into the flat gradient) and Adam's step, applied only if every new parameter is
        finite. A refused row changes nothing itself; the rows before it stay applied (the caller undoes them).

        :param rows: the transitions (NumPy, as the backend takes them)
        :return: each row's ``delta``, ``log pi`` and entropy, ``(n_rows, 3)``
        :raises NonFiniteError: naming the first row refused
        """
        backend = self._backend
        flat = self._flat_optimizer
        assert isinstance(backend, NumpyBackend) and flat is not None
        networks = backend.networks
        n_rows = rows.n_rows
        kind = SDE if networks.sde else (GAUSSIAN if networks.gaussian else CATEGORICAL)
        if networks.gaussian:
            box_actions = np.asarray(rows.actions, dtype=np.float32).reshape(n_rows, -1)
            discrete_actions = np.zeros(n_rows, dtype=np.int64)
        else:
            box_actions = np.zeros((n_rows, 0), dtype=np.float32)
            discrete_actions = np.asarray(rows.actions, dtype=np.int64).reshape(-1)
        stats = np.empty((n_rows, 3), dtype=np.float64)
        result = [APPLIED, 0]

        def update(views: list[tuple], hypers: list[np.ndarray]) -> int:
            result[0], result[1] = optimizer_rows(
                networks.actor.params,
                self._flat_grad_numpy,
                backend.n_actor,
                *networks.kernel_mlps,
                np.ascontiguousarray(rows.obs, dtype=np.float32),
                np.ascontiguousarray(rows.next_obs, dtype=np.float32),
                np.asarray(rows.next_index, dtype=np.int64),
                np.asarray(rows.returns, dtype=np.float32),
                np.asarray(rows.discounts, dtype=np.float32),
                kind,
                discrete_actions,
                box_actions,
                networks.log_std_offset,
                networks.sde_epsilon,
                self.ent_coef,
                views[0],
                views[1],
                hypers[0],
                hypers[1],
                stats,
            )
            return result[1]

        flat.fused_steps([actor_lr, critic_lr], update)
        if result[0] != APPLIED:
            raise self._kernel_error(result[0], result[1])
        return stats

    def _n_step_step(self, env: VecEnv) -> Transition:
        """One step of every env and the update of each state whose k-step return it completes (``n_steps > 1``)."""
        backend = self._backend
        assert backend is not None
        raw_obs = self._last_obs
        with th.no_grad():
            actions, _ = backend.act(self._obs_input, self._exploration_noise())
        step = self._env_step(env, actions)
        self._commit(step, self._n_step_update(raw_obs, _to_numpy(actions), step))
        return step

    def _td_errors(self, step: Transition, values: Any, next_values: Any) -> Any:
        """The one-step TD errors ``r + gamma * V(s') * (1 - terminated) - V(s)``, NumPy or torch as the values are."""
        not_terminated: Any = (~step.terminated).astype(np.float32)  # float32 throughout, as the parameters
        rewards: Any = step.learn_rewards
        if isinstance(values, th.Tensor):
            not_terminated = th.as_tensor(not_terminated, device=values.device)
            rewards = th.as_tensor(rewards, device=values.device)
        delta = rewards + self.gamma * not_terminated * next_values - values
        self._check_delta(delta)
        return delta

    def _entropy_weights(self, delta: Any) -> Any:
        """
        The entropy's weight in each row's actor objective, ``ent_coef * sign(delta)``: the trace then carries
        ``|delta| * ent_coef * grad H`` once multiplied by ``delta``, as in stream AC(lambda).
        """
        if isinstance(delta, th.Tensor):
            return self.ent_coef * delta.sign()
        return (self.ent_coef * np.sign(delta)).astype(np.float32)

    def _n_step_update(self, raw_obs: Any, actions: np.ndarray, step: Transition) -> PendingUpdate:
        """
        Add this step to a copy of each env's window and compute the update of every state whose k-step return is now
        known; the copies become the windows when the update is committed. The windows keep raw observations and
        actions (NumPy), so each due state is seen with the current parameters and normalisation statistics.

        :param raw_obs: the observations the actions were taken in, as the VecEnv gave them
        :param actions: the actions taken, as the policy sampled them (before clipping)
        :param step: this step's transition
        """
        assert self._windows is not None
        windows = [deque(window) for window in self._windows]
        rows_obs, rows_actions, rows_returns, rows_discounts, rows_env = [], [], [], [], []
        for env_idx, window in enumerate(windows):
            window.append((obs_row(raw_obs, env_idx), actions[env_idx], float(step.learn_rewards[env_idx])))
            if not step.dones[env_idx] and len(window) < self.n_steps:
                continue
            # Done: every state left in the window is due (truncated returns). Otherwise the oldest one is.
            n_due = len(window) if step.dones[env_idx] else 1
            bootstrap = 0.0 if step.terminated[env_idx] else 1.0
            rewards_in_window = [entry[2] for entry in window]
            for start in range(n_due):
                horizon = len(window) - start
                rows_obs.append(window[start][0])
                rows_actions.append(window[start][1])
                rows_returns.append(sum(self.gamma**i * r for i, r in enumerate(rewards_in_window[start:])))
                rows_discounts.append(bootstrap * self.gamma**horizon)
                rows_env.append(env_idx)
            for _ in range(n_due):
                window.popleft()
        if not rows_env:
            return PendingUpdate(None, None, None, applied=False, windows=windows)
        backend = self._backend
        assert backend is not None
        batch_obs = backend.observe(stack_obs_rows(rows_obs))
        # One env with one due state: every combine_envs is the same update, which the compiled kernel computes fastest
        # (several due states at an episode's end keep combine_envs's update).
        if self._sequential or (self._one_env_kernel and len(rows_env) == 1):
            rows = Rows(
                batch_obs,
                np.stack(rows_actions),
                np.asarray(rows_returns, dtype=np.float32),
                np.asarray(rows_discounts, dtype=np.float32),
                backend.observe(step.bootstrap_obs),
                np.asarray(rows_env),
                None,
            )
            update = self._sequential_update(rows)
            return update._replace(windows=windows)
        # V of the due states and of every env's next state in one pass, with the parameters before this update.
        values, next_values, critic = backend.values(batch_obs, backend.observe(step.bootstrap_obs))
        actor = backend.evaluate(batch_obs, np.stack(rows_actions))
        returns: Any = np.asarray(rows_returns, dtype=np.float32)
        discounts: Any = np.asarray(rows_discounts, dtype=np.float32)
        index: Any = np.asarray(rows_env)
        if isinstance(values, th.Tensor):
            returns, discounts = th.as_tensor(returns, device=self.device), th.as_tensor(discounts, device=self.device)
            index = th.as_tensor(index, device=self.device)
        delta = returns + discounts * next_values[index] - values
        self._check_delta(delta)
        if self.update_rule == "optimizer":
            return self._optimizer_update(actor, critic, delta)._replace(windows=windows)
        actor_grads, critic_grads, log_prob, entropy = backend.row_gradients(actor, critic, self._entropy_weights(delta))
        update = self._bounded_update(
            delta, actor_grads, critic_grads, backend.actor_params, backend.critic_params, log_prob, entropy
        )
        return update._replace(windows=windows)

    def _check_delta(self, delta: th.Tensor | np.ndarray) -> None:
        if not math.isfinite(float(delta.sum())):
            raise NonFiniteError(
                f"OneStepAC: non-finite TD error {delta.tolist()} at step {self.num_timesteps} "
                "(the value estimates diverged; try smaller step sizes); the update was not applied"
            )

    def _bounded_update(
        self,
        delta: Any,
        actor_grads: Any,
        critic_grads: Any,
        actor_params: Any,
        critic_params: Any,
        log_prob: Any,
        entropy: Any,
    ) -> PendingUpdate:
        """
        Propose the traces and the steps ``params += step * delta * direction`` of the actor's and the critic's parts
        of the parameter vector (the direction is the trace, divided by the RMS of past updates with
        ``"adaptive_obgd"``), combined over envs as ``combine_envs`` says, and check them all; nothing is written.
        Arguments are all torch tensors or all NumPy arrays.

        :param delta: TD errors ``(n_rows,)``
        :param actor_grads: gradients of the actor objective ``(n_rows, n_actor_params)``
        :param critic_grads: gradients of V ``(n_rows, n_critic_params)``
        :param actor_params: the actor's part of the parameter vector
        :param critic_params: the critic's part of the parameter vector
        :param log_prob: log pi(a|s) of each row (for logging)
        :param entropy: entropy of each row (for logging), or None
        :return: the checked update, for :meth:`_commit`
        """
        self._check_gradients(actor_grads, critic_grads)
        progress = self._current_progress_remaining
        actor_lr, critic_lr = self.lr_schedule(progress), self.critic_lr_schedule(progress)
        if self._actor_traces is not None and self._critic_traces is not None:
            decay = self.gamma * self.trace_lambda
            actor_grads = self._actor_traces.propose(actor_grads, decay)
            critic_grads = self._critic_traces.propose(critic_grads, decay)
        if self._actor_moments is not None and self._critic_moments is not None:
            actor_grads = self._actor_moments.propose(delta, actor_grads)
            critic_grads = self._critic_moments.propose(delta, critic_grads)
        scale = delta / self.n_envs if self.combine_envs == "mean" else delta
        actor_steps, critic_steps, actor_weights, critic_weights = self._checked_weights(
            delta, scale, actor_grads, critic_grads, actor_lr, critic_lr, self.combine_envs == "bounded_sum"
        )
        stats = self._update_stats(delta, log_prob, entropy, actor_steps, critic_steps)
        return PendingUpdate((actor_params, actor_grads, actor_weights), (critic_params, critic_grads, critic_weights), stats)

    def _check_gradients(self, actor_grads: Any, critic_grads: Any) -> None:
        if not math.isfinite(float(actor_grads.sum() + critic_grads.sum())):
            raise NonFiniteError(f"OneStepAC: non-finite gradient at step {self.num_timesteps}; the update was not applied")

    def _checked_weights(
        self,
        delta: Any,
        scale: Any,
        actor_directions: Any,
        critic_directions: Any,
        actor_lr: float,
        critic_lr: float,
        combined: bool,
    ) -> tuple[Any, Any, Any, Any]:
        """
        The step sizes (ObGD's, or the plain step sizes with SGD) and the weights ``step * scale`` of each row's update
        direction, checked to keep the parameters finite.

        :return: the actor's and the critic's step sizes, then their weights
        """
        actor_norms, critic_norms = l1_norms(actor_directions), l1_norms(critic_directions)
        actor_steps: Any = actor_lr
        critic_steps: Any = critic_lr
        if self.update_rule != "sgd":
            actor_steps = obgd_step_sizes(delta, actor_norms, actor_lr, self.actor_kappa, combined)
            critic_steps = obgd_step_sizes(delta, critic_norms, critic_lr, self.critic_kappa, combined)
        actor_weights, critic_weights = actor_steps * scale, critic_steps * scale
        if not (update_is_safe(actor_weights, actor_norms) and update_is_safe(critic_weights, critic_norms)):
            raise self._unsafe_update_error()
        return actor_steps, critic_steps, actor_weights, critic_weights

    def _unsafe_update_error(self) -> NonFiniteError:
        return NonFiniteError(
            f"OneStepAC: the update at step {self.num_timesteps} would make parameters non-finite "
            "(the step sizes are too large for these rewards); it was not applied"
        )

    def _update_stats(
        self, delta: Any, log_prob: Any, entropy: Any, actor_steps: Any, critic_steps: Any
    ) -> list[float] | None:
        """:return: the logged statistics of an update's rows (``_STAT_NAMES``), or None when nothing is logged"""
        if not self._track_stats:
            return None
        return [
            float(abs(delta).mean()),
            float(0.5 * (delta * delta).mean()),
            float(-(delta * log_prob).mean()),
            float(entropy.mean()) if entropy is not None else 0.0,
            _mean(actor_steps),
            _mean(critic_steps),
        ]

    @property
    def _sequential(self) -> bool:
        """Whether the rows of a VecEnv step are learned from one after the other (``combine_envs="sequential"``)."""
        return self.combine_envs == "sequential" and self.n_envs > 1

    @property
    def _one_env_kernel(self) -> bool:
        """
        Whether a single env's update of one row (a one-step update, or an n-step one with a single due state) runs as
        the compiled sequential kernel: with one row every ``combine_envs`` is the same update, and one compiled call
        computes it faster than the batched operations (rounded differently, in the last bits).
        """
        backend = self._backend
        return self.n_envs == 1 and isinstance(backend, NumpyBackend) and self._kernel_computes_sequential(backend)

    def _sequential_update(self, rows: Rows) -> PendingUpdate:
        """
        ``combine_envs="sequential"``: learn from the rows one after the other, each with the parameters (and traces and
        second moments) the rows before it left, as a single env would learn from them in that order. The parameters
        are written row by row; if a row fails its checks, they are put back as they were before the first row and
        nothing is committed.

        :param rows: the transitions, in the order they are learned from
        :return: the update, already applied (``rows_in_place``), for :meth:`_commit`
        """
        backend = self._backend
        assert backend is not None
        if self.update_rule == "optimizer":
            return self._sequential_optimizer_steps(rows)
        progress = self._current_progress_remaining
        actor_lr, critic_lr = self.lr_schedule(progress), self.critic_lr_schedule(progress)
        traces = (self._actor_traces, self._critic_traces)
        moments = (self._actor_moments, self._critic_moments)
        for state in (*traces, *moments):
            if state is not None:
                state.begin_rows()
        kernel = backend if isinstance(backend, NumpyBackend) and self._kernel_computes_sequential(backend) else None
        if kernel is not None and rows.n_rows == 1:
            # The kernel checks a row before it writes its parameters: with one row there is nothing to put back.
            return PendingUpdate(None, None, self._sequential_kernel(kernel, rows, actor_lr, critic_lr), rows_in_place=1)
        saved_params = self._flat_params.clone()
        try:
            if kernel is not None:
                stats = self._sequential_kernel(kernel, rows, actor_lr, critic_lr)
            else:
                stats = self._sequential_rows(rows, actor_lr, critic_lr)
        except NonFiniteError:
            with th.no_grad():
                self._flat_params.copy_(saved_params)
            raise
        return PendingUpdate(None, None, stats, rows_in_place=rows.n_rows)

    def _kernel_computes_sequential(self, backend: NumpyBackend) -> bool:
        """Whether :func:`~sb3_ac_plus.one_step_ac.sequential_kernels.sequential_rows` computes this configuration."""
        return self.update_rule in ("obgd", "adaptive_obgd", "sgd") and not backend.networks.sde

    def _row_terms(self, rows: Rows, row: int) -> tuple[Any, Any, Any, Any, Any]:
        """
        One row's TD error and gradients with the parameters as they are now (see :meth:`_sequential_update`).

        :return: ``delta`` ``(1,)``, the actor's and the critic's gradients ``(1, n_params)``, log pi and the entropy
        """
        backend = self._backend
        assert backend is not None
        obs = obs_slice(rows.obs, row)
        values, next_values, critic = backend.values(obs, obs_slice(rows.next_obs, int(rows.next_index[row])))
        actor = backend.evaluate(obs, rows.actions[row : row + 1])
        row_return: Any = rows.returns[row : row + 1]
        discount: Any = rows.discounts[row : row + 1]
        if isinstance(values, th.Tensor):
            row_return = th.as_tensor(row_return, device=values.device)
            discount = th.as_tensor(discount, device=values.device)
        delta = row_return + discount * next_values - values
        self._check_delta(delta)
        actor_grads, critic_grads, log_prob, entropy = backend.row_gradients(actor, critic, self._entropy_weights(delta))
        self._check_gradients(actor_grads, critic_grads)
        return delta, actor_grads, critic_grads, log_prob, entropy

    def _sequential_rows(self, rows: Rows, actor_lr: float, critic_lr: float) -> list[float] | None:
        """:meth:`_sequential_update` with the backend's operations, one row at a time (any backend, bounded rules)."""
        backend = self._backend
        assert backend is not None
        actor_traces, critic_traces = self._actor_traces, self._critic_traces
        actor_moments, critic_moments = self._actor_moments, self._critic_moments
        row_stats: list[list[float]] = []
        for row in range(rows.n_rows):
            delta, actor_dir, critic_dir, log_prob, entropy = self._row_terms(rows, row)
            if actor_traces is not None and critic_traces is not None and rows.trace_index is not None:
                decay = self.gamma * self.trace_lambda
                actor_dir = actor_traces.propose_row(actor_dir, decay, int(rows.trace_index[row]))
                critic_dir = critic_traces.propose_row(critic_dir, decay, int(rows.trace_index[row]))
            if actor_moments is not None and critic_moments is not None:
                actor_dir = actor_moments.propose_row(delta, actor_dir, row)
                critic_dir = critic_moments.propose_row(delta, critic_dir, row)
            actor_steps, critic_steps, actor_weights, critic_weights = self._checked_weights(
                delta, delta, actor_dir, critic_dir, actor_lr, critic_lr, False
            )
            with th.no_grad():
                add_weighted_(backend.actor_params, actor_dir, actor_weights)
                add_weighted_(backend.critic_params, critic_dir, critic_weights)
            if (stats := self._update_stats(delta, log_prob, entropy, actor_steps, critic_steps)) is not None:
                row_stats.append(stats)
        return [float(value) for value in np.mean(row_stats, axis=0)] if row_stats else None

    def _sequential_optimizer_steps(self, rows: Rows) -> PendingUpdate:
        """
        :meth:`_sequential_update` with ``update_rule="optimizer"``: one optimizer step per row, in order, each on the
        row's loss at the parameters the previous steps left; all of them undone (parameters and optimizer state) if
        a row fails its checks. With NumPy's Adam on the ``[actor | critic]`` groups each row is one compiled call, as
        one env's update is.
        """
        actor_lr, critic_lr = self._optimizer_step_sizes()
        optimizer = self.policy.optimizer
        flat = self._flat_optimizer
        if flat is not None:
            flat.save(self._flat_params)
        else:
            saved_params, saved_state = self._snapshot_optimizer()
        row_stats: list[list[float]] = []
        try:
            if self._optimizer_kernel:
                terms = self._optimizer_kernel_rows(rows, actor_lr, critic_lr)
                return PendingUpdate(
                    None, None, self._update_stats(terms[:, 0], terms[:, 1], terms[:, 2], actor_lr, critic_lr)
                )
            for row in range(rows.n_rows):
                delta, actor_grads, critic_grads, log_prob, entropy = self._row_terms(rows, row)
                numpy_rows = isinstance(actor_grads, np.ndarray)
                flat_grad: Any = self._flat_grad.numpy() if numpy_rows else self._flat_grad
                critic_start = flat_grad.shape[0] - critic_grads.shape[1]
                weight = -float(delta[0])
                with th.no_grad():
                    flat_grad[:] = 0.0
                    flat_grad[: actor_grads.shape[1]] += weight * actor_grads[0]
                    flat_grad[critic_start:] += weight * critic_grads[0]
                    if flat is not None:
                        flat.raw_step([actor_lr, critic_lr])
                    else:
                        for param, grad in zip(self._trained_params, self._grad_views, strict=True):
                            param.grad = grad
                        optimizer.step()
                if not math.isfinite(float(self._flat_params.sum())):
                    raise self._optimizer_step_error()
                if (stats := self._update_stats(delta, log_prob, entropy, actor_lr, critic_lr)) is not None:
                    row_stats.append(stats)
        except NonFiniteError:
            if flat is not None:
                flat.restore(self._flat_params)
            else:
                self._restore_optimizer(saved_params, saved_state)
            raise
        mean_stats = [float(value) for value in np.mean(row_stats, axis=0)] if row_stats else None
        return PendingUpdate(None, None, mean_stats)

    def _sequential_kernel(self, backend: NumpyBackend, rows: Rows, actor_lr: float, critic_lr: float) -> list[float] | None:
        """:meth:`_sequential_update` in one compiled call (the NumPy backend's common policies, ObGD or SGD)."""
        networks = backend.networks
        n_rows = rows.n_rows
        actions = rows.actions
        if self._actor_traces is not None and self._critic_traces is not None and rows.trace_index is not None:
            actor_traces, critic_traces = self._actor_traces.proposed.numpy(), self._critic_traces.proposed.numpy()
            trace_index = np.asarray(rows.trace_index, dtype=np.int64)
        else:
            actor_traces = critic_traces = np.zeros((0, 0), dtype=np.float32)
            trace_index = np.full(n_rows, -1, dtype=np.int64)
        gaussian = networks.gaussian
        stats = np.empty((n_rows, 5), dtype=np.float64)
        status, failed_row = sequential_rows(
            networks.actor.params,
            backend.n_actor,
            *networks.kernel_mlps,
            np.ascontiguousarray(rows.obs, dtype=np.float32),
            np.ascontiguousarray(rows.next_obs, dtype=np.float32),
            np.asarray(rows.next_index, dtype=np.int64),
            np.asarray(rows.returns, dtype=np.float32),
            np.asarray(rows.discounts, dtype=np.float32),
            gaussian,
            np.zeros(0, dtype=np.int64) if gaussian else np.asarray(actions, dtype=np.int64).reshape(-1),
            np.asarray(actions, dtype=np.float32).reshape(n_rows, -1) if gaussian else np.zeros((0, 0), dtype=np.float32),
            networks.log_std_offset,
            self.ent_coef,
            actor_traces,
            critic_traces,
            trace_index,
            self.gamma * self.trace_lambda,
            actor_lr,
            critic_lr,
            self.actor_kappa,
            self.critic_kappa,
            self.update_rule != "sgd",
            *self._kernel_moments(),
            stats,
        )
        if status != APPLIED:
            raise self._kernel_error(status, failed_row)
        return self._update_stats(stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3], stats[:, 4])

    def _kernel_error(self, status: int, row: int) -> NonFiniteError:
        """:return: the error for a compiled update's failure ``status`` in ``row`` (nothing of it was applied)"""
        if status == NON_FINITE_DELTA:
            return NonFiniteError(
                f"OneStepAC: non-finite TD error in row {row} at step {self.num_timesteps} "
                "(the value estimates diverged; try smaller step sizes); the update was not applied"
            )
        if status == NON_FINITE_GRADIENT:
            return NonFiniteError(f"OneStepAC: non-finite gradient at step {self.num_timesteps}; the update was not applied")
        if self.update_rule == "optimizer":
            return self._optimizer_step_error()
        return self._unsafe_update_error()

    def _kernel_moments(self) -> tuple[np.ndarray, np.ndarray, int, float, float]:
        """The second-moment arguments of the sequential kernel: AdaptiveObGD's proposed moments, or empty arrays."""
        actor, critic = self._actor_moments, self._critic_moments
        if actor is None or critic is None:
            empty = np.zeros(0, dtype=np.float32)
            return empty, empty, 0, 0.0, 0.0
        assert actor.count == critic.count
        return actor.proposed_numpy(), critic.proposed_numpy(), actor.count, actor.beta2, actor.eps

    def _commit_update(self, step: Transition, update: PendingUpdate) -> None:
        """Apply the update's parameter steps (unless applied already) and commit its traces and second moments."""
        if update.actor is not None and update.critic is not None:
            add_weighted_(*update.actor)
            add_weighted_(*update.critic)
        elif update.rows_in_place == 0:
            return
        if self._actor_traces is not None and self._critic_traces is not None:
            ended = np.flatnonzero(step.dones) if np.count_nonzero(step.dones) else None
            self._actor_traces.commit(ended)
            self._critic_traces.commit(ended)
        if self._actor_moments is not None and self._critic_moments is not None:
            self._actor_moments.commit(max(update.rows_in_place, 1))
            self._critic_moments.commit(max(update.rows_in_place, 1))

    def _commit(self, step: Transition, update: PendingUpdate) -> None:
        """Apply a checked update and move every piece of online state past this step."""
        self._commit_update(step, update)
        if update.windows is not None:
            self._windows = update.windows
        if np.count_nonzero(step.dones):
            ended = np.flatnonzero(step.dones)
            if self._colored_noise is not None:
                self._colored_noise.reset(ended)
            if self._sde_noise is not None:
                self._sde_noise.resample(ended)
        if step.scaled is not None and self._reward_scaler is not None:
            self._reward_scaler.commit(step.scaled, step.dones)
        backend = self._backend
        assert backend is not None
        if isinstance(backend, NumpyBackend):
            if backend.stats is not None:
                backend.stats.update(step.new_obs)  # the normaliser's only statistics, without the lookups
        elif (normalizer := self.obs_normalizer) is not None:
            normalizer.update(step.new_obs)
        self._obs_input = backend.observe(step.new_obs)
        self._last_obs = step.new_obs
        self._last_episode_starts = step.dones
        self.num_timesteps += len(step.dones)
        if update.applied:
            self._n_updates += 1
        if self._sde_noise is not None and self.sde_sample_freq > 0 and self._n_updates % self.sde_sample_freq == 0:
            self._sde_noise.resample(np.arange(self.n_envs))
        if update.stats is not None:
            self._accumulate_log_stats(update.stats)

    def _optimizer_update(self, actor: Any, critic: Any, delta: Any) -> PendingUpdate:
        """
        The textbook form: minimise the one-step actor-critic loss with the policy's torch optimizer. The optimizer
        writes the parameters itself, so its step is undone (parameters and optimizer state) when it makes a
        parameter non-finite.

        :param actor: the backend's actor state (from ``act`` or ``evaluate``)
        :param critic: the backend's critic state (from ``values``)
        :param delta: the TD errors of the rows
        """
        assert self._backend is not None
        if self.combine_envs == "each":
            actor_grads, critic_grads, log_prob, entropy = self._backend.row_gradients(
                actor, critic, self._entropy_weights(delta)
            )
            return self._optimizer_steps_per_row(-delta, actor_grads, critic_grads, log_prob, entropy, delta)
        actor_lr, critic_lr = self._optimizer_step_sizes()
        scale = 1.0 / self.n_envs if self.combine_envs == "mean" else 1.0
        optimizer = self.policy.optimizer
        if isinstance(self._backend, NumpyBackend):
            # The per-row gradients of log pi + ent_coef sign(delta) H and of V, weighted by -delta: the gradient of
            # the loss below, written into the flat gradient whose views are the parameters' .grad.
            actor_grads, critic_grads, log_prob, entropy = self._backend.row_gradients(
                actor, critic, self._entropy_weights(delta)
            )
            weights = (-scale * delta).astype(np.float32)
            flat_grad = self._flat_grad.numpy()
            n_actor = actor_grads.shape[1]
            np.matmul(weights, actor_grads, out=flat_grad[:n_actor])
            np.matmul(weights, critic_grads, out=flat_grad[n_actor:])
            finite = math.isfinite(float(flat_grad.sum()))
            if finite and self._flat_optimizer is not None:
                if not self._flat_optimizer.step([actor_lr, critic_lr], self._flat_params):
                    raise self._optimizer_step_error()
                return PendingUpdate(None, None, self._update_stats(delta, log_prob, entropy, actor_lr, critic_lr))
            for param, grad in zip(self._trained_params, self._grad_views, strict=True):
                param.grad = grad
        else:
            log_prob, entropy = actor.log_prob, actor.entropy
            actor_objective = delta * log_prob
            if entropy is not None and self.ent_coef > 0.0:
                actor_objective = actor_objective + (self.ent_coef * delta.abs()) * entropy
            actor_loss = -actor_objective.sum() * scale
            critic_loss = -(delta * critic).sum() * scale  # gradient of 0.5 * delta^2 with a fixed target
            optimizer.zero_grad(set_to_none=True)
            (actor_loss + critic_loss).backward()
            grads = [p.grad for p in self._trained_params if p.grad is not None]
            finite = math.isfinite(float(sum(g.sum() for g in grads)))
            log_prob = log_prob.detach()
        if not finite:
            raise NonFiniteError(f"OneStepAC: non-finite gradient at step {self.num_timesteps}; the update was not applied")
        saved_params, saved_state = self._snapshot_optimizer()
        optimizer.step()
        if not math.isfinite(float(self._flat_params.sum())):
            self._restore_optimizer(saved_params, saved_state)
            raise self._optimizer_step_error()
        return PendingUpdate(None, None, self._update_stats(delta, log_prob, entropy, actor_lr, critic_lr))

    def _optimizer_steps_per_row(
        self, weights: Any, actor_grads: Any, critic_grads: Any, log_prob: Any, entropy: Any, delta: Any
    ) -> PendingUpdate:
        """
        ``combine_envs="each"``: one optimizer step per row, in order, each on that row's gradient of the loss
        (``weight`` times the row's actor and critic gradients, added where they share parameters); all of them undone
        if the parameters end non-finite. Arrays are all NumPy or all torch, as the backend gives them.
        """
        if not math.isfinite(float(actor_grads.sum() + critic_grads.sum())):
            raise NonFiniteError(f"OneStepAC: non-finite gradient at step {self.num_timesteps}; the update was not applied")
        actor_lr, critic_lr = self._optimizer_step_sizes()
        optimizer = self.policy.optimizer
        numpy_rows = isinstance(actor_grads, np.ndarray)
        flat_grad: Any = self._flat_grad.numpy() if numpy_rows else self._flat_grad
        n_actor, n_critic = actor_grads.shape[1], critic_grads.shape[1]
        critic_start = flat_grad.shape[0] - n_critic
        flat = self._flat_optimizer
        if flat is not None:
            flat.save(self._flat_params)
        else:
            saved_params, saved_state = self._snapshot_optimizer()
            for param, grad in zip(self._trained_params, self._grad_views, strict=True):
                param.grad = grad
        with th.no_grad():
            for row in range(weights.shape[0]):
                weight = float(weights[row])
                flat_grad[:] = 0.0
                flat_grad[:n_actor] += weight * actor_grads[row]
                flat_grad[critic_start:] += weight * critic_grads[row]
                if flat is not None:
                    flat.raw_step([actor_lr, critic_lr])
                else:
                    optimizer.step()
        if not math.isfinite(float(self._flat_params.sum())):
            if flat is not None:
                flat.restore(self._flat_params)
            else:
                self._restore_optimizer(saved_params, saved_state)
            raise self._optimizer_step_error()
        return PendingUpdate(None, None, self._update_stats(delta, log_prob, entropy, actor_lr, critic_lr))

    def _optimizer_step_sizes(self) -> tuple[float, float]:
        """:return: the actor's and the critic's step sizes now, also set on the optimizer's two param groups"""
        progress = self._current_progress_remaining
        actor_lr, critic_lr = self.lr_schedule(progress), self.critic_lr_schedule(progress)
        self.policy.optimizer.param_groups[0]["lr"] = actor_lr
        self.policy.optimizer.param_groups[1]["lr"] = critic_lr
        return actor_lr, critic_lr

    def _snapshot_optimizer(self) -> tuple[th.Tensor, dict]:
        """:return: copies of the parameter vector and of the policy optimizer's state, for :meth:`_restore_optimizer`"""
        optimizer = self.policy.optimizer
        saved_state = {
            param: {key: value.clone() if isinstance(value, th.Tensor) else value for key, value in state.items()}
            for param, state in optimizer.state.items()
        }
        return self._flat_params.clone(), saved_state

    def _restore_optimizer(self, saved_params: th.Tensor, saved_state: dict) -> None:
        """Put back the parameters and optimizer state of :meth:`_snapshot_optimizer`."""
        optimizer = self.policy.optimizer
        with th.no_grad():
            self._flat_params.copy_(saved_params)
        optimizer.state.clear()
        optimizer.state.update(saved_state)

    def _optimizer_step_error(self) -> NonFiniteError:
        return NonFiniteError(
            f"OneStepAC: the optimizer step at step {self.num_timesteps} would make parameters non-finite "
            "(the step sizes are too large for these rewards); it was not applied"
        )

    # ------------------------------------------------------------------ logging

    def _reset_log_stats(self) -> None:
        self._log_stats = np.zeros(len(_STAT_NAMES))
        self._log_count = 0

    def _accumulate_log_stats(self, values: list[float]) -> None:
        self._log_stats += values
        self._log_count += 1

    def _record_log_stats(self) -> None:
        if self._log_count > 0:
            for name, value in zip(_STAT_NAMES, self._log_stats / self._log_count, strict=True):
                self.logger.record(f"train/{name}", float(value))
        self.logger.record("train/learning_rate", self.lr_schedule(self._current_progress_remaining))
        self.logger.record("train/critic_learning_rate", self.critic_lr_schedule(self._current_progress_remaining))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self._reset_log_stats()


def _mean(value: Any) -> float:
    """The mean of an array or a tensor, or a number itself, as a float."""
    return float(value.mean()) if hasattr(value, "mean") else float(value)


def _to_numpy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _to_numpy(item) for key, item in value.items()}
    return value.cpu().numpy() if isinstance(value, th.Tensor) else value
