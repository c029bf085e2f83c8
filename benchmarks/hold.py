"""What keeps a solved CartPole-v1 policy solved? Two candidate causes of the fall, each removed from a callback.

    python -m benchmarks.hold --variants none both actor --seeds 10 --budget 30000 --eval-freq 1000 --eval-episodes 10

*The learning steps* (variants ``both``, ``actor``): a decaying ``learning_rate`` schedule barely changes ObGD's
step: the step is ``lr / max(1, lr * kappa * ...)``, and with the defaults the bound is active almost always, so the
step is ``1 / (kappa * ...)`` whatever ``lr`` is. These variants shrink the bounded step itself, by dividing
``actor_kappa`` (and ``critic_kappa``) by the progress remaining (1 at the start, 0 at the end of the budget) before
every update.

*The observation statistics still moving* (variants ``freeze-5000``, ``freeze-10000``): the running mean and variance
that normalise the observations stop updating after that many env steps; the policy keeps learning. Variant
``preserve``: the statistics keep updating, but after every update the first layer of the actor and of the critic is
rescaled so that each network computes the same function of the raw observation as before it (the input-side form
of Pop-Art's "preserving outputs precisely"): with ``x_n = (x - mean) / std``, ``W' = W * std' / std`` column by column
and ``b' = b + W (mean' - mean) / std``.

*Stale actions* (variants ``lag-1``, ``lag-4``, ``lag-7``): one env acts with the parameters of that many updates
before (each update still learns from the transition with the current parameters). With ``n_envs`` envs and
``combine_envs="sequential"`` the k-th env's transition of a VecEnv step is learned k - 1 updates after the parameters
it acted with (0 to 7 with 8 envs, 3.5 on average): these variants give one env that staleness alone, without the
interleaving of 8 episodes. Variants ``block-2``, ``block-4``, ``block-8``: one env acts in blocks of that many
steps with the parameters of the block's start (the first step of a block with the current ones, the last with those
of ``N - 1`` updates before): exactly the staleness of ``N`` envs' VecEnv step, on one env's stream, so that with
``--n-envs 1`` the variant differs from ``N`` envs by the interleaving of episodes alone.

*Episode depth* (variants ``truncate-100``, ``truncate-200``, ``truncate-300``, ``truncate-500``): the training envs'
episodes are cut at that many steps (a time-limit truncation, from which OneStepAC bootstraps), while the evaluation
episodes run to CartPole-v1's 500. With ``n_envs`` envs an env's episode gets one step per ``n_envs`` env steps, so
reaching a given depth in an episode takes ``n_envs`` times the env steps it takes one env: these variants show how
much the policy needs to see the late states of long episodes. ``truncate-500`` is the unchanged task built the same
way (the control).

``--n-envs`` above 1 runs that many envs (each VecEnv seeded as ``compare`` seeds them) with the defaults'
``combine_envs``.

Each variant runs OneStepAC's defaults with one env on the same seeds; a deterministic evaluation every
``--eval-freq`` steps. Per variant it prints the seeds reaching the threshold (still there at the end), the median
steps to it, "held" (the share of evaluations at the threshold or above after a seed's first) and the mean final
return; results are saved as JSON.
"""

import argparse
import json
import statistics
from collections import deque
from pathlib import Path
from typing import cast

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from benchmarks.learning import run_in_parallel
from sb3_ac_plus import OneStepAC
from sb3_ac_plus.common.arguments import positive_int
from sb3_ac_plus.one_step_ac.numpy_backend import NumpyBackend
from sb3_ac_plus.policies.networks import MLP, ActorCriticMlpExtractor
from sb3_ac_plus.evaluation.training import PeriodicEvaluation, make_eval_env
from sb3_ac_plus.policies.observation_normalizer import RunningMeanStdBuffers

VARIANTS = ["none", "both", "actor", "freeze-5000", "freeze-10000", "preserve", "lag-1", "lag-4", "lag-7"]
VARIANTS += ["truncate-100", "truncate-200", "truncate-300", "truncate-500"]
VARIANTS += ["block-2", "block-4", "block-8"]
DECAYED_BOUNDS = {"both": "ac", "actor": "a"}


class KappaDecay(BaseCallback):
    """
    Divides the ObGD bound strengths by the progress remaining before every update, so that the bounded step shrinks
    linearly to zero over the budget.

    :param parts: ``"a"`` for the actor's bound, ``"c"`` for the critic's, ``"ac"`` for both
    :param floor: the smallest progress used (keeps the strength finite at the last step)
    """

    def __init__(self, parts: str, floor: float = 1e-3) -> None:
        super().__init__()
        self.parts = parts
        self.floor = floor
        self._initial = (0.0, 0.0)

    def _on_training_start(self) -> None:
        assert isinstance(self.model, OneStepAC)
        self._initial = (self.model.actor_kappa, self.model.critic_kappa)

    def _on_step(self) -> bool:
        assert isinstance(self.model, OneStepAC)
        progress = max(self.model._current_progress_remaining, self.floor)
        if "a" in self.parts:
            self.model.actor_kappa = self._initial[0] / progress
        if "c" in self.parts:
            self.model.critic_kappa = self._initial[1] / progress
        return True


