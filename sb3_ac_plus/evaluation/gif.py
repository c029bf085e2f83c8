"""Record deterministic episodes of an agent as GIF frames (Pillow), as the Keras CartPole actor-critic tutorial shows."""

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize


def record_episode(
    model: BaseAlgorithm, env_id: str, seed: int = 0, max_frames: int = 500, caption: str = "", width: int = 300
) -> tuple[list[Image.Image], float]:
    """Run one deterministic episode with ``render_mode="rgb_array"``.

    :param max_frames: the episode is cut after this many steps
    :param caption: text drawn on every frame (with the running return)
    :param width: frames are scaled to this width
    :return: the frames and the episode's return
    """
    # pygame renders without a display through SDL's dummy video driver.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env: VecEnv = DummyVecEnv([lambda: gym.make(env_id, render_mode="rgb_array")])
    training_env = model.get_env()
    if isinstance(training_env, VecNormalize):
        env = VecNormalize(env, training=False, norm_reward=False)
        env.obs_rms = training_env.obs_rms
    env.seed(seed)
    obs = env.reset()
    frames, total = [], 0.0
    for _ in range(max_frames):
        frames.append(_frame(env, caption, total, width))
        action, _ = model.predict(obs, deterministic=True)  # type: ignore[arg-type]
        obs, reward, done, _ = env.step(action)
        total += float(env.get_original_reward()[0]) if isinstance(env, VecNormalize) else float(reward[0])
        if done[0]:
            break
    env.close()
    return frames, total


def _frame(env: VecEnv, caption: str, total: float, width: int) -> Image.Image:
    array = env.get_images()[0]
    image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    image = image.resize((width, max(1, round(image.height * width / image.width))))
    ImageDraw.Draw(image).text((5, 5), f"{caption}  return {total:.0f}", fill=(0, 0, 0))
    return image


def write_gif(frames: list[Image.Image], output: str | Path, fps: int = 30) -> Path:
    """Write the frames as a looping GIF."""
    if not frames:
        raise ValueError("no frames to write")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(output, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    return output
