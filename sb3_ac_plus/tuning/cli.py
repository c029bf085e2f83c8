"""Tune the hyperparameters of OneStepAC, A2C or PPO with Optuna.

    python tuning/optimize.py                      # OneStepAC on CartPole-v1, a few minutes on 2 cores
    python tuning/optimize.py --algo ppo --env Acrobot-v1 --n-trials 50 --n-seeds 3 --n-jobs 2
    python tuning/optimize.py --storage postgresql://user@host/db --study-name acro   # same command on every machine

Run ``python tuning/optimize.py --help`` for every flag.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sb3_ac_plus.common.arguments import env_id_problem, non_negative_int, positive_float, positive_int
from sb3_ac_plus.tuning.algorithms import ALGORITHMS, constructor_parameters
from sb3_ac_plus.tuning.objective import OBJECTIVES, TrialSettings, has_box_actions
from sb3_ac_plus.tuning.outputs import best_trial, summary, write_outputs
from sb3_ac_plus.tuning.storage import check_storage_argument, fail_dead_local_trials, open_storage, parse_storage
from sb3_ac_plus.tuning.study_setup import PRUNERS, SAMPLERS, StudyMismatchError, create_or_resume_study
from sb3_ac_plus.tuning.validation import check_fixed_value, check_trial_values
from sb3_ac_plus.tuning.workers import RunConfig, count_trials, describe_exit_codes, run_workers
from sb3_ac_plus.tuning.zoo_format import parse_policy_kwargs
from sb3_ac_plus.zoo.search_spaces import POLICY_KWARG_NAMES, check_searched_value, searched_names

DEFAULT_OUTPUT_DIR = "tuning_output"
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C
# Constructor arguments the tuner sets itself, with the flag to use instead.
SCIPY_SAMPLERS = ("qmc", "gp")
RESERVED_HYPERPARAMETERS = {"seed": "--seed", "device": "--device", "verbose": "--verbose", "env": "--env"}

EXAMPLES = """
examples:
  python tuning/optimize.py
  python tuning/optimize.py --algo ppo --env Acrobot-v1 --n-trials 50 --n-seeds 3 --n-jobs 2
  python tuning/optimize.py --algo a2c --fix gamma=0.99 net_arch=small --objective last
  python tuning/optimize.py --storage postgresql://user@host/db --study-name acro --max-total-trials 200
  python tuning/optimize.py --env Acrobot-v1 --enqueue trace_lambda=0.8 gamma=0.995 net_arch=tiny

