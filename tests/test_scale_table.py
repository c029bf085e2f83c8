"""python -m benchmarks.scale_table: the training-return curve weighs a seed's bins by their episodes, averages the
finished seeds alone, and leaves out episodes ending at the last step; the last fifth's return averages each finished
seed's evaluations from 80% of the budget on, then the seeds, and its swing is the median change between them."""

import json
from pathlib import Path

import pytest

from benchmarks.scale_table import main


def write_folder(folder: Path) -> None:
    folder.mkdir()
    summary = {
        "OneStepAC": {
            "budget": 400,
            "seeds_finished": [0, 1],
            "final_return_mean": 15.0,
            "final_returns": [10.0, 20.0],
            "median_env_steps_per_second": 1234.0,
        }
    }
    (folder / "summary.json").write_text(json.dumps({"env": "Pendulum-v1", "summary": summary}))
    (folder / "training_returns.csv").write_text(
        "variant,seed,bin_start,mean_return,episodes\n"
        "OneStepAC,0,0,10,1\n"
        "OneStepAC,0,100,40,3\n"  # seed 0, steps 0-200: (10 * 1 + 40 * 3) / 4 = 32.5
        "OneStepAC,1,0,-20,2\n"  # seed 1, steps 0-200: -20
        "OneStepAC,0,200,5,1\n"
        "OneStepAC,1,300,7,1\n"  # steps 200-400: (5 + 7) / 2 = 6
        "OneStepAC,1,400,1000,1\n"  # an episode ending at the last step: no segment
        "OneStepAC,2,0,999,1\n"  # an unfinished seed: left out
    )
    (folder / "runs.csv").write_text(
        "variant,seed,steps,mean_return,std_return,train_seconds\n"
        "OneStepAC,0,300,-500,0,1\n"  # before 80% of the budget (320): left out
        "OneStepAC,0,320,0,0,1\n"
        "OneStepAC,0,400,10,0,1\n"  # seed 0: (0 + 10) / 2 = 5
        "OneStepAC,1,360,40,0,1\n"
        "OneStepAC,1,400,20,0,1\n"  # seed 1: (40 + 20) / 2 = 30
        "OneStepAC,2,400,999,0,1\n"  # an unfinished seed: left out
    )


def test_curve_is_episode_weighted_over_finished_seeds(tmp_path: Path) -> None:
    write_folder(tmp_path / "run")
    table = main([str(tmp_path / "run"), "--segment", "200"])
    header, _, row = table.splitlines()
    assert header.count("training") == 2 and "training 0-0k" in header  # segments of 200 steps: 0-200, 200-400
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:5] == ["Pendulum-v1", "OneStepAC", "400", "2", "15.0 (10.0)"]
    assert cells[6] == "17.5 (5.0)"  # the last fifth: (5 + 30) / 2, worst seed 5
    assert cells[7] == "15"  # its swing: the median of |10 - 0| and |20 - 40| (seed 0's step 300 is before the fifth)
    assert cells[8:] == ["6.2", "6.0", "1,234"]  # (32.5 + -20) / 2 = 6.25, shown rounded half to even


def test_folder_without_summary_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path)])
