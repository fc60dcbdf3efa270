"""The phase record of a demo model: relative paths in recorded commands, one combined log."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from spotvlm_ros.training.phases import combined_log, phase_summaries, portable_command, portable_path

CWD, HOME = Path("/data/lab/spotvlm"), Path("/home/alice")


def test_absolute_paths_become_relative_to_the_working_directory_or_home():
    assert portable_path("/data/lab/spotvlm/spotvlm_ros/demo_models/svlm", CWD, HOME) == (
        "spotvlm_ros/demo_models/svlm"
    )
    assert portable_path("/data/lab/runs/lvlm", CWD, HOME) == "../runs/lvlm"
    assert portable_path("/home/alice/runs/lvlm", CWD, HOME) == "~/runs/lvlm"
    assert portable_path("out/train/lvlm", CWD, HOME) == "out/train/lvlm"
    assert portable_path(None, CWD, HOME) is None
    command = "spotvlm train-demo --out /home/alice/runs/a --init-from '/data/lab/my runs/b/model'"
    assert portable_command(command, CWD, HOME) == (
        "spotvlm train-demo --out ~/runs/a --init-from '../my runs/b/model'"
    )


def test_phase_summaries_number_the_phases_oldest_first():
    first = {"curriculum": "staged", "steps": 10, "recipe": {"lr": 0.1, "data": {"train_clips": 4}}}
    second = {"curriculum": "answers", "steps": 5, "heldout_accuracy": {"vqa:light": 0.5}}
    phases = phase_summaries([first], second)
    assert [(p["phase"], p["curriculum"], p["steps"]) for p in phases] == [
        (1, "staged", 10),
        (2, "answers", 5),
    ]
    assert phases[0]["lr"] == 0.1 and phases[0]["train_clips"] == 4
    assert phases[1]["heldout_accuracy"] == {"vqa:light": 0.5}


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_combined_log_folds_older_per_phase_logs_and_tags_every_row(tmp_path):
    (tmp_path / "phase1_train_log.csv").write_text("event,step,acc:a\nstep,25,\neval,50,0.5\n")
    (tmp_path / "train_log.csv").write_text("event,step,acc:b\nstep,25,\n")  # phase 2's own log
    log = combined_log(tmp_path, 2, "event,step,loss\nstep,25,0.3\n")
    rows = _rows(log)
    assert log.splitlines()[0] == "phase,event,step,acc:a,acc:b,loss"
    assert [(r["phase"], r["step"]) for r in rows] == [("1", "25"), ("1", "50"), ("2", "25"), ("3", "25")]
    assert rows[1]["acc:a"] == "0.5" and rows[3]["loss"] == "0.3"
    # an export whose log is already combined keeps its phases, and the next phase follows
    (tmp_path / "phase1_train_log.csv").unlink()
    (tmp_path / "train_log.csv").write_text(log)
    again = _rows(combined_log(tmp_path, 3, "event,step\nstep,25\n"))
    assert [r["phase"] for r in again] == ["1", "1", "2", "3", "4"]


def test_a_first_phase_log_is_tagged_phase_one():
    assert [r["phase"] for r in _rows(combined_log(None, 0, "event,step\nstep,25\nstep,50\n"))] == ["1", "1"]
