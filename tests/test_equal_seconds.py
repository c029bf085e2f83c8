"""python -m benchmarks.equal_seconds: the budget of one algorithm that takes as long as another's, from their
measured speeds."""

import json
from pathlib import Path

import pytest

from benchmarks.equal_seconds import main


def test_equal_budget_follows_the_measured_speeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "equal.json"
    result = main(
        [
            "--env", "Pendulum-v1", "--reference", "OneStepAC=one_step_ac@defaults", "--budget", "100000",
            "--other", "SAC=sac@defaults:learning_starts=50,batch_size=32,policy_kwargs=dict(net_arch=[32, 32])",
            "--steps", "300", "--other-steps", "150", "--rounds", "3", "--output", str(output),
        ]
    )  # fmt: skip
    assert json.loads(output.read_text()) == result
    speeds = result["env_steps_per_second"]
    assert [len(speeds[label]) for label in ("OneStepAC", "SAC")] == [3, 3]
    reference, other = (sorted(speeds[label])[1] for label in ("OneStepAC", "SAC"))
    assert result["equal_budget"] == round(100_000 * other / reference)
    assert result["seconds"] == pytest.approx(100_000 / reference)
    # SAC takes a gradient step per env step, OneStepAC one cheap update: the same seconds buy SAC fewer steps
    assert 0 < result["equal_budget"] < 100_000
    assert f"{result['equal_budget']:,} steps of SAC" in capsys.readouterr().out


def test_bad_variant_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit):
        main(["--env", "Pendulum-v1", "--reference", "no-algo", "--budget", "10", "--other", "SAC=sac@defaults"])
