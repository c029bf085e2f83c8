"""One trial: build a model per seed, train them side by side, evaluate, report, prune.

The seeds of a trial are trained in lockstep, one chunk of ``n_timesteps / n_evaluations`` steps each in turn, so that
the value reported after every chunk is already the mean over seeds: the pruner compares trials on the same
aggregate the study optimises, and a pruned trial stops all its seeds at once. Seeds run one after the other in the
worker's single thread; parallelism comes from worker processes.
"""

from __future__ import annotations

import math
import time
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import optuna
import torch as th
from gymnasium import spaces
from optuna.trial import TrialState
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from sb3_ac_plus.evaluation.training import DIVERGENCE_ERRORS, make_eval_env
from sb3_ac_plus.zoo import load_hyperparameters, make_model_and_env
from sb3_ac_plus.zoo.search_spaces import sample_hyperparameters
from sb3_ac_plus.tuning.zoo_format import to_yaml_ready

# How the evaluation curve of a trial (mean over seeds at each evaluation) becomes one number.
OBJECTIVES: dict[str, Callable[[Sequence[float]], float]] = {
    "last": lambda curve: float(curve[-1]),
    "best": lambda curve: float(max(curve)),
    "mean": lambda curve: float(np.mean(curve)),
}

OBJECTIVE_DESCRIPTIONS = {
    "last": "return at the last evaluation",
    "best": "best evaluation return",
    "mean": "evaluation return averaged over the evaluations",
}

# Trials in these states count towards --max-total-trials (as in rl-zoo); a failed trial frees its place.
COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)

# Errors that mean "these hyperparameters blow up" when raised while training or evaluating: DIVERGENCE_ERRORS, ours
# of the parameters (Diverged) and the one below. Anything else is a bug: the trial fails with its traceback.
# torch.distributions' argument check, which A2C and PPO reach with NaN logits or means ("Expected parameter loc
# (Tensor of shape ...) of distribution Normal(...) to satisfy the constraint Real(), but found invalid values").
_INVALID_DISTRIBUTION = re.compile(r"^Expected parameter \w+ .* but found invalid values", re.DOTALL)
_MAX_TRACEBACK_LENGTH = 4000


def is_divergence(error: BaseException) -> bool:
    """
    :return: whether ``error`` means that training diverged (NaN or infinite values), rather than a bug
    """
    if isinstance(error, (*DIVERGENCE_ERRORS, Diverged)):
        return True
    return isinstance(error, ValueError) and _INVALID_DISTRIBUTION.match(str(error)) is not None


_MAX_REASON_LENGTH = 500


class Diverged(RuntimeError):
    """Training produced non-finite parameters or returns."""


class MaxTotalTrialsReached(Exception):
    """The study already holds ``--max-total-trials`` trials; this one must not run."""


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a study shares.

    :param algo: command-line name of the algorithm
    :param env_id: Gymnasium id of the environment
    :param n_timesteps: training steps per seed
    :param n_seeds: seeds per trial; the objective is the mean over seeds
    :param n_evaluations: evaluations per seed, evenly spaced over ``n_timesteps``
    :param eval_episodes: episodes per evaluation
    :param objective: key of :data:`OBJECTIVES`
    :param seed: seed of the first training run; the others use ``seed + 1``, ``seed + 2``...
    :param fixed: hyperparameters fixed by the user
    :param max_total_trials: cap on counted trials in the study, across all workers, or None
    :param device: torch device of the models
    """

    algo: str
    env_id: str
    n_timesteps: int
    n_seeds: int
    n_evaluations: int
    eval_episodes: int
    objective: str
    seed: int = 0
    fixed: dict[str, Any] = field(default_factory=dict)
    max_total_trials: int | None = None
    device: str = "cpu"

    @property
    def seeds(self) -> list[int]:
        """The training seeds of every trial (the same in all trials, so trials differ only by hyperparameters)."""
        return [self.seed + index for index in range(self.n_seeds)]

    def evaluation_timesteps(self) -> list[int]:
        """The training step after which each evaluation happens."""
        return [round(self.n_timesteps * (index + 1) / self.n_evaluations) for index in range(self.n_evaluations)]


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _MAX_REASON_LENGTH else text[: _MAX_REASON_LENGTH - 3] + "..."


def zoo_block(algo: str, env_id: str) -> dict[str, Any]:
    """:return: the algorithm's zoo block for ``env_id`` from the package's configs, or ``{}`` where there is none"""
    try:
        return load_hyperparameters(algo, env_id)
    except ValueError:
        return {}


def has_box_actions(env_id: str) -> bool:
    """:return: whether the env's actions are a Box (Gaussian policies), made once to find out"""
    probe = gym.make(env_id)
    try:
        return isinstance(probe.action_space, spaces.Box)
    finally:
        probe.close()


def _traceback_text() -> str:
    """The traceback of the exception being handled, its end kept when it is long."""
    text = traceback.format_exc()
    return text if len(text) <= _MAX_TRACEBACK_LENGTH else "..." + text[-_MAX_TRACEBACK_LENGTH + 3 :]


def _check_finite(model: BaseAlgorithm) -> None:
    for name, parameter in model.policy.named_parameters():
        if not th.isfinite(parameter).all():
            raise Diverged(f"non-finite values in policy parameter {name!r}")


