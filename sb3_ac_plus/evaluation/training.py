"""Train one algorithm on one env from its zoo config, with a periodic deterministic evaluation on a separate env.

``train_and_evaluate`` is what a worker process of ``python -m sb3_ac_plus.compare`` and ``python -m sb3_ac_plus.run
train`` runs. Training time excludes evaluation, so env-steps/s measures the learner alone. Training stops at the
first env step that reaches the budget, even inside a rollout: SB3's ``learn`` would otherwise finish the rollout and
update on the steps past the budget (PPO with 16 envs x 1024 steps would train on 114,688 steps of a 100,000 budget).
A run that diverges (one of ``DIVERGENCE_ERRORS`` raised while learning) ends there, with a last evaluation of the
policy it stopped with; its result records the step and the error, and any other error propagates.
"""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from sb3_ac_plus import NonFiniteError

# Errors that mean training diverged (NaN or infinite values) rather than a bug: OneStepAC's check of every step (its
# updates are atomic, so the model it leaves is the last finite one), float overflow. Anything else is a bug.
DIVERGENCE_ERRORS: tuple[type[BaseException], ...] = (NonFiniteError, FloatingPointError, OverflowError)
# Evaluation envs are seeded apart from the training envs of every seed.
EVAL_SEED_OFFSET = 10_000


def eval_seed(seed: int) -> int:
    """:return: the seed of the evaluation env of a run seeded ``seed`` (every evaluation of the project uses it)"""
    return seed + EVAL_SEED_OFFSET


def make_eval_env(model: BaseAlgorithm, env_id: str, seed: int, **env_kwargs: Any) -> VecEnv:
    """A one-env VecEnv (Monitor-wrapped, so returns are the env's own) that sees observations as the model does:
    if training normalises observations with VecNormalize, so does this env, with frozen statistics synced before use."""
    eval_env: VecEnv = make_vec_env(env_id, n_envs=1, seed=eval_seed(seed), env_kwargs=env_kwargs or None)
    if isinstance(model.get_env(), VecNormalize):
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
    return eval_env


@dataclass
class EvaluationPoint:
    """One evaluation: env steps so far, mean and std of the episode returns, seconds of training so far (evaluation
    excluded) and of wall-clock time since training started (evaluation included)."""

    steps: int
    mean_return: float
    std_return: float
    train_seconds: float
    wall_seconds: float


class PeriodicEvaluation(BaseCallback):
    """Evaluates the model deterministically before training, every ``eval_freq`` env steps, and at the end; also keeps
    the return of every training episode that ends (``train_returns``, from the ``Monitor`` of the training envs), so that
    a run whose exploring policy reaches the goal while its deterministic one does not can be told from one that never
    gets there.

    :param eval_env: the evaluation env (see ``make_eval_env``)
    :param eval_freq: env steps between evaluations, counted over all envs of the training VecEnv
    :param n_eval_episodes: episodes per evaluation
    :param budget: if given, training stops (after a last evaluation) at the first step where the env steps reach it,
        so that no algorithm updates on steps past the budget
    """

    def __init__(self, eval_env: VecEnv, eval_freq: int, n_eval_episodes: int, budget: int | None = None) -> None:
        super().__init__()
        self.eval_env = eval_env
        self.eval_freq = eval_freq
        self.n_eval_episodes = n_eval_episodes
        self.budget = budget
        self.points: list[EvaluationPoint] = []
        self.train_returns: list[float] = []
        self._next_eval = eval_freq
        self._start = 0.0
        self._eval_seconds = 0.0

    @property
    def train_seconds(self) -> float:
        return time.perf_counter() - self._start - self._eval_seconds

    def _evaluate(self) -> None:
        begin = time.perf_counter()
        if isinstance(self.eval_env, VecNormalize):
            sync_envs_normalization(self.training_env, self.eval_env)
        mean, std = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes, deterministic=True)
        assert isinstance(mean, float) and isinstance(std, float)
        self._eval_seconds += time.perf_counter() - begin
        now = time.perf_counter()
        self.points.append(EvaluationPoint(self.num_timesteps, mean, std, self.train_seconds, now - self._start))

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._eval_seconds = 0.0
        if not self.points:
            self._evaluate()

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if "episode" in info:
                self.train_returns.append(float(info["episode"]["r"]))
        if self.num_timesteps >= self._next_eval:
            self._evaluate()
            while self._next_eval <= self.num_timesteps:
                self._next_eval += self.eval_freq
        if self.budget is not None and self.num_timesteps >= self.budget:
            if self.points[-1].steps != self.num_timesteps:
                self._evaluate()
            return False
        return True

    def _on_training_end(self) -> None:
        if self.points[-1].steps != self.num_timesteps:
            self._evaluate()

    def evaluate_where_stopped(self) -> None:
        """For training stopped by an error, which skips ``on_training_end``: evaluate the model as it stands at its
        env steps, unless the last evaluation is already there."""
        self.num_timesteps = self.model.num_timesteps
        if not self.points:  # stopped before the first step: the untrained policy's evaluation is the only one
            self._on_training_start()
        self._on_training_end()


