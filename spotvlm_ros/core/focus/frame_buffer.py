"""A small ring buffer of recent frames by stamp, to find the keyframe an LVLM result describes."""

from __future__ import annotations

import bisect
import threading

from ..types import Frame

__all__ = ["FrameBuffer"]


class FrameBuffer:
    """The newest ``capacity`` frames, sorted by stamp; thread-safe (camera callback vs. edge step)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._stamps: list[int] = []
        self._frames: list[Frame] = []
        self._lock = threading.Lock()

    def add(self, frame: Frame) -> None:
        """Insert ``frame`` (a repeated stamp replaces the held frame); the oldest frames fall out."""
        with self._lock:
            index = bisect.bisect_left(self._stamps, frame.stamp_ns)
            if index < len(self._stamps) and self._stamps[index] == frame.stamp_ns:
                self._frames[index] = frame
                return
            if len(self._stamps) >= self.capacity and index == 0:
                return  # older than everything held in a full buffer
            self._stamps.insert(index, frame.stamp_ns)
            self._frames.insert(index, frame)
            if len(self._stamps) > self.capacity:
                del self._stamps[0], self._frames[0]

    def get(self, stamp_ns: int, tolerance_ns: int = 0) -> Frame | None:
        """The frame captured at ``stamp_ns``, or the nearest one within ``tolerance_ns``."""
        with self._lock:
            index = bisect.bisect_left(self._stamps, stamp_ns)
            best: Frame | None = None
            best_gap = tolerance_ns + 1
            for i in (index - 1, index):
                if 0 <= i < len(self._stamps):
                    gap = abs(self._stamps[i] - stamp_ns)
                    if gap < best_gap:
                        best, best_gap = self._frames[i], gap
            return best

    def latest(self) -> Frame | None:
        """The newest frame held."""
        with self._lock:
            return self._frames[-1] if self._frames else None

    def stamps(self) -> list[int]:
        """Stamps held, oldest first."""
        with self._lock:
            return list(self._stamps)

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)
