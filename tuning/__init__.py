"""Optuna tuner for the actor-critics of sb3-ac-plus (OneStepAC) and SB3's A2C and PPO.

Run it as a script, ``python tuning/optimize.py --help``. The modules, in the order a trial meets them:

- :mod:`tuning.search_spaces`: the hyperparameter ranges of each algorithm, in one place.
- :mod:`tuning.algorithms`: the algorithm classes the tuner knows, imported lazily.
- :mod:`tuning.objective`: one trial, several seeds, intermediate evaluations, pruning and divergence.
- :mod:`tuning.storage`: where the study lives (journal file, SQLite, PostgreSQL) and how dead workers are detected.
- :mod:`tuning.study_setup`: samplers, pruners, creating or resuming a study.
- :mod:`tuning.workers`: worker processes, the trial budget they share and the cap across all workers.
- :mod:`tuning.zoo_format`: best hyperparameters as an rl-zoo YAML block, and back into constructor kwargs.
- :mod:`tuning.outputs`: CSV, plots and the printed summary.
"""

from tuning.zoo_format import load_hyperparameters, make_model

__all__ = ["load_hyperparameters", "make_model"]
