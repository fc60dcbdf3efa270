"""Read camera frames from a rosbag2 bag (sqlite3 or MCAP), skipping and counting what is broken.

``open_camera_bag(path, topic)`` picks the image topic (``sensor_msgs/Image`` or
``CompressedImage``; the only one, or the one named), reads the ground-truth sidecar
``annotations.jsonl`` when present (on first use), and iterates :class:`BagFrame` items in bag
order. A frame that cannot be decoded (corrupt data, unknown encoding, zero-size or huge image,
undeserializable message) comes out with ``frame=None`` and an ``error`` reason, counted in
:class:`ReadStats`; an unreadable part of the bag is counted and skipped; the iteration never stops
early on bad data.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import Reader

from ..core.annotations import ANNOTATIONS_FILE, AnnotationError, AnnotationIndex, load_annotations
from ..core.types import NS_PER_S, Frame
from .image_codec import MAX_PIXELS, ImageDecodeError, decode_image_msg
from .typestore import spotvlm_typestore

LOG = logging.getLogger("spotvlm.bag")

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
DEFAULT_FRAME_ID = "camera"
WARNINGS_PER_REASON = 3
FALLBACK_WINDOW_NS = NS_PER_S
"""Time window read at a time after an unreadable part of a bag without chunk index (sqlite3)."""


class BagError(RuntimeError):
    """A bag that cannot be used at all (missing, unreadable metadata, no or ambiguous image topic)."""


@dataclass(frozen=True, slots=True)
class BagFrame:
    """One camera message: the decoded frame, or ``frame=None`` and the reason it was skipped."""

    stamp_ns: int
    frame: Frame | None
    error: str = ""
    log_ns: int = 0
    raw: bytes | memoryview = b""
    index: int = 0

    @property
    def ok(self) -> bool:
        return self.frame is not None


@dataclass
class ReadStats:
    """What one pass over a camera topic saw; ``skipped`` counts frames per reason."""

    messages: int = 0
    frames: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    missing_stamp: int = 0
    non_monotonic: int = 0
    unreadable_chunks: int = 0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "frames": self.frames,
            "skipped": self.skipped_total,
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "missing_stamp": self.missing_stamp,
            "non_monotonic": self.non_monotonic,
            "unreadable_chunks": self.unreadable_chunks,
        }


class CameraBag:
    """An open bag's camera topic; iterate it for :class:`BagFrame` items (a context manager).

    ``reader``: an open reader of the bag shared with other topics (a camera set); the caller closes it.
    """

    def __init__(
        self, path: str | Path, topic: str = "", max_pixels: int = MAX_PIXELS, reader: Reader | None = None
    ) -> None:
        self.path = Path(path)
        self.max_pixels = max_pixels
        self.stats = ReadStats()
        self._typestore = spotvlm_typestore()
        self._owns_reader = reader is None
        self._reader = open_reader(self.path) if reader is None else reader
        self._previous = -1
        try:
            self.image_topics = _image_topics(self._reader)
            self.topic = _choose_topic(self.image_topics, topic, self.path)
            self.msgtype = self.image_topics[self.topic]
            self._connections = [c for c in self._reader.connections if c.topic == self.topic]
            self.message_count = sum(c.msgcount for c in self._connections)
        except BaseException:
            if self._owns_reader:
                self._reader.close()
            raise
        self._warned: Counter[str] = Counter()

    @property
    def sidecar(self) -> Path:
        """Where the ground truth of this bag is (or would be)."""
        return (self.path if self.path.is_dir() else self.path.parent) / ANNOTATIONS_FILE

    @cached_property
    def annotations(self) -> AnnotationIndex | None:
        """Ground truth from :attr:`sidecar`, read on first use; None without one (BagError if bad)."""
        if not self.sidecar.is_file():
            return None
        try:
            return load_annotations(self.sidecar)
        except AnnotationError as err:
            raise BagError(f"bad ground truth: {err}") from None

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    @property
    def storage(self) -> str:
        """``mcap`` or ``sqlite3``."""
        files = [p.suffix for p in self.path.glob("*")] if self.path.is_dir() else [self.path.suffix]
        return "mcap" if ".mcap" in files else "sqlite3"

    def __enter__(self) -> CameraBag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_reader and self._reader.is_open:
            self._reader.close()

    def __iter__(self) -> Iterator[BagFrame]:
        return self.frames()

    def frames(self, start_ns: int | None = None, stop_ns: int | None = None) -> Iterator[BagFrame]:
        """Iterate the camera topic (log time in ``[start_ns, stop_ns)``); resets :attr:`stats`."""
        self.begin_pass()
        for index, (_, log_ns, raw) in enumerate(self.raw_messages(start_ns, stop_ns)):
            yield self.take(index, log_ns, raw)

    def begin_pass(self) -> None:
        """Start a new pass over the topic: statistics and the stamp order check start afresh."""
        self.stats = ReadStats()
        self._warned.clear()
        self._previous = -1

    def take(self, index: int, log_ns: int, raw: bytes | memoryview) -> BagFrame:
        """The ``index``-th message of this pass, decoded (or skipped with its reason) and counted."""
        item = self._decode(index, log_ns, raw)
        if item.frame is not None:
            if item.stamp_ns <= self._previous:
                self.stats.non_monotonic += 1
                self._warn(
                    "non_monotonic", f"frame {index}: stamp {item.stamp_ns} <= previous {self._previous}"
                )
            self._previous = item.stamp_ns
        return item

    def summary(self) -> dict[str, Any]:
        """Bag, topic and the statistics of the last pass, for run summaries."""
        return {
            "bag": str(self.path),
            "topic": self.topic,
            "msgtype": self.msgtype,
            "message_count": self.message_count,
            "annotations": str(self.sidecar) if self.sidecar.is_file() else "",
            **self.stats.as_dict(),
        }

    def _decode(self, index: int, log_ns: int, raw: bytes | memoryview) -> BagFrame:
        self.stats.messages += 1
        try:
            msg = self._typestore.deserialize_cdr(raw, self.msgtype)
            stamp_ns = int(msg.header.stamp.sec) * NS_PER_S + int(msg.header.stamp.nanosec)
            frame_id = str(msg.header.frame_id) or DEFAULT_FRAME_ID
        except Exception as err:  # any garbage in a message only skips that message
            return self._skip(index, log_ns, log_ns, raw, "deserialize_error", f"{type(err).__name__}: {err}")
        if stamp_ns <= 0:
            self.stats.missing_stamp += 1
            self._warn("missing_stamp", f"frame {index}: header stamp is 0, using the bag time {log_ns}")
            stamp_ns = log_ns
        try:
            image = decode_image_msg(msg, max_pixels=self.max_pixels)
        except ImageDecodeError as err:
            return self._skip(index, stamp_ns, log_ns, raw, err.reason, err.detail)
        self.stats.frames += 1
        frame = Frame(stamp_ns=stamp_ns, image=image, frame_id=frame_id, seq=index)
        return BagFrame(stamp_ns, frame, "", log_ns, raw, index)

    def _skip(
        self, index: int, stamp_ns: int, log_ns: int, raw: bytes | memoryview, reason: str, detail: str
    ) -> BagFrame:
        self.stats.skipped[reason] += 1
        self._warn(reason, f"skipped frame {index} (stamp {stamp_ns}): {reason}: {detail}")
        return BagFrame(stamp_ns, None, reason, log_ns, raw, index)

    def _warn(self, reason: str, message: str) -> None:
        self._warned[reason] += 1
        count = self._warned[reason]
        if count <= WARNINGS_PER_REASON:
            suffix = " (further ones are only counted)" if count == WARNINGS_PER_REASON else ""
            LOG.warning("%s: %s%s", self.topic, message, suffix)

    @property
    def connections(self) -> list[Any]:
        """The reader's connections of this topic."""
        return list(self._connections)

    def raw_messages(
        self, start: int | None, stop: int | None, connections: list[Any] | None = None
    ) -> Iterator[tuple[Any, int, bytes | memoryview]]:
        """(connection, log time, CDR bytes) in bag order; after an unreadable part, window by window.

        ``connections``: read these (of the same reader) instead of this topic's. On the first error,
        the rest of the bag is read again in disjoint windows (the MCAP chunks, else one-second
        slices); each window that fails is counted once and skipped.
        """
        connections = self._connections if connections is None else connections
        last = (start if start is not None else self.start_ns) - 1
        try:
            for connection, log_ns, raw in self._reader.messages(connections, start=start, stop=stop):
                last = log_ns
                yield connection, log_ns, raw
            return
        except Exception:  # rosbags, sqlite3, struct errors alike: located below
            pass
        for window_start, window_stop in self._windows(last + 1, stop):
            try:
                for connection, log_ns, raw in self._reader.messages(
                    connections, start=window_start, stop=window_stop
                ):
                    yield connection, log_ns, raw
            except Exception as err:  # counted, then the next window
                self.stats.unreadable_chunks += 1
                where = f"[{window_start}, {window_stop})"
                self._warn(
                    "unreadable_chunk", f"skipped unreadable bag data in {where}: {type(err).__name__}: {err}"
                )

    def _windows(self, start: int, stop: int | None) -> list[tuple[int, int]]:
        """Disjoint time windows covering ``[start, stop)``: MCAP chunk ranges, else fixed windows."""
        stop = self.end_ns if stop is None else min(stop, self.end_ns)
        ranges = sorted(
            (max(chunk.message_start_time, start), min(chunk.message_end_time + 1, stop))
            for storage in getattr(self._reader.storage, "storages", [self._reader.storage])
            for chunk in getattr(storage, "chunks", [])
        )
        if not ranges:
            ranges = [(t, min(t + FALLBACK_WINDOW_NS, stop)) for t in range(start, stop, FALLBACK_WINDOW_NS)]
        windows: list[tuple[int, int]] = []
        for lo, hi in ranges:
            if lo >= hi:
                continue
            if windows and lo <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(hi, windows[-1][1]))
            else:
                windows.append((lo, hi))
        return windows


