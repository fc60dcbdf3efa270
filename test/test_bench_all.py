"""``spotvlm bench all``: BENCH line parsing, targets and the written summary."""

from __future__ import annotations

import json
import subprocess
import sys

from time_scale import scaled

from spotvlm_ros.bench import bench_line, meets_target, parse_bench_line


def test_bench_line_roundtrip_and_must_be_last():
    line = bench_line("core", {"core_step_vs_jpeg_decode_ratio": 1.5, "frames": 3})
    assert parse_bench_line(f"human line\n{line}\n\n") == (
        "core",
        {"core_step_vs_jpeg_decode_ratio": 1.5, "frames": 3},
    )
    assert parse_bench_line(f"{line}\nsomething after") is None
    assert parse_bench_line("") is None


def test_targets_follow_design():
    assert meets_target("core_step_vs_jpeg_decode_ratio", 2.0) is True
    assert meets_target("core_step_vs_jpeg_decode_ratio", 2.01) is False
    assert meets_target("replay_vs_plain_read_ratio", 0.69) is False
    assert meets_target("focus_visual_token_ratio", 2.5) is True
    assert meets_target("frames", 3) is None
    assert meets_target("replay_vs_plain_read_ratio", "n/a") is None


def test_bench_all_writes_summary(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "spotvlm_ros.cli", "bench", "all", "--only", "replay", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=scaled(600),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert parse_bench_line(proc.stdout)[0] == "all"
    summary = json.loads((out / "summary.json").read_text())
    replay = summary["benchmarks"]["replay"]
    assert replay["exit_code"] == 0 and replay["command"] == "spotvlm bench replay"
    assert replay["figures"]["replay_vs_plain_read_ratio"] > 0
    assert set(replay["targets"]) == {"replay_vs_plain_read_ratio"}
    assert "| `replay_vs_plain_read_ratio` |" in (out / "summary.md").read_text()
    assert (out / "replay.log").read_text().rstrip().splitlines()[-1].startswith("BENCH replay ")
