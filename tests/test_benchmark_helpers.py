import argparse

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from benchmarks.hold import FreezeObservationStatistics, KappaDecay, PreserveOutputs, summarise
from benchmarks.learning import run_in_parallel
from sb3_ac_plus import OneStepAC


def test_summarise_counts_reaching_holding_and_final():
    curves = [[400.0, 480.0, 300.0, 500.0], [100.0, 200.0, 300.0, 400.0]]
    summary = summarise(curves, threshold=475.0, freq=1000)
    assert summary["reached"] == 1
    assert summary["at_end"] == 1
    assert summary["median_steps"] == 2000
    assert summary["held"] == pytest.approx(2 / 3)
    assert summary["mean_final"] == pytest.approx(450.0)


@pytest.mark.parametrize("parts", ["a", "ac"])
def test_kappa_decay_divides_the_bounds_by_the_progress_remaining(parts):
    model = OneStepAC("MlpPolicy", "CartPole-v1", actor_kappa=3.0, critic_kappa=2.0, seed=0)
    seen = []

    class Record(KappaDecay):
        def _on_step(self) -> bool:
            result = super()._on_step()
            seen.append((self.model._current_progress_remaining, self.model.actor_kappa, self.model.critic_kappa))
            return result

    model.learn(200, callback=Record(parts))
    assert len(seen) == 200
    for progress, actor_kappa, critic_kappa in seen:
        assert actor_kappa == pytest.approx(3.0 / max(progress, 1e-3))
        assert critic_kappa == pytest.approx(2.0 / max(progress, 1e-3) if "c" in parts else 2.0)
    assert seen[-1][1] > 3.0 * 50  # near the end of the budget the bound is far stronger


def test_freeze_keeps_the_observation_statistics_of_the_first_steps():
    statistics = []
    for budget, callback in ((50, None), (200, FreezeObservationStatistics(after=50))):
        model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0)
        model.learn(budget, callback=callback)
        stats = model.policy.obs_normalizer.statistics()
        statistics.append((float(stats.count), stats.mean.clone()))
    (count_at_50, mean_at_50), (count_frozen, mean_frozen) = statistics
    assert count_frozen == count_at_50 > 0
    assert th.equal(mean_frozen, mean_at_50)


@pytest.mark.parametrize("preserve", [False, True])
def test_preserve_outputs_keeps_the_networks_function_while_the_statistics_move(preserve: bool) -> None:
    # Steps too small to change the networks: what moves V(x) is the statistics, unless the first layers follow them.
    raw = th.as_tensor(np.random.default_rng(0).normal(scale=0.02, size=(5, 4)).astype(np.float32))
    model = OneStepAC("MlpPolicy", "CartPole-v1", update_rule="sgd", learning_rate=1e-12, seed=0)
    callback = PreserveOutputs() if preserve else None
    model.learn(20, callback=callback)
    count = float(model.policy.obs_normalizer.statistics().count)
    before = model.policy.predict_values(raw).detach().clone()
    model.learn(30, callback=callback, reset_num_timesteps=False)
    assert float(model.policy.obs_normalizer.statistics().count) == count + 30
    change = float((model.policy.predict_values(raw) - before).abs().max())
    assert (change < 1e-5) if preserve else (change > 1e-3)


def _label_seed_budget(label: str, env: str, seed: int, budget: int, freq: int, episodes: int) -> str:
    return f"{label}:{env}:{seed}:{budget}:{freq}:{episodes}"


def test_run_in_parallel_runs_every_label_and_seed():
    args = argparse.Namespace(env="E", seeds=2, budget=100, eval_freq=10, eval_episodes=3, workers=2)
    results = run_in_parallel(_label_seed_budget, ["a", "b"], args)
    assert results == {f"{label}/{seed}": f"{label}:E:{seed}:100:10:3" for label in "ab" for seed in range(2)}


def test_block_speed_times_every_round_of_every_block_after_the_warmup():
    from benchmarks.block_speed import block_speed

    threads = th.get_num_threads()
    times = block_speed("CartPole-v1", ["one_step_ac", "a2c"], steps=64, rounds=2, warmup=32)
    assert list(times) == ["one_step_ac", "a2c"]
    assert all(len(values) == 2 and all(0 < value < 1e6 for value in values) for values in times.values())
    assert th.get_num_threads() == threads  # torch's thread count is put back


def record_acting(callback: BaseCallback, steps: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:return: per act of one env's ``learn(steps)`` with ``callback``: the parameters it acted with, and the update's"""
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0)
    model._setup_backend()
    backend = model._backend
    params = backend.networks.actor.params
    seen, current = [], []
    act = backend.act

    def recording_act(obs, noise=None, with_state=True):  # under the callback: what the actor's pass reads
        seen.append(params.copy())
        return act(obs, noise, with_state)

    backend.act = recording_act
    original_training_start = callback._on_training_start

    def start_and_record() -> None:
        original_training_start()
        inner = backend.act

        def outer(obs, noise=None, with_state=True):  # over the callback: the parameters of this update
            current.append(params.copy())
            return inner(obs, noise, with_state)

        backend.act = outer

    callback._on_training_start = start_and_record
    model._setup_backend = lambda: None  # keep the patched backend for learn()
    model.learn(steps, callback=callback)
    assert len(seen) == len(current) == steps
    assert len({parameters.tobytes() for parameters in current}) == steps  # every step updated
    assert np.array_equal(params, model._flat_params.numpy())  # the current parameters are back after acting
    return seen, current


def test_lagged_acting_acts_with_the_parameters_of_lag_updates_before():
    from benchmarks.hold import LaggedActing

    seen, current = record_acting(LaggedActing(lag=2), 12)
    for index in range(12):
        assert np.array_equal(seen[index], current[max(index - 2, 0)])


def test_block_acting_acts_with_the_parameters_of_the_blocks_start():
    from benchmarks.hold import BlockActing

    seen, current = record_acting(BlockActing(block=4), 12)
    for index in range(12):
        assert np.array_equal(seen[index], current[index - index % 4])  # the k-th of a block: k - 1 updates old


@pytest.mark.parametrize("n_envs", [1, 3])
def test_truncate_variants_end_training_episodes_at_that_depth(n_envs: int) -> None:
    from benchmarks.hold import training_env

    env = training_env("truncate-7", "CartPole-v1", n_envs, seed=0)
    assert not isinstance(env, str)  # one env too: a VecEnv with the cut
    env.reset()
    # Alternating pushes keep the pole up for far more than 7 steps: only the cut ends these episodes.
    for step in range(1, 8):
        _, _, dones, infos = env.step(np.full(n_envs, step % 2))
        assert dones.all() == (step == 7) and dones.any() == (step == 7)
    assert all(info["TimeLimit.truncated"] for info in infos)
    assert training_env("none", "CartPole-v1", 1, seed=0) == "CartPole-v1"
    unchanged = training_env("none", "CartPole-v1", 2, seed=0)
    assert not isinstance(unchanged, str) and unchanged.num_envs == 2
