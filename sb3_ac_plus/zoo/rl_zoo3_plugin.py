"""Train, tune and replay OneStepAC with rl_zoo3 itself (optional: ``pip install -e ".[zoo]"``).

rl_zoo3 looks algorithms up in module-level tables, ``rl_zoo3.utils.ALGOS`` and ``rl_zoo3.hyperparams_opt``'s
``HYPERPARAMS_SAMPLER`` and ``HYPERPARAMS_CONVERTER``; :func:`register` adds ``one_step_ac`` to them. rl_zoo3's own
command lines then accept ``--algo one_step_ac``; this module's ``main`` registers first and runs rl_zoo3's ``train``
(the default) or ``enjoy``::

    python -m sb3_ac_plus.zoo.rl_zoo3_plugin --algo one_step_ac --env CartPole-v1
    python -m sb3_ac_plus.zoo.rl_zoo3_plugin enjoy --algo one_step_ac --env CartPole-v1 -f logs --no-render
    python -m sb3_ac_plus.zoo.rl_zoo3_plugin --algo one_step_ac --env Acrobot-v1 -optimize --n-trials 20 -n 50000

Without ``--conf-file``, ``--algo one_step_ac`` reads the package's ``one_step_ac.yml`` (rl_zoo3 ships no file for
it); other algorithms read rl_zoo3's own files as usual. rl_zoo3 reads ``policy_kwargs`` strings with ``eval``:
through rl_zoo3, use only config files you trust. The loader of :mod:`sb3_ac_plus.zoo` reads the same files without
evaluating anything.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import optuna

from sb3_ac_plus.one_step_ac import OneStepAC
from sb3_ac_plus.zoo.config import config_path
from sb3_ac_plus.zoo.search_spaces import sample_hyperparameters

ALGO_NAME = "one_step_ac"
COMMANDS = ("train", "enjoy")


def sample_one_step_ac_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """OneStepAC's search space in rl_zoo3's sampler signature: the tuner's own sampler
    (:func:`sb3_ac_plus.zoo.search_spaces.sample_hyperparameters`), so both tune over the same ranges.

    Values are sampled under their constructor names, so the best trial's parameters are pasteable as they are.

    :param trial: the Optuna trial
    :param n_actions: the number of action dimensions of a Box action space, 0 for other spaces (as rl_zoo3 sets it):
        exploration noise is searched for Box actions only
    :param n_envs: unused
    :param additional_args: unused
    :return: constructor kwargs
    """
    kwargs = sample_hyperparameters(trial, ALGO_NAME, continuous_actions=n_actions > 0)  # rl_zoo3: 0 unless Box
    kwargs.pop("n_envs")  # rl_zoo3 takes the VecEnv's size from the config or its command line, not from the sampler
    return kwargs


def _convert_one_step_ac_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    # rl_zoo3 converts a stored trial's params (Optuna's names and values, net_arch as a name) to constructor kwargs:
    # the same sampler, every stored value fixed, fills in what the trial did not ask for (n_steps when traces are on)
    # a trial on Box actions stored use_sde
    kwargs = sample_hyperparameters(None, ALGO_NAME, fixed=sampled_params, continuous_actions="use_sde" in sampled_params)
    kwargs.pop("n_envs")
    return kwargs


def register() -> None:
    """Add ``one_step_ac`` to rl_zoo3's algorithm and sampler tables (idempotent).

    :raises ImportError: when rl_zoo3 is not installed
    """
    from rl_zoo3 import hyperparams_opt, utils

    utils.ALGOS[ALGO_NAME] = OneStepAC
    hyperparams_opt.HYPERPARAMS_SAMPLER[ALGO_NAME] = sample_one_step_ac_params
    hyperparams_opt.HYPERPARAMS_CONVERTER[ALGO_NAME] = _convert_one_step_ac_params


def with_default_config(argv: Sequence[str]) -> list[str]:
    """rl_zoo3 ``train`` arguments, with ``--conf-file`` set to the package's ``one_step_ac.yml`` for ``--algo
    one_step_ac`` when none is given (rl_zoo3 would look for a file of its own, which does not exist).

    :param argv: the arguments, without the program name
    :return: the arguments to give rl_zoo3
    """
    probe = argparse.ArgumentParser(add_help=False)  # the two flags as rl_zoo3's train spells them
    probe.add_argument("--algo", default="ppo")
    probe.add_argument("-conf", "--conf-file", default=None)
    known, _ = probe.parse_known_args(argv)
    if known.algo != ALGO_NAME or known.conf_file is not None:
        return list(argv)
    return [*argv, "--conf-file", str(config_path(ALGO_NAME))]


def main(argv: Sequence[str] | None = None) -> None:
    """rl_zoo3's ``train`` (the default) or ``enjoy`` command line, with ``one_step_ac`` registered.

    :param argv: ``[train|enjoy] ARGS...``, without the program name (default: ``sys.argv[1:]``)
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = arguments.pop(0) if arguments and arguments[0] in COMMANDS else "train"
    register()
    if command == "train":
        from rl_zoo3.train import train as run

        arguments = with_default_config(arguments)
    else:
        from rl_zoo3.enjoy import enjoy as run
    saved = sys.argv
    sys.argv = [f"{sys.argv[0]} {command}", *arguments]  # rl_zoo3 parses sys.argv
    try:
        run()
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
