"""``spotvlm eval`` and ``spotvlm demo`` as scripts run them: outputs and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from time_scale import scaled

from spotvlm_ros.runtime.make_bag import make_synthetic_bag

ZERO = ["--set", "edge.backend=zero", "--set", "cloud.backend=zero"]


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spotvlm_ros.cli", *args],
        capture_output=True,
        text=True,
        timeout=scaled(300),
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "clip"
    make_synthetic_bag(path, frames=16, width=160, height=120, seed=11)
    return path


def test_eval_command_prints_the_table_and_writes_report_json_plots(bag, tmp_path):
    out = tmp_path / "eval"
    args = ["eval", str(bag), "--out", str(out), "--modes", "svlm,lvlm,spotvlm", "--tasks", "vqa,caption"]
    proc = _cli(*args, "--profile", "constant:delay=0.4", "--quiet", *ZERO)
    assert proc.returncode == 0, proc.stderr
    assert "constant:delay=0.4" in proc.stdout and "spotvlm" in proc.stdout
    data = json.loads((out / "results.json").read_text())
    assert {r["mode"] for r in data["summary"]} == {"svlm", "lvlm", "spotvlm"}
    assert data["edge_model"] == "zero:edge"
    assert "| svlm |" in (out / "report.md").read_text()
    assert all(
        (out / name).is_file() for name in ("accuracy_vs_delay.png", "latency_cdf.png", "context_age.png")
    )


def test_eval_command_exit_codes(bag, tmp_path):
    bad_mode = _cli(
        "eval", str(bag), "--modes", "svlm,warp", "--no-plots", "--quiet", "--out", str(tmp_path), *ZERO
    )
    assert bad_mode.returncode == 2 and "warp" in bad_mode.stderr
    bad_profile = _cli(
        "eval", str(bag), "--profile", "lognormal:mean=-1", "--quiet", "--out", str(tmp_path), *ZERO
    )
    assert bad_profile.returncode == 2 and "mean" in bad_profile.stderr
    missing = _cli("eval", str(tmp_path / "nope"), "--quiet", "--out", str(tmp_path), *ZERO)
    assert missing.returncode == 1 and "nope" in missing.stderr


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = _cli("demo", "--out", str(out), "--quiet", "--set", "eval.max_frames=8", *ZERO)
    assert proc.returncode == 0, proc.stderr
    assert "svlm" in proc.stdout and "spotvlm_no_focus" in proc.stdout
    assert "first 8 frames" in proc.stdout
    for name in (
        "report.md",
        "results.json",
        "latency_cdf.png",
        "replay/summary.json",
        "replay/records.jsonl",
    ):
        assert (out / name).is_file(), name
    assert (out / "replay" / "bag" / "metadata.yaml").is_file()
