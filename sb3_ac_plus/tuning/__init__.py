"""Optuna tuner for the actor-critics of sb3-ac-plus (OneStepAC) and SB3's A2C and PPO.

Run it as ``python tuning/optimize.py --help`` from the repository, or ``python -m sb3_ac_plus.tuning.cli --help``
anywhere. The modules, in the order a trial meets them:

- :mod:`sb3_ac_plus.zoo.search_spaces`: the hyperparameter ranges of each algorithm, in one place (shared with the
  rl_zoo3 plugin, so it lives in the zoo package, which never imports the tuner).
- :mod:`sb3_ac_plus.tuning.algorithms`: the algorithm classes the tuner knows, imported lazily.
- :mod:`sb3_ac_plus.tuning.validation`: ``--fix`` and ``--enqueue`` values checked before the first trial.
- :mod:`sb3_ac_plus.tuning.objective`: one trial, several seeds, intermediate evaluations, pruning and divergence.
- :mod:`sb3_ac_plus.tuning.storage`: where the study lives (journal file, SQLite, PostgreSQL), how dead workers are found.
- :mod:`sb3_ac_plus.tuning.study_setup`: samplers, pruners, creating or resuming a study.
- :mod:`sb3_ac_plus.tuning.workers`: worker processes, the trial budget they share and the cap across all workers.
- :mod:`sb3_ac_plus.tuning.zoo_format`: best hyperparameters as an rl-zoo YAML block, and a model built from one.
- :mod:`sb3_ac_plus.tuning.outputs`: CSV, plots and the printed summary.
- :mod:`sb3_ac_plus.tuning.cli`: the command line.
"""

from sb3_ac_plus.tuning.zoo_format import make_model, read_block

__all__ = ["make_model", "read_block"]
