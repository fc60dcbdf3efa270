"""The camera input of the nodes: one image topic, or several synchronized by stamp.

One camera is a plain subscription, as it always was. Several cameras (``camera.topics``) are
``message_filters.Subscriber`` s joined by an ``ApproximateTimeSynchronizer`` with
``camera.sync_slop_s`` (the replay groups bags with the same slop): each complete set becomes one frame
of several cameras (``runtime.ros_msgs.frame_group_from_msgs``). ``on_message`` hears every message of
every camera of several (one camera: every decoded frame) for the watchdogs, ``on_frame`` every decoded
frame or group, ``on_error`` every undecodable one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from message_filters import ApproximateTimeSynchronizer, Subscriber
from sensor_msgs.msg import CompressedImage, Image

from ..core.config import CameraConfig
from ..core.types import Frame
from ..runtime.image_codec import ImageDecodeError
from ..runtime.qos import camera_qos
from ..runtime.ros_msgs import camera_topics, frame_group_from_msgs
from .common import qos_profile

SYNC_QUEUE_SIZE = 10
"""Messages per camera the synchronizer holds while it waits for the other cameras."""


class CameraInput:
    """The camera subscription(s) of one node; ``destroy`` removes them."""

    def __init__(
        self,
        node: Any,
        camera: CameraConfig,
        on_frame: Callable[[Frame], None],
        on_error: Callable[[Exception], None],
        on_message: Callable[[int], None] = lambda index: None,
    ) -> None:
        self.node = node
        self.msg_type = CompressedImage if camera.transport == "compressed" else Image
        self.qos = camera_qos(camera)
        self._on_frame, self._on_error, self._on_message = on_frame, on_error, on_message
        self._seq = 0
        profile = qos_profile(self.qos)
        topics = camera_topics(camera)
        self.sync: ApproximateTimeSynchronizer | None = None
        if len(topics) == 1:
            self._subscriptions = [
                node.create_subscription(self.msg_type, topics[0], self._on_single, profile)
            ]
        else:
            filters = [Subscriber(node, self.msg_type, topic, qos_profile=profile) for topic in topics]
            for index, source in enumerate(filters):
                source.registerCallback(self._heard, index)
            self.sync = ApproximateTimeSynchronizer(filters, SYNC_QUEUE_SIZE, camera.sync_slop_s)
            self.sync.registerCallback(self._on_group)
            self._subscriptions = [source.sub for source in filters]
        self.topics = [subscription.topic_name for subscription in self._subscriptions]

    @property
    def msg_type_name(self) -> str:
        return f"sensor_msgs/msg/{self.msg_type.__name__}"

    def destroy(self) -> None:
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        self._subscriptions = []
        self.sync = None

    def _heard(self, msg: Any, index: int) -> None:
        self._on_message(index)

    def _on_single(self, msg: Any) -> None:
        self._deliver([msg], heard=0)  # one camera: heard once decoded, as it always was

    def _on_group(self, *msgs: Any) -> None:
        self._deliver(list(msgs))

    def _deliver(self, msgs: list[Any], heard: int | None = None) -> None:
        self._seq += 1
        try:
            frame = frame_group_from_msgs(msgs, self._seq)
        except (ImageDecodeError, ValueError) as err:
            self._on_error(err)
            return
        if heard is not None:
            self._on_message(heard)
        self._on_frame(frame)