Re-running a command resumes its study. The best hyperparameters land in
<output-dir>/<study-name>/best_hyperparameters.yml, ready for rl-zoo or sb3_ac_plus.tuning.make_model().
"""


def _storage(text: str) -> str:
    try:
        return check_storage_argument(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fixed_hyperparameter(text: str) -> tuple[str, Any]:
    name, separator, value = text.partition("=")
    if not separator:
        name, separator, value = text.partition(":")
    name = name.strip()
    if not separator or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE such as gamma=0.99, got {text!r}")
    value = value.strip()
    if name == "policy_kwargs":
        try:
            return name, parse_policy_kwargs(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        # a bare word: a string value (update_rule=obgd, net_arch=small), or a YAML-style constant
        return name, {"true": True, "false": False, "null": None, "none": None}.get(value.lower(), value)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface.

    :return: the parser
    """
    parser = argparse.ArgumentParser(
        prog="python tuning/optimize.py",
        description="Tune the hyperparameters of an actor-critic with Optuna: several seeds per trial, pruning on\n"
        "intermediate evaluations, resumable studies shared by worker processes and machines.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to tune")
    what.add_argument("--algo", choices=list(ALGORITHMS), default="one_step_ac", help="algorithm (default: one_step_ac)")
    what.add_argument("--env", metavar="ENV_ID", default="CartPole-v1", help="Gymnasium environment id (default: CartPole-v1)")
    what.add_argument(
        "--fix",
        nargs="+",
        action="extend",
        type=_fixed_hyperparameter,
        default=[],
        metavar="NAME=VALUE",
        help="hyperparameters to fix instead of search, e.g. --fix gamma=0.99 net_arch=small "
        "'policy_kwargs=dict(net_arch=[64, 64])'. NAME is a searched hyperparameter or any constructor argument "
        "of the algorithm; VALUE is a Python literal or a bare word (the ranges: sb3_ac_plus/zoo/search_spaces.py)",
    )
    what.add_argument(
        "--enqueue",
        nargs="+",
        action="append",
        type=_fixed_hyperparameter,
        default=[],
        metavar="NAME=VALUE",
        help="a trial to run before the sampler's own, with these searched hyperparameters (the rest sampled), to "
        "warm-start a study with a known config; repeat the flag for several trials, e.g. --enqueue gamma=0.99 "
        "net_arch=tiny --enqueue gamma=0.995. A trial the study already holds with the same values is not enqueued "
        "again, so rerunning the command resumes the study without duplicates",
    )
    what.add_argument("--device", default="cpu", help="torch device of the models (default: cpu)")

    trial = parser.add_argument_group("one trial")
    trial.add_argument(
        "--n-timesteps", metavar="N", type=positive_int, default=10_000, help="training steps per seed (default: 10000)"
    )
    trial.add_argument(
        "--n-seeds",
        metavar="N",
        type=positive_int,
        default=2,
        help="training seeds per trial, averaged into its value (default: 2)",
    )
    trial.add_argument(
        "--n-evaluations",
        metavar="N",
        type=positive_int,
        default=5,
        help="evaluations per seed, evenly spaced; each reports the mean over seeds to the pruner (default: 5)",
    )
    trial.add_argument(
        "--eval-episodes",
        metavar="N",
        type=positive_int,
        default=5,
        help="deterministic episodes per evaluation (default: 5)",
    )
    trial.add_argument(
        "--objective",
        choices=list(OBJECTIVES),
        default="mean",
        help="how the evaluation curve (mean over seeds) becomes the trial's value: 'last' evaluation, 'best' "
        "evaluation, or 'mean' over evaluations, which rewards learning fast and is the least noisy (default: mean)",
    )
    trial.add_argument(
        "--seed",
        metavar="SEED",
        type=int,
        default=0,
        help="training seeds are SEED, SEED+1, ...; the sampler is seeded from it (default: 0)",
    )

    search = parser.add_argument_group("search")
    search.add_argument(
        "--n-trials",
        metavar="N",
        type=positive_int,
        default=10,
        help="new trials for this run, all workers together (default: 10)",
    )
    search.add_argument(
        "--max-total-trials",
        metavar="N",
        type=positive_int,
        default=None,
        help="cap on the study's trials (complete, pruned or running) across all workers and machines",
    )
    search.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_float,
        default=None,
        help="seconds after which this run starts no new trial",
    )
    search.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="tpe",
        help="tpe (multivariate TPE), random, qmc (scrambled Sobol), gp (Gaussian process) (default: tpe)",
    )
    search.add_argument(
        "--pruner",
        choices=PRUNERS,
        default="median",
        help="median, halving (successive halving), hyperband or none (default: median)",
    )
    search.add_argument(
        "--n-startup-trials",
        metavar="N",
        type=non_negative_int,
        default=5,
        help="random trials before the sampler's model, finished trials before median pruning (default: 5)",
    )
    search.add_argument(
        "--n-warmup-evaluations",
        metavar="N",
        type=non_negative_int,
        default=None,
        help="evaluations of a trial that are never pruned (default: a third of --n-evaluations, at least 1)",
    )

    run = parser.add_argument_group("storage and workers")
    run.add_argument(
        "--storage",
        metavar="URL_OR_FILE",
        type=_storage,
        default=None,
        help="where the study lives: sqlite:///file.db, postgresql://user@host/db, or a journal file *.log "
        "(default: a journal file in the study's output folder)",
    )
    run.add_argument(
        "--study-name", metavar="NAME", default=None, help="study name (default: <algo>-<env>); the same name resumes"
    )
    run.add_argument(
        "--n-jobs",
        metavar="N",
        type=positive_int,
        default=1,
        help="worker processes on this machine, one trial each (default: 1)",
    )
    run.add_argument(
        "--heartbeat-interval",
        metavar="SECONDS",
        type=positive_int,
        default=10,
        help="database storages: seconds between heartbeats of a running trial (default: 10)",
    )
    run.add_argument(
        "--grace-period",
        metavar="SECONDS",
        type=positive_int,
        default=30,
        help="database storages: seconds without heartbeat before a running trial is marked failed (default: 30)",
    )

    out = parser.add_argument_group("outputs")
    out.add_argument(
        "--output-dir",
        metavar="DIR",
        default=DEFAULT_OUTPUT_DIR,
        help=f"outputs go to <output-dir>/<study-name>/ (default: {DEFAULT_OUTPUT_DIR})",
    )
    out.add_argument("--no-plots", action="store_true", help="do not draw the PNG plots")
    out.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="0: summary only, 1: progress bar and summary, 2: also Optuna's line per trial (default: 1)",
    )
    return parser


