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

ALGO_NAME = "one_step_ac"


def sample_one_step_ac_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """OneStepAC's search space in rl_zoo3's sampler signature: the ranges of ``tuning/search_spaces.py``.

    Values are sampled under their constructor names, so the best trial's parameters are pasteable as they are.

    :param trial: the Optuna trial
    :param n_actions: unused (rl_zoo3 passes it for action noise)
    :param n_envs: unused
    :param additional_args: unused
    :return: constructor kwargs
    """
    trace_lambda = trial.suggest_categorical("trace_lambda", [0.0, 0.5, 0.8, 0.9, 0.95])
    # OneStepAC bootstraps over n steps only without eligibility traces
    n_steps = trial.suggest_categorical("n_steps", [1, 2, 4, 8]) if trace_lambda == 0.0 else 1
    net_arch = {"small": [64, 64], "medium": [128, 128]}[trial.suggest_categorical("net_arch", ["small", "medium"])]
    return {
        "update_rule": "obgd",
        "learning_rate": trial.suggest_float("learning_rate", 0.03, 3.0, log=True),
        "critic_learning_rate": trial.suggest_float("critic_learning_rate", 0.03, 3.0, log=True),
        "trace_lambda": trace_lambda,
        "n_steps": n_steps,
        "gamma": trial.suggest_categorical("gamma", [0.95, 0.98, 0.99, 0.995, 0.999]),
        "ent_coef": trial.suggest_float("ent_coef", 1e-4, 0.1, log=True),
        "actor_kappa": trial.suggest_float("actor_kappa", 1.0, 4.0),
        "critic_kappa": trial.suggest_float("critic_kappa", 1.0, 4.0),
        "policy_kwargs": {"net_arch": net_arch},
    }


def _convert_one_step_ac_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    # rl_zoo3 converts a stored trial's params to constructor kwargs; ours are constructor names already, but
    # n_steps is absent when trace_lambda > 0 and net_arch is a name
    params = dict(sampled_params)
    names = {"small": [64, 64], "medium": [128, 128]}
    if "net_arch" in params:
        params["policy_kwargs"] = {"net_arch": names[params.pop("net_arch")]}
    return params


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
