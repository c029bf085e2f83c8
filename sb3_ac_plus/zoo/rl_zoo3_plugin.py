"""Train and tune OneStepAC with rl_zoo3 itself (optional: ``pip install rl_zoo3``).

rl_zoo3 looks algorithms up in two module-level tables, ``rl_zoo3.utils.ALGOS`` and
``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER``; :func:`register` adds ``one_step_ac`` to both. rl_zoo3's own
command line then accepts ``--algo one_step_ac``; this module's ``main`` registers first and runs it::

    python -m sb3_ac_plus.zoo.rl_zoo3_plugin --algo one_step_ac --env CartPole-v1 \
        --conf-file sb3_ac_plus/zoo_configs/one_step_ac.yml
    python -m sb3_ac_plus.zoo.rl_zoo3_plugin --algo one_step_ac --env Acrobot-v1 -optimize --n-trials 20 -n 50000

rl_zoo3 reads ``policy_kwargs`` strings with ``eval``: through rl_zoo3, use only config files you trust. The loader
of :mod:`sb3_ac_plus.zoo` reads the same files without evaluating anything.
"""

from __future__ import annotations

from typing import Any

import optuna

from sb3_ac_plus.one_step_ac import OneStepAC
from sb3_ac_plus.zoo.search_spaces import sample_hyperparameters

ALGO_NAME = "one_step_ac"


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


def main() -> None:
    """rl_zoo3's ``train`` command line, with ``one_step_ac`` registered."""
    register()
    from rl_zoo3.train import train

    train()


if __name__ == "__main__":
    main()