class FreezeObservationStatistics(BaseCallback):
    """
    Stops the policy's observation statistics from updating once the env steps reach ``after``.

    :param after: env steps of training after which the statistics stay as they are
    """

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.frozen = False

    def _on_step(self) -> bool:
        if not self.frozen and self.num_timesteps >= self.after:
            assert isinstance(self.model, OneStepAC)
            normalizer = self.model.policy.obs_normalizer
            assert isinstance(normalizer, th.nn.Module), "the policy does not normalise observations"
            for module in normalizer.modules():
                if isinstance(module, RunningMeanStdBuffers):
                    module.update = lambda batch: None  # type: ignore[method-assign]
            self.frozen = True
        return True


class PreserveOutputs(BaseCallback):
    """
    After every step, rescale the first linear layer of the actor and of the critic so that the change of the
    observation statistics at that step leaves both networks' functions of the raw observation unchanged (clipping
    aside). The policy must be a streaming policy without a shared trunk, on flat observations.
    """

    def __init__(self) -> None:
        super().__init__()
        self._previous: tuple[th.Tensor, th.Tensor] | None = None

    def _statistics(self) -> tuple[th.Tensor, th.Tensor]:
        assert isinstance(self.model, OneStepAC)
        normalizer = self.model.obs_normalizer
        assert normalizer is not None, "the policy does not normalise observations"
        stats = normalizer.statistics()
        return stats.mean.clone(), th.sqrt(stats.var + stats.epsilon)

    def _on_training_start(self) -> None:
        self._previous = self._statistics()

    def _on_step(self) -> bool:
        assert isinstance(self.model, OneStepAC) and self._previous is not None
        mean, std = self._statistics()
        old_mean, old_std = self._previous
        ratio = (std / old_std).to(th.float32)
        shift = ((mean - old_mean) / old_std).to(th.float32)
        extractor = self.model.policy.mlp_extractor
        assert isinstance(extractor, ActorCriticMlpExtractor)
        with th.no_grad():
            for net in (extractor.policy_net, extractor.value_net):
                first = cast(MLP, net).linears[0]
                assert isinstance(first, th.nn.Linear)
                first.bias += first.weight @ shift
                first.weight *= ratio
        self._previous = (mean, std)
        return True


class StaleActing(BaseCallback):
    """
    Makes the model act with other parameters than its current ones (its NumPy backend's ``act``, one update per act
    with one env); the updates themselves are unchanged. Subclasses say which, in ``_acting_parameters``.
    """

    def _acting_parameters(self, current: np.ndarray) -> np.ndarray:
        """:return: the actor's parameters to act with, given a copy of the ``current`` ones (called once per act)"""
        raise NotImplementedError

    def _on_training_start(self) -> None:
        assert isinstance(self.model, OneStepAC) and isinstance(self.model._backend, NumpyBackend)
        backend = self.model._backend
        params = backend.networks.actor.params  # the flat parameter vector the actor's pass reads
        act = backend.act

        def stale_act(obs: np.ndarray, noise: np.ndarray | None = None, with_state: bool = True) -> tuple:
            current = params.copy()
            params[:] = self._acting_parameters(current)
            try:
                return act(obs, noise, with_state)
            finally:
                params[:] = current

        backend.act = stale_act  # type: ignore[method-assign]

    def _on_step(self) -> bool:
        return True


class LaggedActing(StaleActing):
    """
    Makes the model act with its parameters of ``lag`` updates before.

    :param lag: how many updates old the acting parameters are (0: the current ones)
    """

    def __init__(self, lag: int) -> None:
        super().__init__()
        self.history: deque[np.ndarray] = deque(maxlen=lag + 1)

    def _acting_parameters(self, current: np.ndarray) -> np.ndarray:
        self.history.append(current)
        return self.history[0]  # the oldest kept: ``lag`` acts (updates) ago, or the first ones


class BlockActing(StaleActing):
    """
    Makes one env act in blocks of ``block`` steps with the parameters of the block's start, as the envs of a VecEnv
    step of ``block`` envs act with the parameters of the step's start; the updates themselves are unchanged, one after
    every step, as with ``combine_envs="sequential"``. So the k-th step of a block acts with parameters k - 1 updates
    old: the staleness pattern of ``block`` envs, on one env's stream of transitions.

    :param block: the number of steps that act with the same parameters
    """

    def __init__(self, block: int) -> None:
        super().__init__()
        self.block = block
        self.acts = 0
        self.start = np.empty(0)

    def _acting_parameters(self, current: np.ndarray) -> np.ndarray:
        if self.acts % self.block == 0:
            self.start = current
        self.acts += 1
        return self.start


