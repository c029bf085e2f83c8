"""Every policy alias, action space and observation space trains a few hundred steps, as a user would run it."""

import numpy as np
import pandas as pd
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.vec_env import SubprocVecEnv

from sb3_ac_plus import OneStepAC


def _finite(model: OneStepAC) -> bool:
    return all(th.isfinite(p).all() for p in model.policy.parameters())


@pytest.mark.parametrize(
    "env",
    [
        IdentityEnv(3),
        IdentityEnvBox(eps=0.5),
        IdentityEnvMultiDiscrete(2),
        IdentityEnvMultiBinary(2),
    ],
    ids=["Discrete", "Box", "MultiDiscrete", "MultiBinary"],
)
def test_action_spaces(env) -> None:
    model = OneStepAC("MlpPolicy", env, seed=0).learn(300)
    assert model.num_timesteps == 300
    assert _finite(model)
    action, _ = model.predict(env.observation_space.sample(), deterministic=True)
    assert env.action_space.contains(np.asarray(action).astype(env.action_space.dtype).reshape(env.action_space.shape))


@pytest.mark.parametrize(
    "policy, env",
    [
        ("MlpPolicy", "Pendulum-v1"),
        ("CnnPolicy", FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)),
        ("CnnPolicy", FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=False)),
        ("MultiInputPolicy", SimpleMultiObsEnv(random_start=True)),
    ],
    ids=["Mlp-Box-obs", "Cnn-discrete", "Cnn-continuous", "MultiInput-Dict-obs"],
)
def test_policy_aliases_and_observation_spaces(policy, env) -> None:
    model = OneStepAC(policy, env, seed=0, policy_kwargs=dict(net_arch=[32, 32]))
    model.learn(150)
    assert _finite(model)
    obs = model.get_env().reset()
    actions, _ = model.predict(obs)
    assert len(actions) == 1


def test_discrete_observations_use_one_hot_and_no_normalisation() -> None:
    model = OneStepAC("MlpPolicy", IdentityEnv(4), seed=0)
    assert isinstance(model.observation_space, spaces.Discrete)
    assert model.normalize_observations and model.obs_normalizer is None
    model.learn(100)
    assert model._engine.name == "reference"  # the torch path handles non-vector observations


def test_fast_path_is_used_for_the_default_policy_on_vector_observations() -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0).learn(50)
    assert model._engine.name == "kernels"


@pytest.mark.parametrize("vec_env_cls", [None, SubprocVecEnv], ids=["DummyVecEnv", "SubprocVecEnv"])
def test_several_envs(vec_env_cls) -> None:
    env = make_vec_env("CartPole-v1", n_envs=3, seed=0, vec_env_cls=vec_env_cls)
    model = OneStepAC("MlpPolicy", env, seed=0)
    model.learn(600)
    assert model.num_timesteps == 600
    assert model._n_updates == 200  # one update per VecEnv step, from all three transitions
    assert model._state.actor_traces is not None and model._state.actor_traces.shape[0] == 3
    env.close()


@pytest.mark.parametrize("n_steps", [2, 5])
def test_n_step_windows_on_several_envs(n_steps: int) -> None:
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = OneStepAC("MlpPolicy", env, n_steps=n_steps, trace_lambda=0.0, seed=0)
    model.learn(400)
    assert _finite(model)
    # Each state is learned from exactly once: updates happen from the first step with a full window on. (The
    # targets themselves are checked against hand-computed returns in test_parity.py.)
    assert all(len(window) < n_steps for window in model._state.windows.windows)


def _logged(model: OneStepAC, tmp_path, steps: int, name: str) -> np.ndarray:
    """Learn ``steps`` steps with a log after every update; :return: the logged values of ``name``, one per update."""
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(steps, log_interval=1)
    return pd.read_csv(tmp_path / "progress.csv")[name].to_numpy()


@pytest.mark.parametrize("rule", ["obgd", "sgd"])
def test_update_rules_with_traces(rule: str, tmp_path) -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", update_rule=rule, learning_rate=0.01 if rule == "sgd" else 1.0, seed=0)
    before = model._flat_params.clone()
    steps = _logged(model, tmp_path, 300, "train/actor_step_size")
    assert _finite(model) and not th.equal(before, model._flat_params)
    assert model._state.actor_traces is not None
    if rule == "sgd":
        assert np.all(steps == pytest.approx(0.01))  # the step size itself
    else:
        # ObGD's bound: never above the nominal step size, and below it once the traces grow.
        assert np.all(steps <= 1.0) and np.any(steps < 1.0)


def test_torch_optimizer_rule_uses_separate_step_sizes() -> None:
    model = OneStepAC(
        "MlpPolicy",
        "CartPole-v1",
        update_rule="optimizer",
        trace_lambda=0.0,
        learning_rate=1e-3,
        critic_learning_rate=3e-3,
        policy_kwargs=dict(optimizer_class=th.optim.Adam),
        seed=0,
    )
    model.learn(300)
    groups = model.policy.optimizer.param_groups
    assert [group["lr"] for group in groups] == [1e-3, 3e-3]
    actor_ids = {id(p) for p in groups[0]["params"]}
    assert id(model.policy.action_net.weight) in actor_ids
    assert id(model.policy.value_net.weight) not in actor_ids
    assert len(model.policy.optimizer.state) > 0


