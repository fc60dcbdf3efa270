"""Write rosbag2 bags: a run's output (:class:`OutputBag`) and plain camera bags (``write_camera_bag``).

:class:`OutputBag` writes a real rosbag2 bag (MCAP by default) plus a JSONL of per-frame records.

Topics (see README "Replay a bag"): the input camera images (same topic and type as the input; the
input message bytes are copied, not re-serialized), ``/spotvlm/answer`` (EdgeAnswer),
``/spotvlm/context`` (LvlmContext, offered TRANSIENT_LOCAL so ``ros2 bag play`` latches it),
``/spotvlm/detections`` (Detection2DArray), ``/spotvlm/focus_image`` (annotated Image, optional and
decimated) and ``/spotvlm/markers`` (ImageMarker). Header stamps are capture stamps; the bag's log
time of a message is the time it became available (answer: frame stamp + inference time; context: its
arrival). The bag is closed properly even when the run raises, so what was written is kept.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer

from ..core.annotations import ANNOTATIONS_FILE, FrameAnnotation, save_annotations
from ..core.messages import edge_answer_to_msg, lvlm_result_to_msg, regions_to_detection_array
from ..core.types import NS_PER_S, EdgeAnswer, Frame, LvlmResult
from .bag_reader import COMPRESSED_TYPE, IMAGE_TYPE, BagFrame
from .image_codec import resize_max_side, rgb_to_compressed_msg, rgb_to_image_msg
from .overlay import annotate, answer_detections, answer_markers, remove_marker
from .typestore import build_message, spotvlm_typestore

BAG_VERSION = 8  # QoS profiles as rosbag2 writes them up to Jazzy (readable by Humble and Jazzy)
GENERATOR_KEY = "generator"
"""``custom_data`` key naming the writer; rosbag2's C++ reader needs custom_data to be a map, not null."""
RECORDS_FILE = "records.jsonl"
DEFAULT_CAMERA_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
ANSWER_TOPIC = "/spotvlm/answer"
CONTEXT_TOPIC = "/spotvlm/context"
DETECTIONS_TOPIC = "/spotvlm/detections"
FOCUS_IMAGE_TOPIC = "/spotvlm/focus_image"
MARKERS_TOPIC = "/spotvlm/markers"
ANSWER_TYPE = "spotvlm_msgs/msg/EdgeAnswer"
CONTEXT_TYPE = "spotvlm_msgs/msg/LvlmContext"
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"
MARKER_TYPE = "visualization_msgs/msg/ImageMarker"


