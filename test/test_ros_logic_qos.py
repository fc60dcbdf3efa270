"""QoS profiles from parameters and the no-frames diagnosis (no ROS)."""

from __future__ import annotations

import pytest

from spotvlm_ros.core.config import CameraConfig
from spotvlm_ros.runtime.qos import (
    COMPRESSED_TYPE,
    CONTEXT_QOS,
    RAW_TYPE,
    FrameWatchdog,
    QosSpec,
    camera_qos,
    camera_topic,
    camera_type,
    incompatibility,
    no_frames_message,
)


def test_camera_qos_defaults_to_latest_frame_best_effort():
    spec = camera_qos(CameraConfig())
    assert spec == QosSpec("best_effort", "volatile", 1)
    assert camera_qos(CameraConfig(reliability="reliable", depth=5)) == QosSpec("reliable", "volatile", 5)
    assert QosSpec("reliable", "transient_local", 1) == CONTEXT_QOS


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="reliability"):
        QosSpec("sometimes")
    with pytest.raises(ValueError, match="durability"):
        QosSpec("reliable", "forever")
    with pytest.raises(ValueError, match="depth"):
        QosSpec(depth=0)


def test_camera_topic_and_type_follow_transport():
    assert camera_topic(CameraConfig()) == "image"
    assert camera_topic(CameraConfig(topic="/cam/image_raw")) == "/cam/image_raw"
    compressed = CameraConfig(topic="/cam/image_raw", transport="compressed")
    assert camera_topic(compressed) == "/cam/image_raw/compressed"
    assert (
        camera_topic(CameraConfig(topic="/cam/image_raw/compressed", transport="compressed")).count(
            "compressed"
        )
        == 1
    )
    assert camera_type(compressed) == COMPRESSED_TYPE and camera_type(CameraConfig()) == RAW_TYPE


def test_incompatibility_rules():
    reliable_sub = QosSpec("reliable", "volatile", 1)
    assert "offers best_effort" in incompatibility(reliable_sub, QosSpec("best_effort", "volatile", 10))
    assert incompatibility(QosSpec("best_effort", "volatile", 1), QosSpec("reliable", "volatile", 10)) == ""
    assert "transient_local" in incompatibility(CONTEXT_QOS, QosSpec("reliable", "volatile", 1))


def test_no_frames_message_names_topic_qos_and_cause():
    sub = QosSpec("reliable", "volatile", 1)
    none = no_frames_message("/cam", RAW_TYPE, sub, 5.0, [], [])
    assert "/cam" in none and "reliable, volatile, keep_last 1" in none and "no publisher" in none
    mismatch = no_frames_message(
        "/cam", RAW_TYPE, sub, 5.0, [QosSpec("best_effort", "volatile", 10)], [RAW_TYPE]
    )
    assert "QoS mismatch" in mismatch and "camera.reliability" in mismatch
    wrong = no_frames_message("/cam", RAW_TYPE, sub, 5.0, [QosSpec()], [COMPRESSED_TYPE])
    assert "camera.transport" in wrong and COMPRESSED_TYPE in wrong
    quiet = no_frames_message("/cam", RAW_TYPE, sub, 5.0, [QosSpec()], [RAW_TYPE])
    assert "none has published" in quiet


def test_watchdog_warns_once_per_period_and_resets_on_frames():
    dog = FrameWatchdog(2.0, now_s=100.0)
    assert not dog.due(101.9)
    assert dog.due(102.0) and not dog.due(103.0) and dog.due(104.1)
    assert dog.warnings == 2
    dog.on_frame(104.5)
    assert dog.silent_for(105.0) == pytest.approx(0.5)
    assert not dog.due(106.0) and dog.due(106.6)
    with pytest.raises(ValueError):
        FrameWatchdog(0.0, now_s=0.0)
