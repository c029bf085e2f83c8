"""Worker processes: each runs trials of the shared study until the run's budget, the study's cap or the time is out.

``--n-jobs N`` starts N processes (``spawn``, so each has a fresh torch with one thread). They share the number of
trials this run may still start through :class:`TrialBudget`; ``--max-total-trials`` is checked against the study
itself, so it also holds for workers of other commands and machines.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from types import FrameType

import optuna
import torch as th
from optuna.trial import FrozenTrial, TrialState

from sb3_ac_plus.tuning.objective import COUNTED_STATES, Objective, TrialSettings
from sb3_ac_plus.tuning.storage import StorageSpec, fail_dead_local_trials, open_storage, worker_identity
from sb3_ac_plus.tuning.study_setup import create_pruner, create_sampler, host_entropy, sampler_seed


@dataclass(frozen=True)
class RunConfig:
    """Everything a worker needs; picklable so that it crosses to spawned processes.

    :param settings: what every trial shares
    :param storage: where the study lives
    :param study_name: the study's name
    :param sampler: sampler name
    :param pruner: pruner name
    :param n_startup_trials: random trials before the sampler's model, finished trials before median pruning
    :param n_warmup_evaluations: evaluations of a trial that are never pruned
    :param n_trials: new trials for this run, all workers together
    :param n_jobs: worker processes
    :param deadline: ``time.time()`` after which no trial starts, or None
    :param n_existing_trials: trials in the study when the run started (seeds the samplers)
    :param verbose: 0 quiet, 1 progress bar and summary, 2 also Optuna's log line per trial
    """

    settings: TrialSettings
    storage: StorageSpec
    study_name: str
    sampler: str
    pruner: str
    n_startup_trials: int
    n_warmup_evaluations: int
    n_trials: int
    n_jobs: int
    deadline: float | None
    n_existing_trials: int
    verbose: int


class TrialBudget:
    """The trials this run may still start, shared by its worker processes.

    :param n_trials: trials this run may start
    :param context: the multiprocessing context the workers are started with
    """

    def __init__(self, n_trials: int, context: SpawnContext) -> None:
        self.n_trials = n_trials
        self._started = context.Value("i", 0)
        self._finished = context.Value("i", 0)

    def claim(self) -> bool:
        """Take one trial from the budget.

        :return: False when the budget is spent
        """
        with self._started.get_lock():
            if self._started.value >= self.n_trials:
                return False
            self._started.value += 1
            return True

    def mark_finished(self) -> None:
        """Count one finished trial (for the progress bar)."""
        with self._finished.get_lock():
            self._finished.value += 1

    @property
    def finished(self) -> int:
        """Trials finished by this run so far."""
        return int(self._finished.value)


def _configure_logging(verbose: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose >= 2 else optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def count_trials(study: optuna.Study, states: tuple[TrialState, ...] = COUNTED_STATES) -> int:
    """Trials of the study in the given states.

    :param study: the study
    :param states: states to count (by default those counted by ``--max-total-trials``)
    :return: the count
    """
    return len(study.get_trials(deepcopy=False, states=states))


def run_worker(
    config: RunConfig,
    worker_index: int,
    budget: TrialBudget,
    on_trial_end: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> None:
    """Run trials until this run's budget, the study's cap or the deadline is reached.

    Each trial goes through ``study.optimize(n_trials=1)``, so Optuna's heartbeats, stale-trial checks and failure
    handling apply; an exception in a trial fails that trial only.

    :param config: the run's configuration
    :param worker_index: index of this worker in the run
    :param budget: the trials this run may still start
    :param on_trial_end: called after each trial with the study and the trial
    """
    _configure_logging(config.verbose)
    th.set_num_threads(1)
    extra = host_entropy(socket.gethostname(), os.getpid()) if config.storage.is_server or config.n_jobs > 1 else ()
    seed = sampler_seed(config.settings.seed, config.n_existing_trials, worker_index, extra)
    study = optuna.load_study(
        study_name=config.study_name,
        storage=open_storage(config.storage),
        sampler=create_sampler(config.sampler, seed, config.n_startup_trials),
        pruner=create_pruner(
            config.pruner, config.n_startup_trials, config.n_warmup_evaluations, config.settings.n_evaluations
        ),
    )
    fail_dead_local_trials(study)
    objective = Objective(config.settings, worker_identity())
    cap = config.settings.max_total_trials
    while not objective.max_total_trials_reached:
        if config.deadline is not None and time.time() >= config.deadline:
            break
        if cap is not None and count_trials(study) >= cap:
            break
        if not budget.claim():
            break
        callbacks = [on_trial_end] if on_trial_end is not None else None
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks)
        budget.mark_finished()


# Thread pools of the numerical libraries, read once when they load: one thread per worker keeps N workers on N cores.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _stop_once(signum: int, frame: FrameType | None) -> None:
    # Ctrl-C reaches every process of the terminal, and the parent forwards it too: the first one stops the running
    # trial, which Optuna then records as failed; a second one must not interrupt that record.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker_main(config: RunConfig, worker_index: int, budget: TrialBudget) -> None:
    signal.signal(signal.SIGINT, _stop_once)
    try:
        run_worker(config, worker_index, budget)
    except KeyboardInterrupt:
        pass  # the parent reports and writes the outputs


def run_workers(
    config: RunConfig,
    progress: Callable[[int], None] | None = None,
    on_trial_end: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    poll_seconds: float = 0.5,
) -> list[int]:
    """Run the study with ``config.n_jobs`` workers: in this process for one, in spawned processes otherwise.

    :param config: the run's configuration
    :param progress: called with the number of trials finished so far, when it changes (several workers)
    :param on_trial_end: called after each trial (one worker, in this process)
    :param poll_seconds: how often the parent looks at its workers
    :return: the exit codes of the worker processes (empty with one worker)
    """
    context = mp.get_context("spawn")
    budget = TrialBudget(config.n_trials, context)
    if config.n_jobs == 1:
        run_worker(config, 0, budget, on_trial_end)
        return []
    processes: list[SpawnProcess] = [
        context.Process(target=_worker_main, args=(config, index, budget), name=f"tuning-worker-{index}")
        for index in range(config.n_jobs)
    ]
    with _single_threaded_children():
        for process in processes:
            process.start()
    reported = -1
    try:
        while any(process.is_alive() for process in processes):
            if progress is not None and budget.finished != reported:
                reported = budget.finished
                progress(reported)
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        # Optuna fails each worker's running trial and the worker returns. A Ctrl-C in the terminal reached them
        # already; a SIGINT sent to this process alone is passed on (the workers take only the first one).
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGINT)
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()
        raise
    for process in processes:
        process.join()
    if progress is not None:
        progress(budget.finished)
    return [process.exitcode if process.exitcode is not None else -1 for process in processes]


def describe_exit_codes(exit_codes: list[int]) -> list[str]:
    """Messages for worker processes that did not end cleanly.

    :param exit_codes: exit codes from :func:`run_workers`
    :return: one message per abnormal exit
    """
    return [
        f"worker {index} exited with code {code}" + (" (killed by a signal)" if code < 0 else "")
        for index, code in enumerate(exit_codes)
        if code != 0
    ]
