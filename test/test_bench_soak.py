"""``spotvlm bench soak`` with small numbers: no frame lost, queues and containers bounded, BENCH last."""

from __future__ import annotations

import pytest

from spotvlm_ros.bench import meets_target, parse_bench_line
from spotvlm_ros.bench.soak import CannedGroundingCloud, container_sizes, main


def soak(capsys, *args: str) -> dict:
    assert main(["--width", "160", "--height", "120", "--clip-frames", "30", *args]) == 0
    parsed = parse_bench_line(capsys.readouterr().out)
    assert parsed is not None and parsed[0] == "soak"
    return parsed[1]


def test_simulated_soak_loses_nothing_and_stays_bounded(capsys, tmp_path):
    short = soak(capsys, "--minutes", "1")
    long = soak(capsys, "--minutes", "4", "--records", str(tmp_path / "records.jsonl"))
    for figures in (short, long):
        assert figures["lost"] == 0 and figures["ticks_answered_fraction"] == 1.0
        assert (
            figures["answered"] + figures["skipped_latest_wins"]
            == figures["frames"]
            == figures["frames_arrived"]
        )
        assert figures["max_waiting_frames"] == 1 and figures["max_in_flight"] == 1  # one keyframe in flight
        assert figures["answer_gap_max_s"] == pytest.approx(0.2)  # the slow SVLM never stalled
        assert figures["contexts_accepted"] >= 0.9 * figures["lvlm_requests"] > 0
    assert long["frames"] == 4 * short["frames"] == 7200
    assert long["answered"] == pytest.approx(long["stream_s"] / 0.2, abs=2)  # one answer per SVLM step
    assert long["max_container_len"] < 2000  # nothing grows with the length of the run
    assert long["max_clock_events"] <= short["max_clock_events"] + 2
    assert meets_target("rss_growth_fraction", long["rss_growth_fraction"])
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == long["frames"]  # one record per frame: answer or skip


def test_wall_clock_soak_answers_every_tick(capsys):
    figures = soak(capsys, "--wall-s", "2", "--step-s", "0.1", "--profile", "constant:delay=0.3")
    assert figures["clock"] == "wall" and figures["frames"] == 60
    assert figures["lost"] == 0 and figures["ticks_answered_fraction"] == 1.0
    assert 8 <= figures["answered"] <= 21 and figures["contexts_received"] >= 2
    assert 1.9 < figures["wall_s"] < 6.0


def test_bad_arguments_exit_2(capsys):
    assert main(["--warmup", "1.5"]) == 2
    assert "warmup" in capsys.readouterr().err


def test_container_scan_finds_nested_containers():
    cloud = CannedGroundingCloud()
    cloud.generate([{"role": "user", "content": [{"type": "text", "text": "a b c"}]}], [])
    sizes = container_sizes({"cloud": cloud})
    assert sizes["cloud._counts"] == 1 and "cloud.BOXES" not in sizes