def qos_profile(latched: bool = False, depth: int = 10) -> Qos:
    """Offered QoS: reliable, keep-last; ``latched`` = TRANSIENT_LOCAL with depth 1."""
    zero = QosTime(0, 0)  # rmw "unspecified" = no deadline / lifespan / lease
    return Qos(
        QosHistory.KEEP_LAST,
        1 if latched else depth,
        QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


OUTPUT_TOPICS: dict[str, tuple[str, bool]] = {
    ANSWER_TOPIC: (ANSWER_TYPE, False),
    CONTEXT_TOPIC: (CONTEXT_TYPE, True),
    DETECTIONS_TOPIC: (DETECTIONS_TYPE, False),
    FOCUS_IMAGE_TOPIC: (IMAGE_TYPE, False),
    MARKERS_TOPIC: (MARKER_TYPE, False),
}
"""Output topics besides the camera: topic -> (message type, latched)."""


class OutputBag:
    """A rosbag2 bag being written, with the run's JSONL records (a context manager).

    ``focus_image_every`` writes the annotated image for every n-th answer given a frame (0 = never);
    ``focus_image_max_side`` downscales it first (0 = full size).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        storage: str = "mcap",
        input_topic: str = DEFAULT_CAMERA_TOPIC,
        input_msgtype: str = IMAGE_TYPE,
        records_path: str | Path | None = None,
        focus_image_every: int = 1,
        focus_image_max_side: int = 0,
        marker_lifetime_s: float = 1.0,
    ) -> None:
        if storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
        if input_msgtype not in (IMAGE_TYPE, COMPRESSED_TYPE):
            raise ValueError(f"input type must be an image type, got {input_msgtype!r}")
        if focus_image_every < 0 or focus_image_max_side < 0:
            raise ValueError("focus_image_every and focus_image_max_side must be >= 0")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"output bag {self.path} exists already; choose a new path or remove it")
        self.storage = storage
        self.input_topic = input_topic
        self.input_msgtype = input_msgtype
        self.records_path = Path(records_path) if records_path else self.path / RECORDS_FILE
        self.focus_image_every = focus_image_every
        self.focus_image_max_side = focus_image_max_side
        self.marker_lifetime_s = marker_lifetime_s
        self.counts: Counter[str] = Counter()
        self._typestore = spotvlm_typestore()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        self._connections: dict[str, Connection] = {}
        self._records: IO[str] | None = None
        self._answers_with_frame = 0
        self._marker_counts: dict[str, int] = {}

    def __enter__(self) -> OutputBag:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # also on errors: keep what was written

    def open(self) -> None:
        self._writer.set_custom_data(GENERATOR_KEY, "spotvlm_ros output bag")
        self._writer.open()
        self.records_path.parent.mkdir(parents=True, exist_ok=True)
        self._records = self.records_path.open("w", buffering=1)
        topics = {self.input_topic: (self.input_msgtype, False), **OUTPUT_TOPICS}
        for topic, (msgtype, latched) in topics.items():
            self._connections[topic] = self._writer.add_connection(
                topic,
                msgtype,
                typestore=self._typestore,
                serialization_format="cdr",
                offered_qos_profiles=[qos_profile(latched)],
            )

    def close(self) -> None:
        """Finish the bag (index, metadata.yaml) and the records file; safe to call twice."""
        if self._records is not None:
            self._records.close()
            self._records = None
        if self._writer.storage is not None:
            self._writer.close()

    def summary(self) -> dict[str, Any]:
        return {"bag": str(self.path), "records": str(self.records_path), "messages": dict(self.counts)}

    def _write_raw(self, topic: str, log_ns: int, data: bytes | memoryview) -> None:
        self._writer.write(self._connections[topic], int(log_ns), data)
        self.counts[topic] += 1

    def _write_dict(self, topic: str, log_ns: int, msg: Mapping[str, Any]) -> None:
        msgtype = self._connections[topic].msgtype
        obj = build_message(self._typestore, msgtype, dict(msg))
        self._write_raw(topic, log_ns, self._typestore.serialize_cdr(obj, msgtype))

    def write_frame(self, frame: Frame | BagFrame, log_ns: int | None = None) -> bool:
        """Write an input image; a :class:`BagFrame` is copied byte for byte. False if it has no frame."""
        if isinstance(frame, BagFrame):
            if frame.frame is None:
                return False
            if frame.raw:
                self._write_raw(self.input_topic, frame.log_ns if log_ns is None else log_ns, frame.raw)
                return True
            frame = frame.frame
        stamp = frame.stamp_ns if log_ns is None else log_ns
        if self.input_msgtype == COMPRESSED_TYPE:
            msg = rgb_to_compressed_msg(frame.image, frame.stamp_ns, frame.frame_id)
        else:
            msg = rgb_to_image_msg(frame.image, frame.stamp_ns, frame.frame_id)
        self._write_dict(self.input_topic, stamp, msg)
        return True

    def write_answer(self, answer: EdgeAnswer, log_ns: int, frame: Frame | None = None) -> None:
        """EdgeAnswer, its detections and markers at ``log_ns``; the annotated image when due."""
        self._write_dict(ANSWER_TOPIC, log_ns, edge_answer_to_msg(answer))
        regions = answer_detections(answer)
        self._write_dict(
            DETECTIONS_TOPIC, log_ns, regions_to_detection_array(regions, answer.stamp_ns, answer.frame_id)
        )
        self.write_markers(self._markers_with_removals(answer), log_ns)
        if frame is not None and self.focus_image_every:
            due = self._answers_with_frame % self.focus_image_every == 0
            self._answers_with_frame += 1
            if due:
                self.write_focus_image(answer.stamp_ns, annotate(frame.image, answer), frame.frame_id, log_ns)

    def _markers_with_removals(self, answer: EdgeAnswer) -> list[dict[str, Any]]:
        markers: list[dict[str, Any]] = []
        for ns, items in answer_markers(answer, self.marker_lifetime_s).items():
            markers.extend(items)
            previous = self._marker_counts.get(ns, 0)
            markers.extend(
                remove_marker(i, answer.stamp_ns, answer.frame_id, ns) for i in range(len(items), previous)
            )
            self._marker_counts[ns] = len(items)
        return markers

    def write_markers(self, markers: Sequence[Mapping[str, Any]], log_ns: int) -> None:
        """``visualization_msgs/ImageMarker`` dicts (see ``runtime.overlay``)."""
        for marker in markers:
            self._write_dict(MARKERS_TOPIC, log_ns, marker)

    def write_context(self, result: LvlmResult, receive_ns: int) -> None:
        """An LVLM result as LvlmContext, logged at its arrival time ``receive_ns``."""
        self._write_dict(CONTEXT_TOPIC, receive_ns, lvlm_result_to_msg(result))

    def write_focus_image(
        self, stamp_ns: int, image: np.ndarray, frame_id: str = "camera", log_ns: int | None = None
    ) -> None:
        """An annotated RGB image (downscaled to ``focus_image_max_side``) on the focus image topic."""
        small = resize_max_side(image, self.focus_image_max_side)
        self._write_dict(
            FOCUS_IMAGE_TOPIC,
            stamp_ns if log_ns is None else log_ns,
            rgb_to_image_msg(small, stamp_ns, frame_id),
        )

    def write_record(self, record: Mapping[str, Any]) -> None:
        """One JSON line in the records file (numpy scalars and arrays are converted)."""
        if self._records is None:
            raise RuntimeError(f"output bag {self.path} is not open")
        self._records.write(json.dumps(record, default=_json_default, sort_keys=True) + "\n")


@dataclass(frozen=True)
class BagSummary:
    """What a bag writer wrote."""

    path: Path
    topic: str
    msgtype: str
    frames: int
    annotated: int
    start_ns: int
    end_ns: int
    bytes: int

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_S if self.frames else 0.0


def default_topic(transport: str) -> str:
    """The usual camera topic of a transport (``image_transport`` naming)."""
    return COMPRESSED_TOPIC if transport == "compressed" else DEFAULT_CAMERA_TOPIC


def write_camera_bag(
    path: str | Path,
    frames: Iterable[tuple[Frame, FrameAnnotation | None]],
    *,
    storage: str = "mcap",
    transport: str = "raw",
    topic: str = "",
    jpeg_quality: int = 90,
) -> BagSummary:
    """Write frames (with optional ground truth) as a new bag at ``path`` (must not exist)."""
    if storage not in ("mcap", "sqlite3"):
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    if transport not in ("raw", "compressed"):
        raise ValueError(f"transport must be 'raw' or 'compressed', got {transport!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists already; choose a new output path")
    topic = topic or default_topic(transport)
    msgtype = COMPRESSED_TYPE if transport == "compressed" else IMAGE_TYPE
    store = spotvlm_typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    annotations: list[FrameAnnotation] = []
    count, first, last = 0, 0, 0
    writer = Writer(path, version=BAG_VERSION, storage_plugin=plugin)
    writer.set_custom_data(GENERATOR_KEY, "spotvlm_ros camera bag")
    with writer:
        conn = writer.add_connection(topic, msgtype, typestore=store, offered_qos_profiles=[qos_profile()])
        for frame, annotation in frames:
            if transport == "compressed":
                msg = rgb_to_compressed_msg(frame.image, frame.stamp_ns, frame.frame_id, quality=jpeg_quality)
            else:
                msg = rgb_to_image_msg(frame.image, frame.stamp_ns, frame.frame_id)
            raw = store.serialize_cdr(build_message(store, msgtype, msg), msgtype)
            writer.write(conn, frame.stamp_ns, raw)
            first = frame.stamp_ns if count == 0 else first
            last, count = frame.stamp_ns, count + 1
            if annotation is not None:
                annotations.append(annotation)
    if annotations:
        save_annotations(path / ANNOTATIONS_FILE, annotations)
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return BagSummary(path, topic, msgtype, count, len(annotations), first, last, size)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
