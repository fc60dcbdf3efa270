"""Message helpers of the nodes that need no ROS: they read fields of any message-like object.

rclpy messages, rosbags messages and ``types.SimpleNamespace`` test doubles all work, so the node code
that calls these stays one line each. Outgoing images are dicts in ROS layout with ``data`` as
``bytes`` (rclpy copies bytes into its ``uint8[]`` array in one step; a numpy array or list would be
checked element by element).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.camera_groups import group_frame
from ..core.config import CameraConfig
from ..core.types import NS_PER_S, Frame
from .image_codec import MAX_PIXELS, ImageDecodeError, decode_image_msg, rgb_to_image_msg
from .qos import camera_topic


def stamp_ns(header: Any) -> int:
    """Nanoseconds of a ``std_msgs/Header`` object's stamp."""
    return int(header.stamp.sec) * NS_PER_S + int(header.stamp.nanosec)


def frame_from_image_msg(msg: Any, seq: int = 0, max_pixels: int = MAX_PIXELS) -> Frame:
    """A :class:`Frame` (stamp and frame id from the header) of an Image or CompressedImage message.

    Raises :class:`~spotvlm_ros.runtime.image_codec.ImageDecodeError` with the reason.
    """
    image = decode_image_msg(msg, max_pixels=max_pixels)
    return Frame(stamp_ns(msg.header), image, frame_id=str(msg.header.frame_id), seq=seq)


def frame_group_from_msgs(msgs: Sequence[Any], seq: int = 0, max_pixels: int = MAX_PIXELS) -> Frame:
    """One frame of the camera messages of one instant (the first camera is the reference).

    A single message gives a plain frame. Raises ImageDecodeError (the camera named in it) or
    ValueError when two cameras share a frame id.
    """
    frames = []
    for msg in msgs:
        try:
            frames.append(frame_from_image_msg(msg, seq, max_pixels))
        except ImageDecodeError as err:
            if len(msgs) == 1:
                raise
            raise ImageDecodeError(err.reason, f"camera {msg.header.frame_id!r}: {err.detail}") from None
    return group_frame(frames, seq)


def camera_topics(camera: CameraConfig) -> list[str]:
    """The topics the nodes subscribe, one per camera (``camera_topic``'s naming for each)."""
    return [camera_topic(camera.model_copy(update={"topic": topic})) for topic in camera.camera_topics]


def image_msg_fields(image: np.ndarray, stamp: int, frame_id: str) -> dict[str, Any]:
    """``sensor_msgs/Image`` (rgb8) fields for ``rosidl_runtime_py.set_message_fields``, data as bytes."""
    fields = rgb_to_image_msg(image, stamp, frame_id)
    fields["data"] = fields["data"].tobytes()
    return fields
