"""Train OneStepAC with its defaults on an environment, as ``OneStepAC("MlpPolicy", env).learn()`` does, and print
its evaluation.

python -m sb3_ac_plus.quickstart [--env CartPole-v1] [--steps 30000] [--seed 0]
"""

import argparse
import time

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_ac_plus import OneStepAC
from sb3_ac_plus.common.arguments import positive_int
from sb3_ac_plus.evaluation.training import eval_seed


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium environment id")
    parser.add_argument("--steps", type=positive_int, default=30_000, help="env steps to train for (learn()'s default)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--eval-episodes", type=positive_int, default=10, help="deterministic evaluation episodes")
    args = parser.parse_args(argv)

    model = OneStepAC("MlpPolicy", args.env, seed=args.seed)
    start = time.perf_counter()
    model.learn(args.steps)
    elapsed = time.perf_counter() - start
    eval_env = Monitor(gym.make(args.env))
    eval_env.reset(seed=eval_seed(args.seed))
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    assert isinstance(mean, float)
    print(f"OneStepAC on {args.env}: {args.steps} env steps in {elapsed:.1f} s ({args.steps / elapsed:.0f} steps/s)")
    print(f"evaluation over {args.eval_episodes} deterministic episodes: {mean:.1f} +/- {std:.1f}")
    spec = eval_env.unwrapped.spec
    threshold = spec.reward_threshold if spec is not None else None
    if threshold is not None:
        print(f"reward threshold {threshold:g}: {'reached' if mean >= threshold else 'not reached'}")
    return float(mean)


if __name__ == "__main__":
    main()