def open_reader(path: Path) -> Reader:
    """An open rosbags reader of the bag at ``path`` (BagError when missing or unusable)."""
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as err:  # rosbags raises several types for unusable bags
        raise BagError(f"cannot open bag {path}: {err}") from None
    return reader


def _image_topics(reader: Reader) -> dict[str, str]:
    return {c.topic: c.msgtype for c in reader.connections if c.msgtype in IMAGE_TYPES}


def _choose_topic(image_topics: dict[str, str], topic: str, path: Path) -> str:
    listed = ", ".join(f"{name} ({kind})" for name, kind in sorted(image_topics.items())) or "none"
    if topic:
        if topic not in image_topics:
            raise BagError(f"{path}: no image topic {topic!r}; image topics: {listed}")
        return topic
    if len(image_topics) == 1:
        return next(iter(image_topics))
    if not image_topics:
        raise BagError(f"{path}: no sensor_msgs/Image or CompressedImage topic in the bag")
    raise BagError(f"{path}: several image topics, choose one with camera.topic: {listed}")


def open_camera_bag(path: str | Path, topic: str = "", max_pixels: int = MAX_PIXELS) -> CameraBag:
    """Open a bag directory (or a single ``.mcap``/``.db3`` file) on its camera topic."""
    return CameraBag(path, topic=topic, max_pixels=max_pixels)
