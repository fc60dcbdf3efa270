"""Diagnostics of the nodes computed without ROS: rates, percentiles, levels and key/values."""

from __future__ import annotations

import math

import pytest

from spotvlm_ros.runtime.diagnostics import (
    ERROR,
    OK,
    STALE,
    WARN,
    BridgeMonitor,
    EdgeMonitor,
    RateMeter,
    ServerMonitor,
    percentile,
)


def test_percentile_interpolates_like_numpy():
    values = [0.1, 0.5, 0.2, 0.9, 0.4]
    assert percentile(values, 50) == pytest.approx(0.4)
    assert percentile(values, 95) == pytest.approx(0.9 - 0.05 * 4 * (0.9 - 0.5))
    assert percentile(values, 0) == 0.1 and percentile(values, 100) == 0.9
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_rate_meter_counts_within_the_window():
    meter = RateMeter(window_s=2.0)
    for i in range(21):
        meter.tick(10.0 + i * 0.1)  # 10 Hz for 2 s
    assert meter.rate(12.0) == pytest.approx(10.0)
    assert 0 < meter.rate(13.0) < meter.rate(12.0)  # stalled: decays
    assert meter.rate(14.1) == 0.0  # everything fell out of the window
    assert RateMeter().rate(0.0) == 0.0


def test_edge_report_ok_warn_and_stale():
    monitor = EdgeMonitor(window_s=5.0)
    for i in range(10):
        now = i * 0.1
        monitor.frame(now)
        if i % 2:
            monitor.frame_dropped()
        else:
            monitor.answered(now, 0.05 + 0.01 * i, 1.5, "used")
    report = monitor.report(1.0, no_frames_warn_s=5.0)
    assert report.level == OK and report.level_name == "OK"
    v = report.values
    assert v["frames_received"] == "10" and v["frames_dropped"] == "5" and v["answers"] == "5"
    assert float(v["camera_rate_hz"]) == pytest.approx(10.0, rel=0.01)
    assert float(v["svlm_step_ms_p50"]) == pytest.approx(90.0) and v["context_age_s"] == "1.50"
    assert monitor.report(7.0, no_frames_warn_s=5.0).message.startswith("no camera frame for 6.1 s")
    assert monitor.report(1.0, no_frames_warn_s=5.0, active=False).level == STALE
    monitor.answered(1.0, 0.1, -1.0, "none", "model exploded")
    failing = monitor.report(1.0, no_frames_warn_s=5.0)
    assert (
        failing.level == WARN and "model exploded" in failing.message and failing.values["svlm_errors"] == "1"
    )
    assert failing.values["context_age_s"] == "none"


def test_edge_report_before_any_frame_warns():
    report = EdgeMonitor().report(10.0, no_frames_warn_s=5.0)
    assert report.level == WARN and report.message == "no camera frame yet"


def test_bridge_report_round_trips_and_server_state():
    monitor = BridgeMonitor()
    for i, rt in enumerate([0.5, 1.0, 1.5, 2.0, 10.0]):
        monitor.sent(float(i))
        monitor.result(rt)
    monitor.count("timeouts")
    report = monitor.report(5.0, in_flight=1, server_up=True)
    assert report.level == OK and report.values["in_flight"] == "1"
    assert float(report.values["lvlm_round_trip_s_p50"]) == pytest.approx(1.5)
    assert float(report.values["lvlm_round_trip_s_p95"]) == pytest.approx(8.4)
    assert report.values["timeouts"] == "1" and report.values["sent"] == "5"
    down = monitor.report(5.0, in_flight=0, server_up=False)
    assert down.level == ERROR and down.values["server"] == "down"
    only_failures = BridgeMonitor()
    only_failures.count("failed")
    assert only_failures.report(0.0, in_flight=0, server_up=True).level == WARN


def test_server_report():
    monitor = ServerMonitor()
    assert monitor.report(model="m", running=0, active=False).level == STALE
    monitor.count("accepted")
    monitor.finished("aborted", 0.2, "backend error: boom")
    assert monitor.report(model="m", running=0).level == ERROR
    monitor.finished("succeeded", 0.4)
    report = monitor.report(model="m", running=1)
    assert report.level == OK and report.values["succeeded"] == "1" and report.values["goals_running"] == "1"
    assert float(report.values["lvlm_s_p50"]) == pytest.approx(0.3)
