"""Cloud link and context freshness state: one log line per change, never one per frame."""

from __future__ import annotations

import logging

import pytest
from reliability_support import Phases, link_lines, read_records, statuses, write_bag

from spotvlm_ros.core.config import load_config
from spotvlm_ros.models.base import BackendError
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.link_state import (
    DEGRADED,
    DOWN,
    FRESH,
    NONE,
    STALE,
    UP,
    CloudLinkState,
    ContextFreshness,
)
from spotvlm_ros.runtime.replay import replay_bag


class SwitchableCloud(ZeroCostBackend):
    """TEST DOUBLE of an LVLM whose network can be cut: raises while ``down`` (the simulated clock has no
    sockets; the wall-clock tests use real servers and a real proxy)."""

    def __init__(self):
        super().__init__(name="switchable:cloud", answer="red light")
        self.down = False

    def generate(self, messages, images, **kwargs):
        if self.down:
            raise BackendError("cannot connect to http://cloud/v1: connection refused")
        return super().generate(messages, images, **kwargs)


def test_link_moves_up_degraded_down_and_logs_each_change_once(log_records):
    log_records.set_level(logging.INFO, logger="spotvlm.link")
    link = CloudLinkState(down_after=2)
    link.success("r1", 0.3)
    link.success("r2", 0.2)
    link.failure("r3", "timed out")
    assert link.state == DEGRADED
    for i in range(40):
        link.failure(f"r{i + 4}", "connection refused")
    assert link.state == DOWN and link.consecutive_failures == 41
    link.success("r99", 0.4)
    assert link.state == UP and link.changes == 4
    lines = [r for r in log_records.records if r.name == "spotvlm.link"]
    assert [r.levelname for r in lines] == ["INFO", "WARNING", "WARNING", "INFO"]
    assert "cloud link down" in lines[2].getMessage() and "connection refused" in lines[2].getMessage()
    assert "after 41 failed request(s)" in lines[3].getMessage()
    assert link.summary() == {"state": UP, "changes": 4, "ok": 3, "failed": 41}


def test_long_reasons_are_cut_to_one_line():
    link = CloudLinkState(down_after=1)
    link.failure("r1", "boom\n" * 500)
    assert link.last is not None and "\n" not in link.last.reason and len(link.last.reason) < 260
    with pytest.raises(ValueError, match="down_after"):
        CloudLinkState(down_after=0)


def test_freshness_follows_the_answers(log_records):
    log_records.set_level(logging.INFO, logger="spotvlm.link")
    fresh = ContextFreshness(2.0)
    sequence = ["none"] * 5 + ["used"] * 10 + ["too_old"] * 50 + ["used"] * 3
    for i, status in enumerate(sequence):
        fresh.observe(status, i, "vqa-1" if status == "used" else "")
    assert fresh.state == FRESH and fresh.changes == 4 and fresh.frames_in_state == 3
    messages = [r.getMessage() for r in log_records.records]
    assert len(messages) == 4 and "stale from frame 15 (was fresh for 10 frame(s))" in messages[2]
    assert "max_context_age_s=2 s; SVLM-only" in messages[2]
    assert [r.levelname for r in log_records.records] == ["INFO", "INFO", "WARNING", "INFO"]


def test_fifty_frame_outage_logs_per_transition_not_per_frame(tmp_path, log_records):
    """The real replay loop on the simulated clock: a 60-frame outage, then recovery."""
    log_records.set_level(logging.DEBUG, logger="spotvlm")
    stamps = write_bag(tmp_path / "bag", 150, fps=10.0)
    cloud = SwitchableCloud()

    def cut():
        cloud.down = True

    def mend():
        cloud.down = False

    config = load_config(
        None,
        {
            "edge.backend": "zero",
            "cloud.backend": "zero",
            "edge.step_time_s": 0.05,
            "latency.profile": "constant:delay=0.3",
            "context.max_context_age_s": 1.0,
            "keyframes.timeout_s": 2.0,
        },
    )
    summary = replay_bag(
        tmp_path / "bag",
        config,
        out_dir=tmp_path / "out",
        cloud_backend=cloud,
        advance=Phases({40: cut, 100: mend}),
    )
    status = statuses(read_records(tmp_path / "out"), stamps)
    assert summary.counts["answered"] == 150  # every tick answered through the outage
    assert status[0] == "none" and status[30:40] == ["used"] * 10
    assert status[55:100] == ["too_old"] * 45  # SVLM-only while the context is too old
    assert status[110:] == ["used"] * 40  # context again once the cloud answers
    assert summary.cloud["errors"] >= 15  # one request at a time, each failing after its 0.3 s delay
    cloud_lines = link_lines(log_records, "cloud link")
    context_lines = link_lines(log_records, "LVLM context")
    assert [line.split(" (")[0] for line in cloud_lines] == [
        "cloud link up",
        "cloud link degraded",
        "cloud link down",
        "cloud link up",
    ]
    assert [line.split(" from")[0] for line in context_lines] == [
        f"LVLM context {NONE}",
        f"LVLM context {FRESH}",
        f"LVLM context {STALE}",
        f"LVLM context {FRESH}",
    ]
    noisy = [r for r in log_records.records if r.levelno >= logging.WARNING and r.name != "spotvlm.link"]
    assert noisy == []  # failed requests are DEBUG lines; the link logger speaks for them
    assert summary.link == {
        "cloud": {
            "state": UP,
            "changes": 4,
            "ok": summary.cloud["results"],
            "failed": summary.cloud["errors"],
        },
        "context": {"state": FRESH, "changes": 4},
    }
    assert any("link: cloud up at the end (4 changes)" in line for line in summary.lines())
