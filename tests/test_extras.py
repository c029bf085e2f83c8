"""Each optional feature works with the core dependencies and its extra alone (pyproject.toml's optional-dependencies).

A fresh install of an extra is simulated in this environment: a subprocess makes every installed distribution that is
not required (by the package, the extra, or their requirements, recursively) impossible to import, then runs the
feature.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# argv[1]: JSON [project name, requirements]; argv[2]: the code to run once the other distributions are blocked.
ONLY_REQUIRED_DISTRIBUTIONS = """
import importlib.abc, json, sys
from importlib import metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

project, requirements = json.loads(sys.argv[1])
required, pending, seen = {canonicalize_name(project)}, [Requirement(text) for text in requirements], set()
while pending:
    requirement = pending.pop()
    key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
    if key in seen:
        continue
    seen.add(key)
    required.add(key[0])
    try:
        texts = metadata.distribution(requirement.name).requires or []
    except metadata.PackageNotFoundError:
        continue
    for text in texts:
        dependency = Requirement(text)
        extras = requirement.extras or {""}
        if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra}) for extra in extras):
            pending.append(dependency)

blocked = {
    module: sorted(names)
    for module, names in metadata.packages_distributions().items()
    if module not in sys.stdlib_module_names and not {canonicalize_name(name) for name in names} & required
}


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in blocked:
            raise ModuleNotFoundError(f"No module named {top!r} ({', '.join(blocked[top])}: not required)", name=top)
        return None


sys.meta_path.insert(0, Blocker())
del sys.argv[1]
exec(compile(sys.argv[1], "<feature>", "exec"))
"""


def run_with_only(extras: list[str], code: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` where only the core dependencies and those of ``extras`` (as pyproject.toml lists them) import.

    :param extras: names of optional-dependency groups
    :param code: Python code; ``sys.argv[2:]`` holds ``arguments``
    :param arguments: passed to the code
    :return: the finished process
    """
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *(text for extra in extras for text in project["optional-dependencies"][extra])]
    return subprocess.run(
        [sys.executable, "-c", ONLY_REQUIRED_DISTRIBUTIONS, json.dumps([project["name"], requirements]), code, *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_zoo_extra_brings_what_rl_zoo3_train_and_enjoy_import() -> None:
    pytest.importorskip("rl_zoo3")
    done = run_with_only(["zoo"], "import rl_zoo3.enjoy, rl_zoo3.train, sb3_ac_plus.zoo.rl_zoo3_plugin")
    assert done.returncode == 0, done.stderr[-3000:]


TENSORBOARD_RUN = """
import sys
from pathlib import Path
from stable_baselines3 import A2C

A2C("MlpPolicy", "CartPole-v1", n_steps=4, tensorboard_log=sys.argv[2], device="cpu").learn(8)
assert list(Path(sys.argv[2]).rglob("events.out.tfevents.*"))
"""


@pytest.mark.parametrize(("extras", "works"), [(["tensorboard"], True), (["extra"], True), ([], False)])
def test_tensorboard_logging_needs_the_tensorboard_extra(extras: list[str], works: bool, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    done = run_with_only(extras, TENSORBOARD_RUN, str(tmp_path))
    if works:
        assert done.returncode == 0, done.stderr[-3000:]
    else:  # the core install alone: SB3's error, which the README answers with the extra's name
        assert "ImportError: Trying to log data to tensorboard but tensorboard is not installed" in done.stderr