class Objective:
    """The function Optuna calls for each trial.

    User attributes it records on the trial: ``worker`` (host:pid:start time of the process that ran it),
    ``hyperparameters`` (constructor kwargs with real names, as written to the YAML), ``seeds``, ``env_steps``
    (training steps actually run, all seeds), ``env_steps_budget`` (what the trial would have run without pruning),
    ``eval_env_steps``, ``seed_scores`` (the objective of each seed alone), and for trials that stop early
    ``pruned_by`` (``pruner`` or ``divergence``) or ``fail_reason``.

    :param settings: what all trials share
    :param worker: identifier of the worker process, recorded on each trial
    """

    def __init__(self, settings: TrialSettings, worker: str) -> None:
        self.settings = settings
        self.worker = worker
        self.max_total_trials_reached = False
        self.continuous_actions = has_box_actions(settings.env_id)  # exploration noise is searched for them only

    def _check_max_total_trials(self, trial: optuna.Trial) -> None:
        # Trial numbers follow creation order in every Optuna storage, so counting the earlier trials decides the
        # race between workers that started a trial at the same moment: the later one steps back.
        cap = self.settings.max_total_trials
        if cap is None:
            return
        earlier = [t for t in trial.study.get_trials(deepcopy=False, states=COUNTED_STATES) if t.number < trial.number]
        if len(earlier) >= cap:
            self.max_total_trials_reached = True
            trial.set_user_attr("fail_reason", f"not run: the study already had --max-total-trials={cap} trials")
            raise MaxTotalTrialsReached(f"the study already has {len(earlier)} trials (--max-total-trials={cap})")

    def _build(self, hyperparameters: dict[str, Any], seed: int) -> tuple[BaseAlgorithm, VecEnv]:
        """The model and its evaluation env, built as ``python -m sb3_ac_plus.compare`` builds them: from the
        algorithm's zoo block for this env (its ``n_envs``, ``normalize``, wrappers and other values), with the sampled
        hyperparameters on top; SB3's defaults on one env where the configs have no block."""
        settings = self.settings
        model, _, _ = make_model_and_env(
            settings.algo,
            settings.env_id,
            seed=seed,
            n_timesteps=settings.n_timesteps,
            block=zoo_block(settings.algo, settings.env_id),
            device=settings.device,
            verbose=0,
            **hyperparameters,
        )
        return model, make_eval_env(model, settings.env_id, seed)

    def __call__(self, trial: optuna.Trial) -> float:
        """Run one trial.

        :param trial: the trial to evaluate
        :return: the objective, aggregated over seeds
        :raises optuna.TrialPruned: when the pruner stops the trial or training diverges
        """
        settings = self.settings
        trial.set_user_attr("worker", self.worker)
        self._check_max_total_trials(trial)

        hyperparameters = sample_hyperparameters(trial, settings.algo, settings.fixed, self.continuous_actions)
        # The whole block the trial runs (the zoo block with the sampled values on top), so that the best one rebuilds it.
        block = {**zoo_block(settings.algo, settings.env_id), **hyperparameters}
        block.pop("n_timesteps", None)
        trial.set_user_attr("hyperparameters", to_yaml_ready(block))
        trial.set_user_attr("seeds", settings.seeds)
        budget = settings.n_seeds * settings.n_timesteps
        trial.set_user_attr("env_steps_budget", budget)
        try:
            runs = [self._build(hyperparameters, seed) for seed in settings.seeds]
        except (ValueError, TypeError) as error:
            trial.set_user_attr("fail_reason", f"invalid hyperparameters: {_short(error)}")
            raise

        aggregate = OBJECTIVES[settings.objective]
        curves: list[list[float]] = [[] for _ in runs]
        eval_env_steps = 0
        train_seconds = 0.0

        def record_steps() -> None:
            trial.set_user_attr("env_steps", int(sum(model.num_timesteps for model, _ in runs)))
            trial.set_user_attr("eval_env_steps", eval_env_steps)
            trial.set_user_attr("train_seconds", round(train_seconds, 3))
            if all(curves):
                trial.set_user_attr("seed_scores", [aggregate(curve) for curve in curves])

        try:
            for step, target in enumerate(settings.evaluation_timesteps(), start=1):
                for (model, eval_env), curve in zip(runs, curves, strict=True):
                    try:
                        if model.num_timesteps < target:
                            started = time.perf_counter()
                            model.learn(total_timesteps=target - model.num_timesteps, reset_num_timesteps=False)
                            train_seconds += time.perf_counter() - started
                        _check_finite(model)
                        train_env = model.get_env()
                        if isinstance(eval_env, VecNormalize) and train_env is not None:
                            sync_envs_normalization(train_env, eval_env)
                        returns, lengths = evaluate_policy(
                            model, eval_env, n_eval_episodes=settings.eval_episodes, return_episode_rewards=True, warn=False
                        )
                        score = float(np.mean(returns))
                        if not math.isfinite(score):
                            raise Diverged(f"non-finite evaluation return {score}")
                    except Exception as error:
                        if not is_divergence(error):
                            trial.set_user_attr("fail_reason", _traceback_text())
                            record_steps()
                            raise
                        reason = f"diverged at step {model.num_timesteps} of seed {model.seed}: {_short(error)}"
                        trial.set_user_attr("pruned_by", "divergence")
                        trial.set_user_attr("fail_reason", reason)
                        record_steps()
                        raise optuna.TrialPruned(reason) from error
                    eval_env_steps += int(np.sum(lengths))
                    curve.append(score)

                value = aggregate(np.mean(curves, axis=0).tolist())
                trial.report(value, step)
                if trial.should_prune():
                    trial.set_user_attr("pruned_by", "pruner")
                    record_steps()
                    raise optuna.TrialPruned(f"pruned after evaluation {step} of {settings.n_evaluations}, value {value:.4g}")
        finally:
            for model, eval_env in runs:
                model.get_env().close()  # type: ignore[union-attr]
                eval_env.close()
        record_steps()
        return value