def training_env(variant: str, env_id: str, n_envs: int, seed: int) -> str | VecEnv:
    """
    :return: the env a variant trains on: ``env_id`` itself for one env (OneStepAC makes it), else a VecEnv seeded as
        ``compare`` seeds it; a ``truncate-N`` variant's episodes end at ``N`` steps (a time-limit truncation).
    """
    if variant.startswith("truncate-"):
        env_kwargs = {"max_episode_steps": int(variant.removeprefix("truncate-"))}
        return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    return make_vec_env(env_id, n_envs=n_envs, seed=seed) if n_envs > 1 else env_id


def run_seed(variant: str, env_id: str, seed: int, budget: int, freq: int, episodes: int) -> list[float]:
    """:return: the evaluation returns of one seed, one per ``freq`` env steps (the untrained evaluation left out)"""
    th.set_num_threads(1)
    env_id, _, n_envs = env_id.partition("@")
    model = OneStepAC("MlpPolicy", training_env(variant, env_id, int(n_envs or 1), seed), seed=seed)
    evaluation = PeriodicEvaluation(make_eval_env(model, env_id, seed), freq, episodes, budget=budget)
    callbacks: list[BaseCallback] = [evaluation]
    if variant in DECAYED_BOUNDS:
        callbacks.append(KappaDecay(DECAYED_BOUNDS[variant]))
    elif variant.startswith("freeze-"):
        callbacks.append(FreezeObservationStatistics(int(variant.removeprefix("freeze-"))))
    elif variant == "preserve":
        callbacks.append(PreserveOutputs())
    elif variant.startswith("lag-"):
        callbacks.append(LaggedActing(int(variant.removeprefix("lag-"))))
    elif variant.startswith("block-"):
        callbacks.append(BlockActing(int(variant.removeprefix("block-"))))
    model.learn(budget, callback=callbacks)
    return [float(point.mean_return) for point in evaluation.points if point.steps > 0]


def summarise(curves: list[list[float]], threshold: float, freq: int) -> dict[str, float]:
    """:return: seeds reaching ``threshold``, seeds there at the end, median steps to it, held and mean final return"""
    firsts = [next((i for i, value in enumerate(curve) if value >= threshold), None) for curve in curves]
    reached = [(curve, first) for curve, first in zip(curves, firsts, strict=True) if first is not None]
    held = [statistics.mean(float(value >= threshold) for value in curve[first:]) for curve, first in reached]
    return {
        "reached": len(reached),
        "at_end": sum(bool(curve[-1] >= threshold) for curve in curves),
        "median_steps": statistics.median((first + 1) * freq for _, first in reached) if reached else float("inf"),
        "held": statistics.mean(held) if held else 0.0,
        "mean_final": float(statistics.mean(curve[-1] for curve in curves)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--seeds", type=positive_int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--budget", type=positive_int, default=30_000, help="env steps per run")
    parser.add_argument("--eval-freq", type=positive_int, default=1000)
    parser.add_argument("--eval-episodes", type=positive_int, default=10)
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--n-envs", type=positive_int, default=1, help="envs per run (the defaults' combine_envs)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/one_step_ac_capabilities/hold.json"))
    args = parser.parse_args()

    env_id = args.env
    if args.n_envs > 1:
        args.env = f"{env_id}@{args.n_envs}"  # run_seed's env_id carries the number of envs to the workers
    curves = run_in_parallel(run_seed, args.variants, args)
    args.env = env_id

    print(
        f"\n{args.env}: OneStepAC's defaults, {args.n_envs} env(s), {args.seeds} seeds, {args.budget} steps, "
        f"threshold {args.threshold}\n"
    )
    print("| variant | seeds reaching it (still at the end) | median steps to it | held | mean final return |")
    print("|---|---:|---:|---:|---:|")
    summaries = {}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for variant in args.variants:
        summary = summarise([curves[f"{variant}/{seed}"] for seed in seeds], args.threshold, args.eval_freq)
        summaries[variant] = summary
        print(
            f"| {variant} | {summary['reached']}/{args.seeds} ({summary['at_end']}) | {summary['median_steps']:,.0f} | "
            f"{summary['held']:.2f} | {summary['mean_final']:.1f} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {key: str(value) for key, value in vars(args).items()}
    args.output.write_text(json.dumps({"settings": settings, "summary": summaries, "curves": curves}, indent=1))
    print(f"\nresults in {args.output}")


if __name__ == "__main__":
    main()
