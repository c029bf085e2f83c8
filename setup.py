"""The files of the package; everything else is in pyproject.toml.

The hyperparameter files live once, in the repository's top-level ``zoo_configs/``. A wheel (``pip install .``)
ships them inside the package as ``sb3_ac_plus/zoo_configs/``; an editable install and a source checkout read the
folder itself (:data:`sb3_ac_plus.zoo.config.DEFAULT_CONFIG_DIR` looks in both places). Kept in ``setup.py`` because
pyproject.toml cannot both find the packages and add one from another folder.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["sb3_ac_plus", "sb3_ac_plus.*"]), "sb3_ac_plus.zoo_configs"],
    package_dir={"sb3_ac_plus.zoo_configs": "zoo_configs"},
    package_data={"sb3_ac_plus.zoo_configs": ["*.yml"]},
)
