"""Keyframe policy: which frames go to the cloud LVLM, as pure logic driven by timestamps.

A frame is sent when a request slot is free (at most ``max_in_flight`` in flight), it is newer than
the last keyframe, and either ``min_interval_s`` has passed since the last keyframe (by frame stamps)
or the scene changed: the distance between the frame and the last keyframe (``histogram``:
Bhattacharyya distance of 32-bin gray histograms, ``difference``: mean absolute difference of 64x48
gray thumbnails, both in [0, 1]) reaches ``scene_change_threshold`` (0 = trigger off). The caller
offers every new frame, so the newest frame goes out as soon as a slot frees. Requests older than
``timeout_s`` (by the caller's clock) are reported by :meth:`KeyframePolicy.expired`, which frees their
slots; the caller cancels them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .types import s_to_ns

if TYPE_CHECKING:
    from .config import KeyframeConfig

__all__ = ["SCENE_METRICS", "KeyframePolicy", "scene_distance", "scene_signature"]

SCENE_METRICS = ("histogram", "difference")
_THUMB = (64, 48)
_BINS = 32


def scene_signature(image: np.ndarray, metric: str = "histogram") -> np.ndarray:
    """A small summary of ``image`` to compare scenes: a gray histogram or a gray thumbnail."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    thumb = cv2.resize(gray, _THUMB, interpolation=cv2.INTER_AREA)
    if metric == "difference":
        return thumb.astype(np.float32)
    if metric != "histogram":
        raise ValueError(f"scene metric must be one of {SCENE_METRICS}, got {metric!r}")
    hist = cv2.calcHist([thumb], [0], None, [_BINS], [0, 256])
    return hist / max(float(hist.sum()), 1.0)


def scene_distance(a: np.ndarray, b: np.ndarray, metric: str = "histogram") -> float:
    """Distance in [0, 1] between two signatures of the same metric."""
    if metric == "difference":
        return float(np.abs(a - b).mean()) / 255.0
    return float(min(1.0, max(0.0, cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))))


class KeyframePolicy:
    """Decides which frames become LVLM requests and tracks the requests in flight; thread-safe.

    Protocol: ``should_send(stamp, image, now)`` for every new frame; when it says True the caller
    sends that frame and calls ``on_sent(request_id, now)`` (which commits it as the last keyframe),
    ``on_done(request_id)`` when the answer (or an error) comes back, and ``expired(now)`` now and then
    to learn which requests to cancel.
    """

    def __init__(self, config: KeyframeConfig):
        self.max_in_flight = int(config.max_in_flight)
        self.min_interval_ns = s_to_ns(config.min_interval_s)
        self.threshold = float(config.scene_change_threshold)
        self.metric = config.scene_change_metric
        if self.metric not in SCENE_METRICS:
            raise ValueError(f"scene_change_metric must be one of {SCENE_METRICS}, got {self.metric!r}")
        self.timeout_ns = s_to_ns(config.timeout_s)
        self._in_flight: dict[str, int] = {}
        self._last_stamp: int | None = None
        self._last_signature: np.ndarray | None = None
        self._candidate: tuple[int, np.ndarray | None, bool] | None = None
        self._lock = threading.Lock()
        self.sent = self.completed = self.timed_out = self.scene_triggers = 0

    @property
    def in_flight(self) -> int:
        """Requests sent and neither done nor expired."""
        with self._lock:
            return len(self._in_flight)

    @property
    def last_keyframe_ns(self) -> int | None:
        """Stamp of the last frame sent."""
        return self._last_stamp

    def should_send(self, stamp_ns: int, image: np.ndarray, now_ns: int) -> bool:
        """True when the frame captured at ``stamp_ns`` should be sent now."""
        with self._lock:
            self._candidate = None
            if len(self._in_flight) >= self.max_in_flight:
                return False
            last = self._last_stamp
            if last is not None and stamp_ns <= last:
                return False
            interval_ok = last is None or stamp_ns - last >= self.min_interval_ns
            signature = None
            changed = False
            if self.threshold > 0:
                signature = scene_signature(image, self.metric)
                if self._last_signature is not None:
                    changed = scene_distance(signature, self._last_signature, self.metric) >= self.threshold
            if not (interval_ok or changed):
                return False
            self._candidate = (stamp_ns, signature, changed and not interval_ok)
            return True

    def on_sent(self, request_id: str, now_ns: int) -> None:
        """The frame last approved by :meth:`should_send` went out as ``request_id`` at ``now_ns``."""
        with self._lock:
            if request_id in self._in_flight:
                raise ValueError(f"request id {request_id!r} is already in flight")
            self._in_flight[request_id] = now_ns
            self.sent += 1
            if self._candidate is not None:
                stamp, signature, by_scene = self._candidate
                self._last_stamp = stamp
                if signature is not None:
                    self._last_signature = signature
                self.scene_triggers += int(by_scene)
                self._candidate = None

    def on_done(self, request_id: str) -> bool:
        """The request finished (answer or error); False when it was unknown or had expired."""
        with self._lock:
            if self._in_flight.pop(request_id, None) is None:
                return False
            self.completed += 1
            return True

    def expired(self, now_ns: int) -> list[str]:
        """Requests in flight for ``timeout_s`` or longer, oldest first; their slots are freed."""
        with self._lock:
            late = [rid for rid, sent in self._in_flight.items() if now_ns - sent >= self.timeout_ns]
            late.sort(key=self._in_flight.__getitem__)
            for rid in late:
                del self._in_flight[rid]
            self.timed_out += len(late)
            return late
