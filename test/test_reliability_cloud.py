"""The edge keeps answering every tick while the cloud link misbehaves: the real loop on the wall clock.

Edge: the zero-cost backend (instant answers, so every frame is answered or skipped by latest-wins).
Cloud: :class:`OpenAiHttpBackend` against a real ``transformers serve`` (tiny random LLaVA) through the
userspace :class:`DelayProxy` on loopback, or against the scripted fault server (a test double) for
answers real servers rarely give. Each run writes the output bag and JSONL, which must hold every frame.
The minutes-long variants (0.1 s <-> 9 s delay swing, the server process killed -9 and restarted) are
marked slow.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time

import pytest
from reliability_support import (
    Phases,
    frame_outcomes,
    link_lines,
    read_records,
    statuses,
    topic_counts,
    write_bag,
)
from time_scale import scaled

from spotvlm_ros.core.config import ModelConfig, load_config
from spotvlm_ros.models.openai_http import OpenAiHttpBackend
from spotvlm_ros.runtime.bag_writer import ANSWER_TOPIC, CONTEXT_TOPIC, DEFAULT_CAMERA_TOPIC
from spotvlm_ros.runtime.replay import replay_bag
from spotvlm_ros.testing.delay_proxy import DelayProxy
from spotvlm_ros.testing.fault_server import FaultyOpenAiServer, Reply
from spotvlm_ros.testing.serve import TransformersServe, free_port

BASE = {"edge.backend": "zero", "cloud.backend": "zero", "cloud.max_new_tokens": 4}


@pytest.fixture
def backends():
    made: list[OpenAiHttpBackend] = []

    def make(base_url: str, model: str = "", **overrides) -> OpenAiHttpBackend:
        settings = {"timeout_s": 5.0, "retries": 1, "max_new_tokens": 4, **overrides}
        backend = OpenAiHttpBackend(ModelConfig(backend="openai", base_url=base_url, model=model, **settings))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def check_every_frame_reported(summary, out_dir, stamps):
    """Every frame answered or skipped (latest wins) once, in the JSONL and in the output bag."""
    counts = summary.counts
    assert counts["messages"] == counts["frames"] == len(stamps) and counts["unreadable"] == 0
    assert counts["answered"] + counts["skipped_latest_wins"] == len(stamps)
    records = read_records(out_dir)
    assert sorted(frame_outcomes(records)) == stamps
    topics = topic_counts(out_dir / "bag")
    assert topics[DEFAULT_CAMERA_TOPIC] == len(stamps) and topics[ANSWER_TOPIC] == counts["answered"]
    contexts = sum(r["type"] == "context" for r in records)
    assert contexts == topics[CONTEXT_TOPIC] == counts["contexts_received"]  # no context lost on the way
    return records


def test_server_absent_then_up_then_stalled_then_reset_then_back(
    tmp_path, llava_server, backends, log_records
):
    """Absent at start (nothing listens), up, every request timing out (stalled link, 60 frames), killed
    mid-request (connections reset), back: every tick answered, SVLM-only while the context is too old,
    context used again after recovery, one log line per state change."""
    log_records.set_level(logging.INFO, logger="spotvlm")
    stamps = write_bag(tmp_path / "bag", 170, fps=20.0)
    port = free_port()
    proxy = DelayProxy("127.0.0.1", llava_server.port, listen_port=port)
    cloud = backends(f"http://127.0.0.1:{port}/v1", llava_server.model)

    def stall():
        proxy.set_fault("stall")
        proxy.drop_connections()  # requests in flight die, reconnections hang

    def kill():
        proxy.set_fault("reset")
        proxy.drop_connections()

    def heal():
        proxy.set_fault("none")
        proxy.drop_connections()

    phases = Phases({20: proxy.start, 50: stall, 110: kill, 130: heal})
    config = load_config(None, {**BASE, "context.max_context_age_s": 1.0, "keyframes.timeout_s": 1.0})
    try:
        summary = replay_bag(
            tmp_path / "bag",
            config,
            clock="realtime",
            out_dir=tmp_path / "out",
            cloud_backend=cloud,
            advance=phases,
        )
    finally:
        proxy.stop()
    records = check_every_frame_reported(summary, tmp_path / "out", stamps)
    status = statuses(records, stamps)
    assert set(status[:20]) <= {"none", "skip"}  # nothing listens yet: SVLM alone
    assert "used" in status[25:50]  # the server answers: context used
    assert "too_old" in status[80:130]  # the outage outlives max_context_age_s: SVLM-only
    assert "used" not in status[75:130]
    assert "used" in status[145:]  # recovered: context used again
    assert summary.cloud["timeouts"] >= 1 and summary.cloud["errors"] >= 1
    assert summary.latency["p95_s"] < 0.25  # the edge never waited on the link
    assert summary.link["cloud"]["state"] == "up" and summary.link["context"]["state"] == "fresh"
    cloud_lines, context_lines = (
        link_lines(log_records, "cloud link"),
        link_lines(log_records, "LVLM context"),
    )
    assert len(cloud_lines) == summary.link["cloud"]["changes"] <= 10  # per change, not per frame
    assert len(context_lines) == summary.link["context"]["changes"] <= 8
    assert any(line.startswith("cloud link down") for line in cloud_lines)
    assert any(line.startswith("LVLM context stale") for line in context_lines)
    assert [r for r in log_records.records if r.name == "spotvlm.cloud" and r.levelno >= logging.INFO] == []


GOOD = Reply.ok('```json\n[{"bbox_2d": [10, 8, 40, 30], "label": "traffic light"}]\n```')
BAD_REPLIES = (
    Reply.raw(b""),  # empty body
    Reply.raw(b'{"choices": [{"message": {"content": "the li'),  # truncated JSON
    Reply.raw(b"<html><body>502 Bad Gateway</body></html>"),  # not JSON
    Reply.ok("x" * 300_000),  # huge: over max_response_bytes
    Reply.json({"choices": []}),
    Reply.error(500, "internal error"),
)
ODD_BOXES = (
    Reply.ok('[{"bbox_2d": [-500, -400, 9000, 9000], "label": "everything"}]'),  # beyond the image
    Reply.ok('[{"bbox_2d": [5000, 5000, 6000, 6000], "label": "nowhere"}]'),  # wholly outside
    Reply.ok('[{"bbox_2d": [NaN, 10, 20, 30], "label": "nan"}, {"bbox_2d": [1, 2, Infinity, 9]}]'),
    Reply.ok('[{"bbox_2d": [40, 30, 10, 8], "label": "negative size"}]'),
    Reply.ok('[{"bbox_2d": [1e308, -1e308, 3, 4], "label": "huge numbers"}]'),
    Reply.raw(  # lone UTF-16 surrogates: valid JSON, not encodable text (the output bag must still take it)
        b'{"choices": [{"message": {"content": "red \\ud800 [{\\"bbox_2d\\": [1, 2, 30, 40], '
        b'\\"label\\": \\"x\\udc00\\"}]"}}]}'
    ),
)


def test_bad_and_odd_lvlm_answers_never_break_the_loop(tmp_path, backends, log_records):
    """Empty, truncated, non-JSON, huge and error answers, and boxes outside the image / NaN / negative:
    counted errors or clipped regions, every frame still answered, regions stay inside the frame."""
    log_records.set_level(logging.INFO, logger="spotvlm")
    stamps = write_bag(tmp_path / "bag", 240, fps=20.0)  # 12 s: the script needs about 25 requests
    with FaultyOpenAiServer(default=GOOD) as server, DelayProxy("127.0.0.1", server.port) as proxy:
        script = [GOOD]
        for reply in (*BAD_REPLIES, *ODD_BOXES):
            script += [reply, GOOD]
        server.script(*script)
        cloud = backends(proxy.url(path="/v1"), "big-vlm", max_response_bytes=100_000)

        def truncate(after: int) -> None:
            proxy.set_fault("truncate" if after else "none", truncate_after_bytes=after)
            proxy.drop_connections()  # pooled connections are cut too

        def truncate_on() -> None:
            truncate(50)
            fault["connections"] = proxy.stats().connections

        def truncate_off_after_a_truncated_request() -> None:
            deadline = time.monotonic() + scaled(30.0)  # a request made under the fault, then the fault ends
            while proxy.stats().connections == fault["connections"] and time.monotonic() < deadline:
                time.sleep(0.01)
            truncate(0)

        fault: dict[str, int] = {}
        phases = Phases({60: truncate_on, 66: truncate_off_after_a_truncated_request})
        config = load_config(
            None, {**BASE, "task": "grounding", "focus.mode": "crop", "keyframes.min_interval_s": 0.05}
        )
        summary = replay_bag(
            tmp_path / "bag",
            config,
            clock="realtime",
            out_dir=tmp_path / "out",
            cloud_backend=cloud,
            advance=phases,
        )
        requests = len(server.requests)
    records = check_every_frame_reported(summary, tmp_path / "out", stamps)
    assert requests >= len(script)  # the whole script was served
    assert summary.cloud["errors"] >= len(BAD_REPLIES) + 1  # each bad answer and the truncation: counted
    assert summary.cloud["accepted"] >= len(ODD_BOXES) + 5  # odd boxes still give text context
    for record in records:
        if record["type"] == "answer":
            for x1, y1, x2, y2, *_ in record["regions"]:
                assert all(math.isfinite(v) for v in (x1, y1, x2, y2))
                assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 48
        if record["type"] == "context":
            assert isinstance(record["text"], str)
    used = [r for r in records if r["type"] == "answer" and r["context_status"] == "used"]
    assert any(r["focus_regions"] for r in used)  # good boxes reached the edge's Visual Focus
    assert len(link_lines(log_records, "cloud link")) == summary.link["cloud"]["changes"]


def test_delay_swinging_fast_and_slow_never_stalls_the_edge(tmp_path, llava_server, backends):
    """Downstream delay swinging between 0.05 s and 1.5 s every 0.75 s (short variant of 0.1 <-> 9 s)."""
    stamps = write_bag(tmp_path / "bag", 120, fps=20.0)
    with DelayProxy("127.0.0.1", llava_server.port) as proxy:
        cloud = backends(proxy.url(path="/v1"), llava_server.model)
        swing = Phases(
            {
                k: (lambda d=(1.5 if (k // 15) % 2 else 0.05): proxy.set_delay(downstream_s=d))
                for k in range(0, 120, 15)
            }
        )
        config = load_config(None, {**BASE, "context.max_context_age_s": 1.0, "keyframes.timeout_s": 3.0})
        summary = replay_bag(
            tmp_path / "bag",
            config,
            clock="realtime",
            out_dir=tmp_path / "out",
            cloud_backend=cloud,
            advance=swing,
        )
    records = check_every_frame_reported(summary, tmp_path / "out", stamps)
    status = statuses(records, stamps)
    assert status.count("used") >= 10 and status.count("too_old") >= 1
    assert summary.cloud["results"] >= 3 and summary.cloud["timeouts"] == 0
    assert summary.latency["p95_s"] < 0.25
    used_ages = [r["context_age_s"] for r in records if r.get("context_status") == "used"]
    assert max(used_ages) <= 1.0  # too-old context is never used


@pytest.mark.slow
def test_delay_swing_between_0p1_and_9_seconds(tmp_path, llava_server, backends, log_records):
    """90 s of camera time, the link delay swinging between 0.1 s and 9 s every 15 s."""
    log_records.set_level(logging.INFO, logger="spotvlm")
    stamps = write_bag(tmp_path / "bag", 900, fps=10.0)
    with DelayProxy("127.0.0.1", llava_server.port) as proxy:
        cloud = backends(proxy.url(path="/v1"), llava_server.model, timeout_s=20.0)
        swing = Phases(
            {
                k: (lambda d=(9.0 if (k // 150) % 2 else 0.1): proxy.set_delay(downstream_s=d))
                for k in range(0, 900, 150)
            }
        )
        config = load_config(None, {**BASE, "context.max_context_age_s": 5.0, "keyframes.timeout_s": 12.0})
        summary = replay_bag(
            tmp_path / "bag",
            config,
            clock="realtime",
            out_dir=tmp_path / "out",
            cloud_backend=cloud,
            advance=swing,
        )
    records = check_every_frame_reported(summary, tmp_path / "out", stamps)
    status = statuses(records, stamps)
    for fast in (slice(20, 150), slice(320, 450), slice(620, 750)):
        assert "used" in status[fast]
    for slow in (slice(220, 300), slice(520, 600), slice(820, 900)):
        assert "too_old" in status[slow] and "used" not in status[slow]
    assert summary.latency["p95_s"] < 0.25
    assert len(link_lines(log_records, "LVLM context")) == summary.link["context"]["changes"] <= 12


@pytest.mark.slow
def test_server_process_absent_killed_mid_request_and_restarted(
    tmp_path, tiny_model_factory, backends, log_records
):
    """The real server process: started after the run began, killed -9 during a long generation, restarted
    on the same port; the edge answers every tick throughout and uses context again at the end.

    The cloud talks to the server through a pass-through DelayProxy, whose byte counts say when a request
    has reached the server; the server is then frozen (SIGSTOP) so that it is surely mid-answer when killed.
    """
    log_records.set_level(logging.INFO, logger="spotvlm")
    stamps = write_bag(tmp_path / "bag", 600, fps=10.0)
    port = free_port()
    server = TransformersServe(tiny_model_factory("llava"), port=port)
    proxy = DelayProxy("127.0.0.1", port).start()
    cloud = backends(proxy.url(path="/v1"), server.model, timeout_s=scaled(30.0), retries=0)
    events: dict[str, float] = {}

    def start_in_background():
        threading.Thread(
            target=lambda: (server.start(), events.setdefault("up", time.monotonic())), daemon=True
        ).start()

    def kill_during_a_request():
        def watch():
            sent = proxy.stats().bytes_upstream
            deadline = time.monotonic() + scaled(60.0)
            while proxy.stats().bytes_upstream == sent and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(server.pid, signal.SIGSTOP)
            server.kill()
            events["killed"] = time.monotonic()

        threading.Thread(target=watch, daemon=True).start()

    config = load_config(
        None,
        {**BASE, "cloud.max_new_tokens": 300, "context.max_context_age_s": 6.0, "keyframes.timeout_s": 20.0},
    )
    phases = Phases({0: start_in_background, 250: kill_during_a_request, 330: start_in_background})
    try:
        summary = replay_bag(
            tmp_path / "bag",
            config,
            clock="realtime",
            out_dir=tmp_path / "out",
            cloud_backend=cloud,
            advance=phases,
        )
    finally:
        server.cleanup()
        proxy.stop()
    records = check_every_frame_reported(summary, tmp_path / "out", stamps)
    status = statuses(records, stamps)
    assert "killed" in events and summary.cloud["errors"] >= 1
    assert "used" in status[150:250] and "too_old" in status[300:400] and "used" in status[500:]
    assert summary.latency["p95_s"] < 0.25
    assert any(line.startswith("cloud link down") for line in link_lines(log_records, "cloud link"))