def test_schedules_for_both_step_sizes(tmp_path) -> None:
    model = OneStepAC(
        "MlpPolicy",
        "CartPole-v1",
        update_rule="sgd",  # the step sizes the update uses are the scheduled ones, unbounded
        learning_rate=lambda p: 0.05 * p,
        critic_learning_rate=lambda p: 0.02 * p,
        seed=0,
    )
    actor_steps = _logged(model, tmp_path, 200, "train/actor_step_size")
    critic_steps = pd.read_csv(tmp_path / "progress.csv")["train/critic_step_size"].to_numpy()
    progress = 1.0 - np.arange(200) / 200  # progress remaining at each update
    assert actor_steps == pytest.approx(0.05 * progress, rel=1e-6)
    assert critic_steps == pytest.approx(0.02 * progress, rel=1e-6)


def test_callbacks_every_step_and_stop_on_reward(tmp_path) -> None:
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=1)
    stop = StopTrainingOnRewardThreshold(reward_threshold=-1.0, verbose=0)  # any evaluation stops training
    eval_callback = EvalCallback(eval_env, eval_freq=250, n_eval_episodes=2, callback_on_new_best=stop, verbose=0)
    checkpoint = CheckpointCallback(save_freq=100, save_path=str(tmp_path), name_prefix="onestep")
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0)
    model.learn(5000, callback=[checkpoint, eval_callback])
    assert model.num_timesteps == 250  # stopped by the first evaluation
    assert len(list(tmp_path.glob("onestep_*.zip"))) == 2
    assert eval_callback.last_mean_reward > 0


def test_logger_and_tensorboard(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0, tensorboard_log=str(tmp_path), verbose=0)
    model.learn(600, log_interval=200, tb_log_name="run")
    values = model.logger.name_to_value
    assert not values  # dumped
    event_files = list(tmp_path.rglob("events.out.tfevents.*"))
    assert event_files
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(event_files[0].parent))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    for name in ("td_error_abs", "critic_loss", "policy_loss", "entropy", "actor_step_size", "critic_step_size"):
        assert f"train/{name}" in tags
    assert "rollout/ep_rew_mean" in tags
    assert len(accumulator.Scalars("train/td_error_abs")) == 3


def test_progress_bar(monkeypatch) -> None:
    from stable_baselines3.common import callbacks

    bars = []

    class RecordingBar(callbacks.tqdm):  # type: ignore[name-defined]
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(callbacks, "tqdm", RecordingBar)
    OneStepAC("MlpPolicy", "CartPole-v1", seed=0).learn(100, progress_bar=True)
    assert len(bars) == 1
    assert bars[0].total == 100 and bars[0].n == 100  # the bar saw every step


def test_predict_single_and_batched_raw_observations() -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0).learn(300)
    obs = np.array([0.01, 0.2, -0.03, 0.1], dtype=np.float32)
    single, _ = model.predict(obs, deterministic=True)
    batched, _ = model.predict(np.stack([obs, obs, -obs]), deterministic=True)
    assert np.shape(single) == ()
    assert batched.shape == (3,)
    assert batched[0] == single and batched[1] == single


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_device_cpu_and_auto(device: str) -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", device=device, seed=0).learn(50)
    assert model.device == get_device(device)
    tensors = [*model.policy.parameters(), *model.policy.buffers(), model._state.actor_traces, model._state.critic_traces]
    assert all(t.device.type == model.device.type for t in tensors)
    assert model._engine.name == ("kernels" if model.device.type == "cpu" else "reference")


def test_learn_without_arguments_uses_the_documented_budget(monkeypatch) -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0)
    seen = {}

    def fake_collect(env, callback, rollout_buffer, n_rollout_steps):
        seen["total"] = model._total_timesteps
        return False

    monkeypatch.setattr(model, "collect_rollouts", fake_collect)
    model.learn()
    assert seen["total"] == 30_000


def test_one_thread_while_learning_and_settings_restored_after() -> None:
    from stable_baselines3.common.callbacks import BaseCallback
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    class SeeThreads(BaseCallback):
        def _on_step(self) -> bool:
            seen.append((th.get_num_threads(), blas_threads()))
            return True

    seen: list[tuple[int, list[int]]] = []
    with threadpool_limits(limits=2, user_api="blas"):
        th.set_num_threads(2)
        OneStepAC("MlpPolicy", "CartPole-v1", seed=0).learn(20, callback=SeeThreads())
        assert th.get_num_threads() == 2
        assert all(n == 2 for n in blas_threads())
    assert seen and all(torch_threads == 1 and all(n == 1 for n in blas) for torch_threads, blas in seen)


def test_quickstart_main_job_prints_its_evaluation(capsys) -> None:
    from sb3_ac_plus.quickstart import main

    mean = main(["--steps", "300", "--eval-episodes", "2"])
    out = capsys.readouterr().out
    assert "OneStepAC on CartPole-v1: 300 env steps" in out
    assert f"{mean:.1f}" in out
    assert "reward threshold 475" in out
    with pytest.raises(SystemExit):
        main(["--steps", "0"])


@pytest.mark.skipif(not th.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("config", [dict(), dict(update_rule="optimizer", trace_lambda=0.0, learning_rate=1e-3)])
def test_cuda_device_runs_the_reference_update(config: dict) -> None:
    model = OneStepAC("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), device="cuda", seed=0, **config)
    before = model._flat_params.clone()
    model.learn(100)
    assert model._engine.name == "reference" and model._flat_params.device.type == "cuda"
    assert th.isfinite(model._flat_params).all() and not th.equal(before, model._flat_params)
