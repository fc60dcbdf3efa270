"""QoS of the SpotVLM topics and the "node receives nothing" diagnosis, as plain data (no ROS import).

The nodes turn a :class:`QosSpec` into an ``rclpy.qos.QoSProfile``. The camera QoS comes from the
``camera.*`` parameters (best effort, depth 1 by default: the newest frame only, never a stale backlog);
context is latched (reliable, transient local, depth 1) so a late-joining edge gets the newest LVLM
answer at once. When no frame arrives, :class:`FrameWatchdog` says when to warn and
:func:`no_frames_message` names the topic, the type, the QoS asked for and what the publishers offer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import CameraConfig

RELIABILITIES = ("best_effort", "reliable")
DURABILITIES = ("volatile", "transient_local")
RAW_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"


@dataclass(frozen=True)
class QosSpec:
    """A keep-last QoS profile: reliability, durability and history depth."""

    reliability: str = "reliable"
    durability: str = "volatile"
    depth: int = 10

    def __post_init__(self) -> None:
        if self.reliability not in RELIABILITIES:
            raise ValueError(f"reliability must be one of {RELIABILITIES}, got {self.reliability!r}")
        if self.durability not in DURABILITIES:
            raise ValueError(f"durability must be one of {DURABILITIES}, got {self.durability!r}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")

    def describe(self) -> str:
        """E.g. ``best_effort, volatile, keep_last 1``."""
        return f"{self.reliability}, {self.durability}, keep_last {self.depth}"


CONTEXT_QOS = QosSpec("reliable", "transient_local", 1)
"""LVLM context: latched, so a subscriber that joins late gets the newest one."""

OUTPUT_QOS = QosSpec("reliable", "volatile", 10)
"""Answers, detections and the focus image."""


def camera_qos(config: CameraConfig) -> QosSpec:
    """Subscription QoS of the camera from the ``camera.*`` parameters."""
    return QosSpec(config.reliability, "volatile", config.depth)


def camera_topic(config: CameraConfig) -> str:
    """Topic the nodes subscribe: ``camera.topic`` (``image`` when empty, remappable).

    With the compressed transport the image_transport convention applies: ``<topic>/compressed``.
    """
    topic = config.topic or "image"
    if config.transport == "compressed" and not topic.endswith("/compressed"):
        topic = f"{topic}/compressed"
    return topic


def camera_type(config: CameraConfig) -> str:
    """ROS type name of the camera messages for the configured transport."""
    return COMPRESSED_TYPE if config.transport == "compressed" else RAW_TYPE


def incompatibility(requested: QosSpec, offered: QosSpec) -> str:
    """Why a subscription with ``requested`` QoS gets nothing from a publisher offering ``offered``."""
    reasons = []
    if requested.reliability == "reliable" and offered.reliability == "best_effort":
        reasons.append("the subscription asks for reliable, the publisher offers best_effort")
    if requested.durability == "transient_local" and offered.durability == "volatile":
        reasons.append("the subscription asks for transient_local, the publisher offers volatile")
    return "; ".join(reasons)


def no_frames_message(
    topic: str, msg_type: str, requested: QosSpec, waited_s: float, offered: list[QosSpec], types: list[str]
) -> str:
    """The warning when no frame arrived for ``waited_s``: topic, type, QoS, and the likely cause."""
    head = f"no frame on {topic} ({msg_type}, QoS {requested.describe()}) for {waited_s:.1f} s: "
    if not offered:
        return head + "no publisher on this topic (check camera.topic, camera.transport and remappings)"
    wrong_types = sorted({t for t in types if t and t != msg_type})
    if wrong_types:
        return head + f"publishers send {', '.join(wrong_types)}; set camera.transport to match"
    reasons = sorted({r for spec in offered if (r := incompatibility(requested, spec))})
    if reasons:
        return head + "QoS mismatch: " + "; ".join(reasons) + " (set camera.reliability)"
    return head + f"{len(offered)} compatible publisher(s), but none has published (is the camera running?)"


class FrameWatchdog:
    """Says when to warn that no frame arrived for ``warn_after_s`` (then again every ``warn_after_s``)."""

    def __init__(self, warn_after_s: float, now_s: float) -> None:
        if not warn_after_s > 0:
            raise ValueError(f"warn_after_s must be > 0, got {warn_after_s}")
        self.warn_after_s = warn_after_s
        self.last_frame_s: float | None = None
        self._since_s = now_s
        self._warned_s: float | None = None
        self.warnings = 0

    def on_frame(self, now_s: float) -> None:
        self.last_frame_s = now_s
        self._since_s = now_s
        self._warned_s = None

    def silent_for(self, now_s: float) -> float:
        """Seconds since the last frame (or since the start, before any frame)."""
        return now_s - self._since_s

    def due(self, now_s: float) -> bool:
        """True when a warning is due now (and counts it)."""
        reference = self._since_s if self._warned_s is None else self._warned_s
        if now_s - reference < self.warn_after_s:
            return False
        self._warned_s = now_s
        self.warnings += 1
        return True
