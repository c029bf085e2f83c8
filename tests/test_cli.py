"""python -m sb3_ac_plus.run: train and save a run, plot saved runs, a GIF before and after training, bad flags."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from sb3_ac_plus import OneStepAC
from sb3_ac_plus.run import main


def test_train_saves_a_run_then_plot_draws_it(tmp_path: Path) -> None:
    common = ["--env", "CartPole-v1", "--steps", "400", "--eval-freq", "200", "--eval-episodes", "2"]
    runs = tmp_path / "runs"
    first = main(["train", "--algo", "one_step_ac", *common, "--output-dir", str(runs)])
    assert first == runs / "one_step_ac_CartPole-v1_s0"
    curve = pd.read_csv(first / "evaluations.csv")
    assert list(curve["steps"]) == [0, 200, 400]
    info = json.loads((first / "run.json").read_text())
    assert info["total_steps"] == 400 and info["steps_per_second"] > 0
    loaded = OneStepAC.load(first / "model.zip")
    assert loaded.num_timesteps == 400
    again = main(["train", "--algo", "one_step_ac", *common, "--output-dir", str(runs)])
    assert again != first and again.parent == runs  # a second run never overwrites the first
    main(["train", "--algo", "a2c", *common, "--seed", "1", "--output-dir", str(runs)])

    output = main(["plot", str(runs), "--output", str(tmp_path / "plot.png"), "--title", "CartPole"])
    assert output.stat().st_size > 0
    with Image.open(output) as image:
        assert image.format == "PNG"


def test_gif_before_and_after_training(tmp_path: Path) -> None:
    pytest.importorskip("pygame", reason="CartPole renders with pygame")
    argv = ["gif", "--algo", "one_step_ac", "--env", "CartPole-v1", "--steps", "300", "--max-frames", "15"]
    output = main([*argv, "--output", str(tmp_path / "cartpole.gif")])
    with Image.open(output) as image:
        assert image.format == "GIF"
        assert 2 < image.n_frames <= 30  # one episode before training, one after, each cut at 15 frames


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["train", "--algo", "dqn", "--env", "CartPole-v1"], "--algo"),
        (["train", "--algo", "a2c", "--env", "NoSuchEnv-v0"], "--env"),
        (["train", "--algo", "a2c", "--env", "CartPole-v1", "--steps", "0"], "--steps"),
        (["gif", "--algo", "a2c", "--env", "CartPole-v1", "--max-frames", "0"], "--max-frames"),
        (["plot", "no/such/folder"], "no/such/folder"),
        (["fly"], "fly"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def test_help_from_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "sb3_ac_plus.run", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "train" in done.stdout and "gif" in done.stdout
