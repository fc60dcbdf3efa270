"""``spotvlm eval --jobs N`` on a bag of several drives: the same runs and numbers as one process."""

from __future__ import annotations

import json
from pathlib import Path

from spotvlm_ros.cli import main

SETTINGS = [
    "--set",
    "edge.backend=zero",
    "--set",
    "cloud.backend=zero",
    "--set",
    "edge.step_time_s=0.15",
    "--profile",
    "constant:delay=0.4",
    "--profile",
    "lognormal:mean=0.8,sigma=0.5",
    "--modes",
    "svlm,lvlm,spotvlm",
    "--tasks",
    "vqa,grounding",
    "--questions",
    "light,cars,car",
    "--no-plots",
    "--quiet",
]


def _eval(bag: Path, out: Path, *extra: str) -> dict:
    assert main(["eval", str(bag), "--out", str(out), *SETTINGS, *extra]) == 0
    return json.loads((out / "results.json").read_text())


def test_jobs_give_the_same_runs(tmp_path: Path, capsys) -> None:
    bag = tmp_path / "bag"
    assert (
        main(["make-bag", str(bag), "--clips", "2", "--frames", "12", "--width", "160", "--height", "120"])
        == 0
    )
    one = _eval(bag, tmp_path / "one")
    three = _eval(bag, tmp_path / "three", "--jobs", "3")
    assert len(one["runs"]) == 2 * 4 * 3  # profiles x items (vqa light, cars; grounding light, car) x modes
    assert one["runs"] == three["runs"]
    for key in ("frames", "items", "modes", "profiles"):
        assert one[key] == three[key]
    assert {r["counts"]["sequences"] for r in one["runs"]} == {2}  # two drives in every run
    calls = three["model_calls"]
    assert calls["edge"]["calls"] == one["model_calls"]["edge"]["calls"] > 0
    capsys.readouterr()
