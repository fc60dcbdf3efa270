"""Progress of ``spotvlm eval`` and ``spotvlm demo`` off a terminal: one stderr line per finished run."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest
from time_scale import scaled

from spotvlm_ros.cli_run import run_evaluation
from spotvlm_ros.core.config import load_config
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.eval.runner import EvalPlan, prepare_eval
from spotvlm_ros.runtime.make_bag import make_synthetic_bag

ZERO = ["--set", "edge.backend=zero", "--set", "cloud.backend=zero"]
TIMEOUT_S = scaled(300)
LINE = re.compile(r"run (\d+)/(\d+) done: mode (\w+), profile (\S+), (\S+): score ")


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "clip"
    make_synthetic_bag(path, frames=12, width=160, height=120, seed=5)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The command with stderr to a pipe (not a terminal), as in CI or behind ``tee``."""
    return subprocess.run(
        [sys.executable, "-m", "spotvlm_ros.cli", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def test_eval_prints_a_line_per_finished_mode_and_profile_to_a_pipe(bag, tmp_path):
    profiles = ["constant:delay=0.3", "constant:delay=1.0"]
    args = ["eval", str(bag), "--out", str(tmp_path), "--modes", "svlm,spotvlm", "--tasks", "vqa"]
    args += ["--questions", "light", "--no-plots", *ZERO]
    proc = _cli(*args, *(part for spec in profiles for part in ("--profile", spec)))
    assert proc.returncode == 0, proc.stderr
    found = [LINE.search(line).groups() for line in proc.stderr.splitlines() if LINE.search(line)]
    expected = [
        (str(n), "4", mode, profile, "vqa:light")
        for n, (profile, mode) in enumerate(((p, m) for p in profiles for m in ("svlm", "spotvlm")), 1)
    ]
    assert found == expected, proc.stderr
    assert "\x1b[" not in proc.stderr  # no terminal control codes in a log


def test_quiet_prints_no_progress(bag, tmp_path):
    args = ["eval", str(bag), "--out", str(tmp_path), "--modes", "svlm", "--tasks", "vqa", "--no-plots"]
    proc = _cli(*args, "--quiet", *ZERO)
    assert proc.returncode == 0, proc.stderr
    assert not LINE.search(proc.stderr)


def test_demo_prints_a_line_per_finished_mode_to_a_pipe(tmp_path):
    proc = _cli("demo", "--out", str(tmp_path / "demo"), "--set", "eval.max_frames=6", *ZERO)
    assert proc.returncode == 0, proc.stderr
    modes = [LINE.search(line).group(3) for line in proc.stderr.splitlines() if LINE.search(line)]
    assert set(modes) >= {"svlm", "lvlm", "spotvlm", "spotvlm_no_focus"}, proc.stderr


class _RecordingBackend(ZeroCostBackend):
    """Test double: the zero-cost model, noting how many progress lines stderr held at each call."""

    def __init__(self, name: str, stderr: io.StringIO, seen: list[int]):
        super().__init__(name=name)
        self.stderr, self.seen = stderr, seen

    def generate(self, *args, **kwargs):
        self.seen.append(len(LINE.findall(self.stderr.getvalue())))
        return super().generate(*args, **kwargs)


def test_each_line_is_written_when_its_run_finishes_before_the_next_starts(bag, tmp_path, monkeypatch):
    stderr = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", stderr)
    config = load_config(None, {"edge.backend": "zero", "cloud.backend": "zero"})
    setup = prepare_eval(
        bag, config, EvalPlan(["svlm", "spotvlm"], ["vqa"], ["constant:delay=0.3"], ["light"])
    )
    seen: list[int] = []
    edge = _RecordingBackend("zero:edge", stderr, seen)
    cloud = _RecordingBackend("zero:cloud", stderr, seen)
    run_evaluation(setup, edge, cloud, tmp_path, plots=False, progress=True)
    runs = setup.runs
    assert len(LINE.findall(stderr.getvalue())) == runs
    # model calls of the first run saw no line yet; calls of later runs saw the earlier runs' lines
    assert seen[0] == 0 and seen == sorted(seen) and seen[-1] == runs - 1, seen
