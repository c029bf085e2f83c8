"""Samplers, pruners, and creating or resuming a study whose settings match the command."""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning

from sb3_ac_plus.tuning.objective import TrialSettings
from sb3_ac_plus.tuning.zoo_format import to_yaml_ready

SAMPLERS = ("tpe", "random", "qmc", "gp")
PRUNERS = ("median", "halving", "hyperband", "none")

# Settings that define what a trial's value means: a study cannot be resumed with different ones.
IDENTITY_SETTINGS = ("algo", "env_id")
# Settings that make values incomparable when changed: resuming with different ones only warns.
COMPARABILITY_SETTINGS = ("n_timesteps", "n_seeds", "n_evaluations", "eval_episodes", "objective", "fixed")


class StudyMismatchError(ValueError):
    """The stored study was created for another algorithm or environment."""


def sampler_seed(seed: int, n_existing_trials: int, worker_index: int, extra: tuple[int, ...] = ()) -> int:
    """Seed of a worker's sampler.

    It differs between the workers of a run (else they would propose the same random start-up points) and between
    successive runs on one study (else a resumed random sampler would replay the first run), yet a single-worker run
    is reproducible from its ``--seed`` and the study it resumes.

    :param seed: the run's ``--seed``
    :param n_existing_trials: trials in the study when the run started
    :param worker_index: index of the worker in this run
    :param extra: more entropy, e.g. host and pid when other machines share the study
    :return: a 32-bit seed
    """
    return int(np.random.SeedSequence([seed, n_existing_trials, worker_index, *extra]).generate_state(1)[0])


def host_entropy(host: str, pid: int) -> tuple[int, int]:
    """Entropy that tells apart workers started by the same command on several machines.

    :param host: host name
    :param pid: process id
    :return: two integers for :func:`sampler_seed`
    """
    return zlib.crc32(host.encode()), pid


def create_sampler(name: str, seed: int, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    """Build a sampler.

    :param name: one of :data:`SAMPLERS`
    :param seed: the sampler's seed
    :param n_startup_trials: random trials before a model-based sampler takes over
    :return: the sampler
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if name == "tpe":
            # multivariate + group model the conditional OneStepAC space (n_steps exists only without traces);
            # constant_liar keeps parallel workers from proposing the same point while trials run
            return optuna.samplers.TPESampler(
                n_startup_trials=n_startup_trials, multivariate=True, group=True, constant_liar=True, seed=seed
            )
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "qmc":
            return optuna.samplers.QMCSampler(scramble=True, seed=seed, warn_independent_sampling=False)
        if name == "gp":
            return optuna.samplers.GPSampler(n_startup_trials=n_startup_trials, seed=seed)
    raise ValueError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")


def create_pruner(
    name: str, n_startup_trials: int, n_warmup_evaluations: int, n_evaluations: int
) -> optuna.pruners.BasePruner:
    """Build a pruner. The first ``n_warmup_evaluations`` reports of a trial are never pruned.

    :param name: one of :data:`PRUNERS`
    :param n_startup_trials: finished trials before the median pruner starts pruning
    :param n_warmup_evaluations: evaluations of a trial that are never pruned
    :param n_evaluations: evaluations per trial (the maximal resource of Hyperband)
    :return: the pruner
    """
    # reports are numbered from 1; Optuna prunes from step == n_warmup_steps (median) or min_resource (halving)
    first_prunable = n_warmup_evaluations + 1
    if name == "none" or first_prunable > n_evaluations:
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=first_prunable)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first_prunable, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=first_prunable, max_resource=n_evaluations, reduction_factor=3)
    raise ValueError(f"unknown pruner {name!r}; use one of {', '.join(PRUNERS)}")


def study_settings(settings: TrialSettings) -> dict[str, Any]:
    """The settings stored with a study, to check a resumed run against.

    :param settings: the trial settings of the run
    :return: JSON-ready settings
    """
    return {
        "algo": settings.algo,
        "env_id": settings.env_id,
        "n_timesteps": settings.n_timesteps,
        "n_seeds": settings.n_seeds,
        "n_evaluations": settings.n_evaluations,
        "eval_episodes": settings.eval_episodes,
        "objective": settings.objective,
        "fixed": to_yaml_ready(settings.fixed),
    }


def create_or_resume_study(
    storage: optuna.storages.BaseStorage, study_name: str, settings: TrialSettings
) -> tuple[optuna.Study, list[str]]:
    """Create the study, or load it when it exists and was made for the same algorithm and environment.

    :param storage: the opened storage
    :param study_name: the study's name
    :param settings: the trial settings of this run
    :return: the study, and warnings about settings that differ from those it was created with
    :raises StudyMismatchError: when the study exists for another algorithm or environment
    """
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize", load_if_exists=True)
    wanted = study_settings(settings)
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", wanted)
        return study, []
    for key in IDENTITY_SETTINGS:
        if stored.get(key) != wanted[key]:
            raise StudyMismatchError(
                f"study {study_name!r} was created for {stored.get('algo')} on {stored.get('env_id')}, "
                f"not {settings.algo} on {settings.env_id}; choose another --study-name"
            )
    notes = [
        f"{key} is {wanted[key]!r} but the study was created with {stored.get(key)!r}; values may not be comparable"
        for key in COMPARABILITY_SETTINGS
        if stored.get(key) != wanted[key]
    ]
    return study, notes
