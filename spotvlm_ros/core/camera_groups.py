"""Frames of several cameras grouped by stamp, the way ``message_filters.ApproximateTimeSynchronizer`` does.

:class:`CameraGrouper` keeps a small queue per camera. Each arriving frame looks, in every other
camera's queue, for the stamps within ``slop`` of its own (nearest first) and takes the first
combination whose spread (newest - oldest stamp) is below ``slop``: that set is one group, removed
from the queues. Frames older than a group's, in any camera, can no longer join a later group and are
dropped (latest wins), as are frames pushed out of a full queue; both are counted per camera.
:func:`group_frame` turns a set into one :class:`~.types.Frame` of several cameras. No ROS here: the
replay uses this grouper, the ROS nodes the synchronizer with the same slop.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from typing import Generic, TypeVar

from .types import Frame, s_to_ns

__all__ = ["CameraGrouper", "camera_names", "group_frame"]

T = TypeVar("T")


class CameraGrouper(Generic[T]):
    """Groups items of ``cameras`` (names, in order) whose stamps lie within ``slop_s``; not thread-safe."""

    def __init__(self, cameras: Sequence[str], slop_s: float, queue_size: int = 10) -> None:
        if len(cameras) < 1:
            raise ValueError("a camera group needs at least one camera")
        if not slop_s > 0:
            raise ValueError(f"slop must be > 0 s, got {slop_s}")
        if queue_size < 1:
            raise ValueError(f"queue size must be >= 1, got {queue_size}")
        self.cameras = tuple(cameras)
        self.slop_ns = s_to_ns(slop_s)
        self.queue_size = queue_size
        self._queues: list[dict[int, T]] = [{} for _ in self.cameras]
        self.groups = 0
        self.dropped: Counter[str] = Counter()

    def add(self, camera: int, stamp_ns: int, item: T) -> list[T] | None:
        """Offer ``item`` of camera number ``camera``; returns a complete group (camera order) or None."""
        queue = self._queues[camera]
        if stamp_ns in queue:
            self.dropped[self.cameras[camera]] += 1  # the newer message of a repeated stamp wins
        queue[stamp_ns] = item
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.dropped[self.cameras[camera]] += 1
        candidates: list[list[int]] = []
        for index, other in enumerate(self._queues):
            if index == camera:
                candidates.append([stamp_ns])
                continue
            near = sorted(
                (s for s in other if abs(s - stamp_ns) <= self.slop_ns), key=lambda s: abs(s - stamp_ns)
            )
            if not near:
                return None
            candidates.append(near)
        for stamps in itertools.product(*candidates):
            if max(stamps) - min(stamps) < self.slop_ns:
                return self._take(stamps)
        return None

    def _take(self, stamps: Sequence[int]) -> list[T]:
        group = [queue.pop(stamp) for queue, stamp in zip(self._queues, stamps, strict=True)]
        for name, queue, stamp in zip(self.cameras, self._queues, stamps, strict=True):
            stale = [s for s in queue if s < stamp]
            for s in stale:
                del queue[s]
                self.dropped[name] += 1
        self.groups += 1
        return group

    def waiting(self) -> dict[str, int]:
        """Items held per camera, waiting for the other cameras."""
        return {name: len(queue) for name, queue in zip(self.cameras, self._queues, strict=True)}

    def flush(self) -> int:
        """Drop (and count) everything still waiting; returns how many items that was."""
        total = 0
        for name, queue in zip(self.cameras, self._queues, strict=True):
            if queue:
                self.dropped[name] += len(queue)
                total += len(queue)
                queue.clear()
        return total


def group_frame(frames: Sequence[Frame], seq: int = 0) -> Frame:
    """One frame of several cameras (the first is the reference); a single frame is returned as is."""
    if not frames:
        raise ValueError("a frame group needs at least one frame")
    if len(frames) == 1:
        return frames[0]
    names = [f.frame_id for f in frames]
    if len(set(names)) != len(names):
        raise ValueError(f"every camera of a group needs its own frame_id, got {names}")
    first = frames[0]
    return Frame(first.stamp_ns, first.image, first.frame_id, seq or first.seq, tuple(frames))


_IMAGE_SUFFIXES = ("compressed", "image_raw", "image_rect_color", "image_rect", "image_color", "image")


def camera_names(topics: Sequence[str]) -> list[str]:
    """A short, valid ROS name per camera topic, unique within ``topics`` (for per-camera outputs).

    Transport and image suffixes are dropped and the rest joined: ``/CAM_FRONT/image_raw/compressed``
    is ``CAM_FRONT``, ``/robot/left/image_raw`` is ``robot_left``; a repeated name gets its index.
    """
    names = []
    for index, topic in enumerate(topics):
        parts = [p for p in topic.strip("/").split("/") if p]
        while len(parts) > 1 and parts[-1] in _IMAGE_SUFFIXES:
            parts.pop()
        name = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts)) or f"camera{index}"
        if name[0].isdigit():
            name = f"camera_{name}"
        names.append(name)
    return [f"{n}_{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
