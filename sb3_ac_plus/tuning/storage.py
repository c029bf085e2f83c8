"""Where a study lives, and how the trials of dead workers are closed.

- No ``--storage``: an Optuna journal file in the study's output folder. Each write is one appended, fsync'ed line
  under a file lock, so the file survives crashes and is shared safely by the worker processes of one machine.
- ``sqlite:///file.db``, ``postgresql://user@host/db`` (psycopg 3, installed with the ``tuning`` extra),
  ``mysql+pymysql://...``:
  an Optuna RDB storage. Server storages are how several machines share one study.
- A path ending in ``.log`` or ``.journal``: that journal file.

A worker killed with SIGKILL leaves its trial RUNNING. RDB storages get heartbeats: every worker records one for its
running trial every ``heartbeat_interval`` seconds, and a trial silent for ``grace_period`` seconds is failed by the
next worker that starts a trial (Optuna does this) or by the next run of the command. Journal storages have no
heartbeats in Optuna, so each trial records the host, pid and start time of its process, and a worker on the same
host fails the RUNNING trials whose process is gone (:func:`fail_dead_local_trials`).
"""

from __future__ import annotations

import importlib.util

import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

RDB_BACKENDS = ("sqlite", "postgresql", "mysql")
SERVER_BACKENDS = ("postgresql", "mysql")
JOURNAL_SUFFIXES = (".log", ".journal")
DEFAULT_JOURNAL_NAME = "optuna_journal.log"


@dataclass(frozen=True)
class StorageSpec:
    """A parsed ``--storage``: a journal file or an RDB URL, plus the heartbeat settings of RDB storages.

    :param journal_path: path of the journal file, or None for an RDB storage
    :param url: SQLAlchemy URL of an RDB storage, or None for a journal file
    :param heartbeat_interval: seconds between heartbeats of a running trial (RDB only)
    :param grace_period: seconds without heartbeat after which a running trial is failed (RDB only)
    """

    journal_path: str | None = None
    url: str | None = None
    heartbeat_interval: int = 10
    grace_period: int = 30

    @property
    def is_server(self) -> bool:
        """True for storages that other machines can reach (PostgreSQL, MySQL)."""
        return self.url is not None and make_url(self.url).get_backend_name() in SERVER_BACKENDS

    def describe(self) -> str:
        """The storage as shown to the user, password hidden."""
        if self.url is not None:
            return make_url(self.url).render_as_string(hide_password=True)
        return f"journal file {self.journal_path}"

    def dashboard_argument(self) -> str:
        """What to pass to ``optuna-dashboard`` to open this storage."""
        if self.url is not None:
            return make_url(self.url).render_as_string(hide_password=True)
        return str(self.journal_path)


def check_storage_argument(value: str) -> str:
    """Check the form of a ``--storage`` value (not whether the server answers).

    :param value: the value given on the command line
    :return: the value, unchanged
    :raises ValueError: with a message saying what is accepted
    """
    accepted = (
        "use sqlite:///path.db, postgresql://user@host[:port]/database, "
        "mysql+pymysql://user@host/database, or a journal file path ending in .log or .journal"
    )
    if "://" not in value:
        if value.endswith(JOURNAL_SUFFIXES):
            return value
        raise ValueError(f"{value!r} is neither a database URL nor a journal file; {accepted}")
    try:
        url = make_url(value)
    except ArgumentError as error:
        raise ValueError(f"{value!r} is not a valid database URL ({error}); {accepted}") from error
    backend = url.get_backend_name()
    if backend not in RDB_BACKENDS:
        hint = " (SQLAlchemy spells it postgresql://)" if backend == "postgres" else ""
        raise ValueError(f"unsupported database {backend!r}{hint}; {accepted}")
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError(f"{value!r} is an in-memory database, which workers cannot share nor resume; {accepted}")
    if backend in SERVER_BACKENDS and (not url.host or not url.database):
        raise ValueError(f"{value!r} needs a host and a database name; {accepted}")
    if backend == "postgresql":
        # SQLAlchemy 2.1 reads postgresql:// as postgresql+psycopg (psycopg 3); psycopg2 must be asked for by name.
        module = "psycopg2" if url.get_driver_name() == "psycopg2" else "psycopg"
        if importlib.util.find_spec(module) is None:
            package = "psycopg2-binary" if module == "psycopg2" else "psycopg[binary] (pip install -e '.[tuning]')"
            raise ValueError(f"{value!r} needs the {module} driver: install {package}, or use postgresql://")
    return value


def parse_storage(
    value: str | None, default_journal: Path, heartbeat_interval: int = 10, grace_period: int = 30
) -> StorageSpec:
    """Turn ``--storage`` into a :class:`StorageSpec`.

    :param value: the value given on the command line, or None for the default journal file
    :param default_journal: the journal file used when ``value`` is None
    :param heartbeat_interval: seconds between heartbeats (RDB only)
    :param grace_period: seconds of silence before a running trial is failed (RDB only)
    :return: the storage description
    :raises ValueError: when the value is malformed
    """
    if value is None:
        return StorageSpec(journal_path=str(default_journal))
    check_storage_argument(value)
    if "://" not in value:
        return StorageSpec(journal_path=value)
    return StorageSpec(url=value, heartbeat_interval=heartbeat_interval, grace_period=grace_period)


def open_storage(spec: StorageSpec, attempts: int = 3) -> BaseStorage:
    """Open (and create if needed) the storage.

    :param spec: the storage description
    :param attempts: tries for an RDB storage; processes starting together on an empty database race to create
        its tables, and the losers succeed on a second try
    :return: the Optuna storage
    """
    if spec.journal_path is not None:
        Path(spec.journal_path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(spec.journal_path))
    assert spec.url is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeat_interval is experimental in Optuna
        for attempt in range(1, attempts + 1):
            try:
                return RDBStorage(
                    spec.url,
                    engine_kwargs={"pool_pre_ping": True},
                    heartbeat_interval=spec.heartbeat_interval,
                    grace_period=spec.grace_period,
                )
            except Exception:
                if attempt == attempts:
                    raise
                time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def _process_start_time(pid: int) -> str:
    # Field 22 of /proc/<pid>/stat (clock ticks since boot) tells a live process from a later one with a reused pid.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def worker_identity() -> str:
    """``host:pid:start time`` of this process, recorded on each trial it runs."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start_time(pid)}"


def is_dead_local_worker(identity: str) -> bool:
    """Whether ``identity`` names a process of this host that no longer runs.

    :param identity: a value of :func:`worker_identity`
    :return: True when the process is gone; False when it runs or lives on another host
    """
    host, _, rest = identity.partition(":")
    pid_text, _, start_time = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    current_start = _process_start_time(pid)
    return bool(start_time and current_start and current_start != start_time)


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose worker process, on this host, is gone, then those whose heartbeat is stale.

    The process check covers journal files, which have no heartbeats, and on RDB storages it closes a local dead
    worker's trial at once, with a reason. Heartbeats (:func:`optuna.storages.fail_stale_trials`) cover the workers
    of other machines.

    :param study: the study to clean
    :return: the numbers of the trials failed by this call
    """
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        identity = trial.user_attrs.get("worker")
        if not isinstance(identity, str) or not is_dead_local_worker(identity):
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"worker process {identity} died")
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        except UpdateFinishedTrialError:
            continue  # another worker closed it first
        failed.append(trial.number)
    # after the pid check, which knows the reason, and before the grace period would have passed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return failed
