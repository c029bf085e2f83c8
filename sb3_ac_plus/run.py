"""Train an algorithm on an env by name from its zoo config, plot saved runs, or make a before/after GIF.

    python -m sb3_ac_plus.run train --algo one_step_ac --env CartPole-v1 --steps 20000 --seed 0
    python -m sb3_ac_plus.run plot runs/ --output runs.png
    python -m sb3_ac_plus.run gif --algo one_step_ac --env CartPole-v1 --steps 20000 --output cartpole.gif

``train`` writes a run folder, ``<output-dir>/<algo>_<env>_s<seed>/`` (a timestamped name if that one is taken),
with model.zip, evaluations.csv (the periodic deterministic evaluation) and run.json (settings and totals). A run that
diverges stops there and is saved as it stopped, with ``diverged_at`` and ``error`` in run.json.
``plot`` finds every evaluations.csv under the given paths (run folders, or folders of them) and draws one curve per
algorithm and env: the IQM over its seeds with a 95% bootstrap band. ``gif`` records one deterministic episode
before training and one after, one after the other in a single GIF.
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sb3_ac_plus.common.arguments import env_id_problem, positive_int
from sb3_ac_plus.evaluation.plots import plot_learning_curves
from sb3_ac_plus.evaluation.training import train_and_evaluate


def _new_run_dir(output_dir: Path, name: str) -> Path:
    run_dir = output_dir / name
    if run_dir.exists():  # never overwrite an earlier run
        run_dir = output_dir / f"{name}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def train(args: argparse.Namespace) -> Path:
    run_dir = _new_run_dir(args.output_dir, f"{args.algo}_{args.env}_s{args.seed}")
    result = train_and_evaluate(
        args.algo,
        args.env,
        args.seed,
        budget=args.steps,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        config_dir=args.config_dir,
        save_path=run_dir / "model.zip",
    )
    curve = pd.DataFrame([vars(point) for point in result.curve])
    curve.insert(0, "eval_index", range(len(curve)))
    curve.to_csv(run_dir / "evaluations.csv", index=False)
    info = {k: v for k, v in result.to_dict().items() if k != "curve"}
    info["config_dir"] = None if args.config_dir is None else str(args.config_dir)
    (run_dir / "run.json").write_text(json.dumps(info, indent=1))
    last = result.curve[-1]
    if result.diverged_at is not None:
        print(f"warning: training diverged at {result.diverged_at:,} env steps ({result.error}); saved as it stopped")
    print(
        f"{args.algo} on {args.env}, seed {args.seed}: {result.total_steps} env steps in {result.train_seconds:.1f} s "
        f"({result.steps_per_second:.0f} steps/s); final evaluation {last.mean_return:.1f} +/- {last.std_return:.1f}\n"
        f"saved {run_dir}/"
    )
    return run_dir


def plot(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Path:
    frames = []
    for path in args.paths:
        if not path.exists():
            parser.error(f"paths: {path} does not exist")
        for csv in sorted(path.rglob("evaluations.csv")) if path.is_dir() else [path]:
            info = json.loads((csv.parent / "run.json").read_text()) if (csv.parent / "run.json").exists() else {}
            frame = pd.read_csv(csv)
            frame["run"] = f"{info.get('algo', csv.parent.name)} {info.get('env_id', '')}".strip()
            frame["seed"] = str(csv.parent)  # one band member per run folder
            frames.append(frame)
    if not frames:
        parser.error(f"paths: no evaluations.csv under {' '.join(map(str, args.paths))}")
    runs = pd.concat(frames, ignore_index=True)
    output = plot_learning_curves(runs, args.output, title=args.title, label="run")
    print(f"saved {output} ({len(frames)} runs)")
    return output


def gif(args: argparse.Namespace) -> Path:
    import torch as th

    from sb3_ac_plus.evaluation.gif import record_episode, write_gif
    from sb3_ac_plus.zoo import make_model_and_env  # imported here: tests stand in for the zoo

    th.set_num_threads(1)
    model, vec_env, n_timesteps = make_model_and_env(
        args.algo, args.env, seed=args.seed, config_dir=args.config_dir, n_timesteps=args.steps
    )
    before, before_return = record_episode(model, args.env, args.seed, args.max_frames, "before training")
    model.learn(int(n_timesteps))
    after, after_return = record_episode(model, args.env, args.seed, args.max_frames, f"after {model.num_timesteps:,} steps")
    vec_env.close()
    output = write_gif(before + after, args.output, fps=args.fps)
    print(
        f"saved {output}: {len(before)} frames before training (return {before_return:.0f}), "
        f"{len(after)} after {model.num_timesteps} steps (return {after_return:.0f})"
    )
    return output


def build_parser(algos: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sb3_ac_plus.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def algo_env(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--algo", required=True, choices=list(algos))
        sub.add_argument("--env", required=True, help="Gymnasium env id, e.g. CartPole-v1")
        sub.add_argument(
            "--steps", type=positive_int, default=None, help="env steps to train (default: the config's n_timesteps)"
        )
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument(
            "--config-dir", type=Path, default=None, help="folder of <algo>.yml configs (default: the package's zoo_configs/)"
        )

    sub = commands.add_parser("train", help="train from the zoo config and save the model and its evaluations")
    algo_env(sub)
    sub.add_argument("--eval-freq", type=positive_int, default=2000, help="env steps between evaluations (default: 2000)")
    sub.add_argument(
        "--eval-episodes", type=positive_int, default=10, help="deterministic episodes per evaluation (default: 10)"
    )
    sub.add_argument("--output-dir", type=Path, default=Path("runs"), help="default: runs/")

    sub = commands.add_parser("plot", help="plot the learning curves of saved runs")
    sub.add_argument("paths", nargs="+", type=Path, help="run folders, folders of run folders, or evaluations.csv files")
    sub.add_argument("--output", type=Path, default=Path("plot.png"), help="default: plot.png")
    sub.add_argument("--title", default="")

    sub = commands.add_parser("gif", help="GIF of one episode before training and one after")
    algo_env(sub)
    sub.add_argument("--output", type=Path, default=Path("agent.gif"), help="default: agent.gif")
    sub.add_argument("--max-frames", type=positive_int, default=500, help="frames per episode at most (default: 500)")
    sub.add_argument("--fps", type=positive_int, default=30)
    return parser


def main(argv: Sequence[str] | None = None) -> Path:
    from sb3_ac_plus.zoo import ALGOS  # imported here: tests stand in for the zoo

    parser = build_parser(list(ALGOS))
    args = parser.parse_args(argv)
    if args.command == "plot":
        return plot(args, parser)
    problem = env_id_problem(args.env)
    if problem:
        parser.error(f"--env: {problem}")
    return train(args) if args.command == "train" else gif(args)


if __name__ == "__main__":
    main(sys.argv[1:])