def _check_env(parser: argparse.ArgumentParser, env_id: str) -> None:
    problem = env_id_problem(env_id)
    if problem:
        parser.error(f"argument --env: {problem}")


def _check_fixed(parser: argparse.ArgumentParser, algo: str, fixed: dict[str, Any]) -> None:
    try:
        allowed = constructor_parameters(algo)
    except ImportError as error:
        parser.error(f"argument --algo: {algo} cannot be imported ({error})")
    searched = searched_names(algo)
    for name, value in fixed.items():
        if name in RESERVED_HYPERPARAMETERS:
            parser.error(f"argument --fix: {name} is set by the tuner; use {RESERVED_HYPERPARAMETERS[name]}")
        if name not in allowed and name not in searched and name not in (*POLICY_KWARG_NAMES, "policy"):
            parser.error(
                f"argument --fix: unknown hyperparameter {name!r} for {algo}; searched: {', '.join(searched)}; "
                f"other constructor arguments: {', '.join(sorted(allowed - set(searched) - {'policy_kwargs'}))}, "
                "policy_kwargs"
            )
        try:
            check_fixed_value(algo, name, value)
        except ValueError as error:
            parser.error(f"argument --fix: {error}")


def _check_enqueued(parser: argparse.ArgumentParser, algo: str, fixed: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    for params in trials:
        for name, value in params.items():
            if name in fixed:
                parser.error(f"argument --enqueue: {name} is fixed by --fix for every trial; leave it out of --enqueue")
            try:
                check_searched_value(algo, name, value)
            except ValueError as error:
                parser.error(f"argument --enqueue: {error}; other constructor arguments go to --fix")


def _check_trials(parser: argparse.ArgumentParser, args: argparse.Namespace, fixed: dict[str, Any]) -> None:
    """The trials around the fixed values, then each enqueued trial, through the loader's and the algorithm's checks."""
    continuous = has_box_actions(args.env)
    try:
        check_trial_values(args.algo, args.env, fixed, {}, continuous)
    except ValueError as error:
        parser.error(f"argument --fix: {error}")
    for params in args.enqueue:
        try:
            check_trial_values(args.algo, args.env, fixed, params, continuous)
        except ValueError as error:
            given = " ".join(f"{name}={value!r}" for name, value in params.items())
            parser.error(f"argument --enqueue: the trial {given}: {error}")


def _default_study_name(algo: str, env_id: str) -> str:
    return f"{algo}-{env_id}".replace("/", "_").replace(":", "_")


def parse_arguments(argv: list[str] | None = None) -> tuple[argparse.Namespace, TrialSettings]:
    """Parse and check the command line; exits with code 2 and a message naming the flag when it is invalid.

    :param argv: arguments, without the program name (default: ``sys.argv[1:]``)
    :return: the parsed arguments and the trial settings they define
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_env(parser, args.env)
    fixed = dict(args.fix)
    _check_fixed(parser, args.algo, fixed)
    args.enqueue = [dict(params) for params in args.enqueue]
    _check_enqueued(parser, args.algo, fixed, args.enqueue)
    _check_trials(parser, args, fixed)
    if args.sampler in SCIPY_SAMPLERS and importlib.util.find_spec("scipy") is None:
        parser.error(f"argument --sampler: {args.sampler} needs SciPy; pip install scipy, or use tpe or random")
    if args.n_evaluations > args.n_timesteps:
        parser.error(f"argument --n-evaluations: at most --n-timesteps ({args.n_timesteps}), got {args.n_evaluations}")
    if args.n_warmup_evaluations is None:
        args.n_warmup_evaluations = max(1, args.n_evaluations // 3)
    if args.study_name is None:
        args.study_name = _default_study_name(args.algo, args.env)
    settings = TrialSettings(
        algo=args.algo,
        env_id=args.env,
        n_timesteps=args.n_timesteps,
        n_seeds=args.n_seeds,
        n_evaluations=args.n_evaluations,
        eval_episodes=args.eval_episodes,
        objective=args.objective,
        seed=args.seed,
        fixed=fixed,
        max_total_trials=args.max_total_trials,
        device=args.device,
    )
    return args, settings


def main(argv: list[str] | None = None) -> int:
    """Run the tuner.

    :param argv: arguments, without the program name (default: ``sys.argv[1:]``)
    :return: the exit code: 0; 1 when the storage cannot be opened, a worker process crashed, or no trial of the study
        completed; 130 when interrupted (Ctrl-C), after the running trials were marked failed and the outputs written.
        Invalid arguments exit with 2 before any trial.
    """
    args, settings = parse_arguments(argv)
    try:
        return _tune(args, settings)
    except KeyboardInterrupt:  # before or after the trials (during them, _tune saves and returns)
        print("\ninterrupted; the study keeps every finished trial: rerun the command to resume it", file=sys.stderr)
        return EXIT_INTERRUPTED


def _tune(args: argparse.Namespace, settings: TrialSettings) -> int:
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose >= 2 else optuna.logging.WARNING)
    output_dir = Path(args.output_dir) / args.study_name
    spec = parse_storage(args.storage, output_dir / "optuna_journal.log", args.heartbeat_interval, args.grace_period)
    try:
        storage = open_storage(spec)
        study, notes = create_or_resume_study(storage, args.study_name, settings)
    except StudyMismatchError as error:
        build_parser().error(f"argument --study-name: {error}")
    except Exception as error:
        print(f"error: cannot open the study in {spec.describe()}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    fail_dead_local_trials(study)
    n_existing = len(study.get_trials(deepcopy=False))
    for params in args.enqueue:
        study.enqueue_trial(params, skip_if_exists=True)
    if args.n_jobs > (os.cpu_count() or 1):
        notes.append(f"--n-jobs {args.n_jobs} is more than the {os.cpu_count()} cores; workers will share cores")
    if args.n_warmup_evaluations >= settings.n_evaluations and args.pruner != "none":
        notes.append("--n-warmup-evaluations covers every evaluation: nothing is pruned")
    config = RunConfig(
        settings=settings,
        storage=spec,
        study_name=args.study_name,
        sampler=args.sampler,
        pruner=args.pruner,
        n_startup_trials=args.n_startup_trials,
        n_warmup_evaluations=args.n_warmup_evaluations,
        n_trials=args.n_trials,
        n_jobs=args.n_jobs,
        deadline=None if args.timeout is None else time.time() + args.timeout,
        n_existing_trials=n_existing,
        verbose=args.verbose,
    )
    planned = args.n_trials
    if args.max_total_trials is not None:
        planned = max(0, min(planned, args.max_total_trials - count_trials(study)))
    if args.verbose >= 1:
        print(
            f"Tuning {settings.algo} on {settings.env_id}: study {args.study_name!r} in {spec.describe()} "
            f"({n_existing} trials so far); up to {planned} new trials, {settings.n_seeds} seeds x "
            f"{settings.n_timesteps} steps each, {args.n_jobs} worker(s)",
            flush=True,
        )

    from tqdm import tqdm

    bar = tqdm(total=planned, unit="trial", disable=args.verbose < 1, dynamic_ncols=True)

    def show_best() -> None:
        trial = best_trial(study)
        if trial is not None:
            bar.set_postfix(best=f"{trial.value:.4g}", trial=trial.number, refresh=False)

    def on_trial_end(_: optuna.Study, trial: FrozenTrial) -> None:
        bar.update(1)
        if trial.state == TrialState.COMPLETE:
            show_best()

    def on_progress(finished: int) -> None:
        bar.n = finished
        show_best()
        bar.refresh()

    exit_codes: list[int] = []
    interrupted = False
    try:
        exit_codes = run_workers(config, progress=on_progress, on_trial_end=on_trial_end)
    except KeyboardInterrupt:
        interrupted = True
        notes.append("interrupted (Ctrl-C): the running trials were marked failed; rerun the command to resume the study")
    finally:
        bar.close()
    notes.extend(describe_exit_codes(exit_codes))
    fail_dead_local_trials(study)
    written = write_outputs(study, output_dir, plots=not args.no_plots)
    print(summary(study, written, spec.dashboard_argument(), notes))
    return _exit_code(study, exit_codes, interrupted)


def _exit_code(study: optuna.Study, worker_exit_codes: list[int], interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    if any(code != 0 for code in worker_exit_codes):
        return EXIT_FAILED
    if best_trial(study) is None:
        print("error: no trial of the study completed (the summary above says how they ended)", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
