"""Several cameras of one bag: read in bag order, grouped by stamp, and written back per camera.

:class:`CameraSetBag` opens the bag once and reads every camera topic in one pass in bag order, through one
:class:`~.bag_reader.CameraBag` per topic (each decodes, skips and counts its own broken messages), and
groups the frames of one instant with
:class:`~spotvlm_ros.core.camera_groups.CameraGrouper` (``camera.sync_slop_s``; the same slop the ROS
nodes give ``message_filters.ApproximateTimeSynchronizer``). It yields one
:class:`~.bag_reader.BagFrame` per complete group, stamped with the arrival of its last camera, whose
frame holds every camera (``Frame.cameras``); unreadable messages come through as they are, and
``on_message`` hears every message read (the replay copies them into its output bag).
:class:`CameraSetOutputBag` writes each camera on its own topic and a focus image per camera;
:func:`write_camera_set_bag` writes a plain bag of several camera topics.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import StoragePlugin, Writer

from ..core.annotations import ANNOTATIONS_FILE, AnnotationIndex, FrameAnnotation, save_annotations
from ..core.camera_groups import CameraGrouper, camera_names, group_frame
from ..core.types import EdgeAnswer, Frame
from .bag_reader import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    BagError,
    BagFrame,
    CameraBag,
    open_camera_bag,
    open_reader,
)
from .bag_writer import BAG_VERSION, GENERATOR_KEY, OutputBag, qos_profile
from .image_codec import MAX_PIXELS, resize_max_side, rgb_to_compressed_msg, rgb_to_image_msg
from .overlay import annotate, camera_answer, focus_image_topic
from .typestore import build_message, spotvlm_typestore

MessageHook = Callable[[str, BagFrame], None]
"""Hears (topic, message) for every camera message read, readable or not."""


class CameraSetBag:
    """The camera topics ``topics`` of the bag at ``path``, iterated as frame groups (a context manager)."""

    def __init__(
        self,
        path: str | Path,
        topics: Sequence[str],
        slop_s: float,
        max_pixels: int = MAX_PIXELS,
        on_message: MessageHook | None = None,
    ) -> None:
        if len(topics) < 2:
            raise ValueError("a camera set needs at least two topics; open_camera_bag reads one")
        self.path = Path(path)
        self.slop_s = slop_s
        self.on_message = on_message
        self.bags: list[CameraBag] = []
        self._reader = open_reader(self.path)  # one metadata parse and one index read for every camera
        try:
            for topic in topics:
                self.bags.append(CameraBag(path, topic, max_pixels, reader=self._reader))
        except BagError:
            self.close()
            raise
        self.topics = [bag.topic for bag in self.bags]
        self.topic = ", ".join(self.topics)
        self.msgtypes = {bag.topic: bag.msgtype for bag in self.bags}
        self.msgtype = self.bags[0].msgtype
        self.grouper: CameraGrouper[BagFrame] = CameraGrouper(self.topics, slop_s)

    @property
    def annotations(self) -> AnnotationIndex | None:
        return self.bags[0].annotations

    @property
    def storage(self) -> str:
        return self.bags[0].storage

    def __enter__(self) -> CameraSetBag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for bag in self.bags:
            bag.close()
        if self._reader.is_open:
            self._reader.close()

    def __iter__(self) -> Iterator[BagFrame]:
        return self.frames()

    def frames(self, start_ns: int | None = None, stop_ns: int | None = None) -> Iterator[BagFrame]:
        """Frame groups (and unreadable messages) in bag order, log time in ``[start_ns, stop_ns)``."""
        self.grouper = CameraGrouper(self.topics, self.slop_s)
        camera_of = {}
        for index, bag in enumerate(self.bags):
            bag.begin_pass()
            camera_of |= {connection.id: index for connection in bag.connections}
        connections = [connection for bag in self.bags for connection in bag.connections]
        taken = [0] * len(self.bags)
        groups = 0
        for connection, log_ns, raw in self.bags[0].raw_messages(start_ns, stop_ns, connections):
            index = camera_of[connection.id]
            item = self.bags[index].take(taken[index], log_ns, raw)
            taken[index] += 1
            if self.on_message is not None:
                self.on_message(self.topics[index], item)
            if item.frame is None:
                yield item
                continue
            camera_frames = self.grouper.add(index, item.frame.stamp_ns, item)
            if camera_frames is None:
                continue
            arrival = max(f.frame.stamp_ns for f in camera_frames)
            frame = group_frame([f.frame for f in camera_frames], seq=groups)
            yield BagFrame(arrival, frame, "", max(f.log_ns for f in camera_frames), b"", groups)
            groups += 1
        self.grouper.flush()

    @property
    def stats(self) -> CameraSetStats:
        return CameraSetStats(self)


class CameraSetStats:
    """What the last pass over a camera set saw: per camera, and the groups formed."""

    def __init__(self, bag: CameraSetBag) -> None:
        self._bag = bag

    def as_dict(self) -> dict[str, Any]:
        per_camera = {b.topic: b.stats.as_dict() for b in self._bag.bags}
        totals = {
            key: sum(stats[key] for stats in per_camera.values())
            for key in (
                "messages",
                "frames",
                "skipped",
                "missing_stamp",
                "non_monotonic",
                "unreadable_chunks",
            )
        }
        grouper = self._bag.grouper
        return {
            **totals,
            "groups": grouper.groups,
            "unmatched": dict(sorted(grouper.dropped.items())),
            "sync_slop_s": self._bag.slop_s,
            "cameras": per_camera,
        }


class HeldMessages:
    """A :data:`MessageHook` that holds the messages read before its target exists, then forwards."""

    def __init__(self) -> None:
        self._held: list[tuple[str, BagFrame]] = []
        self._target: MessageHook | None = None

    def __call__(self, topic: str, item: BagFrame) -> None:
        if self._target is None:
            self._held.append((topic, item))
        else:
            self._target(topic, item)

    def attach(self, target: MessageHook) -> None:
        """Send the held messages to ``target``, and every later one."""
        held, self._held = self._held, []
        for topic, item in held:
            target(topic, item)
        self._target = target


def open_cameras(
    path: str | Path,
    topics: Sequence[str],
    slop_s: float,
    max_pixels: int = MAX_PIXELS,
    on_message: MessageHook | None = None,
) -> CameraBag | CameraSetBag:
    """One camera (``open_camera_bag``; ``""`` = the bag's only image topic) or a set of several."""
    if len(topics) <= 1:
        return open_camera_bag(path, topics[0] if topics else "", max_pixels)
    return CameraSetBag(path, topics, slop_s, max_pixels, on_message)


class CameraSetOutputBag(OutputBag):
    """An :class:`OutputBag` whose input is several camera topics, with a focus image per camera.

    Camera messages are copied with :meth:`write_camera`; answers about a frame group write their
    annotated focus image of each camera on ``/spotvlm/focus_image/<camera name>`` (the names of
    ``core.camera_groups.camera_names``, as the edge node publishes them).
    """

    def __init__(self, path: str | Path, *, input_topics: Mapping[str, str], **kwargs: Any) -> None:
        topics = dict(input_topics)
        if len(topics) < 2:
            raise ValueError("a camera set output bag needs at least two input topics")
        first, msgtype = next(iter(topics.items()))
        super().__init__(path, input_topic=first, input_msgtype=msgtype, **kwargs)
        self.input_topics = topics
        self.camera_names = camera_names(list(topics))
        self._answers_with_group = 0

    def open(self) -> None:
        super().open()
        for topic, msgtype in list(self.input_topics.items())[1:]:
            self._add(topic, msgtype)

    def _add(self, topic: str, msgtype: str) -> None:
        self._connections[topic] = self._writer.add_connection(
            topic,
            msgtype,
            typestore=self._typestore,
            serialization_format="cdr",
            offered_qos_profiles=[qos_profile()],
        )

    def write_camera(self, topic: str, item: BagFrame) -> bool:
        """Copy one camera message byte for byte onto its topic; False when it has no bytes."""
        if not item.raw:
            return False
        self._write_raw(topic, item.log_ns, item.raw)
        return True

    def write_answer(self, answer: EdgeAnswer, log_ns: int, frame: Frame | None = None) -> None:
        if frame is None or not frame.cameras:
            super().write_answer(answer, log_ns, frame)
            return
        super().write_answer(answer, log_ns, None)
        if not self.focus_image_every:
            return
        due = self._answers_with_group % self.focus_image_every == 0
        self._answers_with_group += 1
        if not due:
            return
        for view, name in zip(frame.cameras, self.camera_names, strict=False):
            topic = focus_image_topic(name)
            if topic not in self._connections:
                self._add(topic, IMAGE_TYPE)
            image = annotate(view.image, camera_answer(answer, view.frame_id, frame.frame_id))
            small = resize_max_side(image, self.focus_image_max_side)
            self._write_dict(topic, log_ns, rgb_to_image_msg(small, answer.stamp_ns, view.frame_id))


def _stamped(frames: Iterable[Frame], index: int, topic: str) -> Iterator[tuple[int, int, str, Frame]]:
    """(stamp, camera number, topic, frame): the merge key of one camera's frames."""
    for frame in frames:
        yield frame.stamp_ns, index, topic, frame


def write_camera_set_bag(
    path: str | Path,
    cameras: Mapping[str, Iterable[Frame]],
    *,
    storage: str = "mcap",
    transport: str = "compressed",
    jpeg_quality: int = 90,
    annotations: Iterable[FrameAnnotation] = (),
) -> dict[str, int]:
    """A new bag at ``path`` with one image topic per camera (topic -> frames); returns frames per topic.

    Messages are logged at their capture stamps, merged in stamp order as a recorder would see them.
    """
    if storage not in ("mcap", "sqlite3"):
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    if transport not in ("raw", "compressed"):
        raise ValueError(f"transport must be 'raw' or 'compressed', got {transport!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists already; choose a new output path")
    store = spotvlm_typestore()
    msgtype = COMPRESSED_TYPE if transport == "compressed" else IMAGE_TYPE
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=BAG_VERSION, storage_plugin=plugin)
    writer.set_custom_data(GENERATOR_KEY, "spotvlm_ros camera set bag")
    counts = dict.fromkeys(cameras, 0)
    with writer:
        connections = {
            topic: writer.add_connection(
                topic, msgtype, typestore=store, offered_qos_profiles=[qos_profile()]
            )
            for topic in cameras
        }
        streams = [_stamped(frames, i, topic) for i, (topic, frames) in enumerate(cameras.items())]
        for stamp, _, topic, frame in heapq.merge(*streams, key=lambda entry: entry[:2]):
            if transport == "compressed":
                msg = rgb_to_compressed_msg(frame.image, frame.stamp_ns, frame.frame_id, quality=jpeg_quality)
            else:
                msg = rgb_to_image_msg(frame.image, frame.stamp_ns, frame.frame_id)
            writer.write(
                connections[topic], stamp, store.serialize_cdr(build_message(store, msgtype, msg), msgtype)
            )
            counts[topic] += 1
    kept = list(annotations)
    if kept:
        save_annotations(path / ANNOTATIONS_FILE, kept)
    return counts


__all__ = [
    "CameraSetBag",
    "CameraSetOutputBag",
    "HeldMessages",
    "open_cameras",
    "write_camera_set_bag",
]
