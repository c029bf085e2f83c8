"""Tune the hyperparameters of OneStepAC, A2C or PPO with Optuna: ``python tuning/optimize.py --help``.

The tuner is the package's :mod:`sb3_ac_plus.tuning`; this script is its command line (``python -m
sb3_ac_plus.tuning.cli`` is the same).
"""

import sys

from sb3_ac_plus.tuning.cli import main

if __name__ == "__main__":
    sys.exit(main())
