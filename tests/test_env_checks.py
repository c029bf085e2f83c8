"""--env errors of the command lines: an unknown id, and an env whose package (Box2D, MuJoCo...) is not installed."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from sb3_ac_plus import compare, run
from sb3_ac_plus.common.arguments import env_id_problem
from sb3_ac_plus.tuning.cli import parse_arguments

MISSING = "NeedsBox2D-v0"


def _needs_box2d(**kwargs: Any) -> gym.Env:
    # What gymnasium's Box2D envs raise when the box2d package is absent.
    raise gym.error.DependencyNotInstalled('Box2D is not installed, run `pip install "gymnasium[box2d]"`')


@pytest.fixture
def env_without_its_package() -> Iterator[str]:
    gym.register(MISSING, entry_point=_needs_box2d)
    yield MISSING
    del gym.registry[MISSING]


def test_an_env_that_can_be_made_has_no_problem() -> None:
    assert env_id_problem("CartPole-v1") is None


def test_an_unknown_id_names_the_closest_ones() -> None:
    problem = env_id_problem("CartPol-v1")
    assert problem is not None and "unknown" in problem and "CartPole-v1" in problem


def test_a_missing_package_is_named_with_how_to_install_it(env_without_its_package: str) -> None:
    problem = env_id_problem(env_without_its_package)
    assert problem is not None
    assert "not installed" in problem and "Box2D" in problem and "pip install box2d" in problem


@pytest.mark.parametrize(
    "command",
    [
        lambda env, out: compare.main(["--env", env, "--seeds", "1", "--budget", "100", "--output-dir", str(out)]),
        lambda env, out: run.main(["train", "--algo", "one_step_ac", "--env", env, "--output-dir", str(out)]),
        lambda env, out: parse_arguments(["--env", env, "--output-dir", str(out)]),
    ],
    ids=["compare", "run", "tuning"],
)
def test_command_lines_exit_2_before_any_run(
    command: Callable[[str, Path], Any],
    env_without_its_package: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        command(env_without_its_package, tmp_path / "out")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--env" in error and "not installed" in error and "pip install box2d" in error
    assert not (tmp_path / "out").exists()