@dataclass
class RunResult:
    """One training run: its evaluation curve, total env steps, training time (evaluation excluded) and the returns of
    its training episodes, in the order they ended. A run that diverged has ``diverged_at`` (the env steps it had
    trained when the error was raised, also its ``total_steps``) and ``error`` (the error's type and message); the last
    point of its curve evaluates the policy it stopped with."""

    algo: str
    env_id: str
    seed: int
    total_steps: int
    train_seconds: float
    wall_seconds: float
    curve: list[EvaluationPoint] = field(default_factory=list)
    train_returns: list[float] = field(default_factory=list)
    diverged_at: int | None = None
    error: str | None = None

    @property
    def steps_per_second(self) -> float:
        return self.total_steps / self.train_seconds if self.train_seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps_per_second": self.steps_per_second}


def train_and_evaluate(
    algo: str,
    env_id: str,
    seed: int,
    budget: int | None = None,
    eval_freq: int = 2000,
    eval_episodes: int = 10,
    config_dir: str | Path | None = None,
    save_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    label: str | None = None,
    block: dict[str, Any] | None = None,
) -> RunResult:
    """Build ``algo`` and its VecEnv from the zoo config for ``env_id``, train it for ``budget`` env steps (the config's
    ``n_timesteps`` if None; training stops at the first step that reaches it, mid-rollout if need be) with a periodic
    evaluation, and optionally save the model.

    If learning raises one of ``DIVERGENCE_ERRORS``, the run ends there: the model is evaluated once more as it stands
    (unless the last evaluation is at that step), saved if asked, and the result records the divergence. Any other
    error propagates.

    Torch runs single-threaded: several of these run side by side, one per worker process.

    :param overrides: keys that replace the config's (``n_envs=8``, ``noise_beta=1.0``...), checked as the config's are
    :param label: the name the result goes by (default: ``algo``), to tell variants of one algorithm apart
    :param block: the block to start from instead of the config's (``{}``: the algorithm's defaults on one env)
    """
    from sb3_ac_plus.zoo import make_model_and_env  # imported here: tests stand in for the zoo

    th.set_num_threads(1)
    model, vec_env, n_timesteps = make_model_and_env(
        algo, env_id, seed=seed, config_dir=config_dir, n_timesteps=budget, block=block, **(overrides or {})
    )
    callback = PeriodicEvaluation(make_eval_env(model, env_id, seed), eval_freq, eval_episodes, budget=int(n_timesteps))
    diverged: BaseException | None = None
    start = time.perf_counter()
    try:
        try:
            model.learn(int(n_timesteps), callback=callback)
        except DIVERGENCE_ERRORS as error:
            diverged = error
            callback.evaluate_where_stopped()
        wall = time.perf_counter() - start
        if save_path is not None:
            model.save(save_path)
            if isinstance(vec_env, VecNormalize):
                vec_env.save(str(Path(save_path).with_suffix("")) + "_vecnormalize.pkl")
    finally:
        vec_env.close()
        callback.eval_env.close()
    last = callback.points[-1]
    return RunResult(
        label or algo,
        env_id,
        seed,
        model.num_timesteps,
        last.train_seconds,
        wall,
        callback.points,
        callback.train_returns,
        diverged_at=None if diverged is None else model.num_timesteps,
        error=None if diverged is None else f"{type(diverged).__name__}: {diverged}",
    )
