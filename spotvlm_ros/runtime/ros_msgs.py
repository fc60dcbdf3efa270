"""Message helpers of the nodes that need no ROS: they read fields of any message-like object.

rclpy messages, rosbags messages and ``types.SimpleNamespace`` test doubles all work, so the node code
that calls these stays one line each. Outgoing images are dicts in ROS layout with ``data`` as
``bytes`` (rclpy copies bytes into its ``uint8[]`` array in one step; a numpy array or list would be
checked element by element).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.types import NS_PER_S, Frame
from .image_codec import MAX_PIXELS, decode_image_msg, rgb_to_image_msg


def stamp_ns(header: Any) -> int:
    """Nanoseconds of a ``std_msgs/Header`` object's stamp."""
    return int(header.stamp.sec) * NS_PER_S + int(header.stamp.nanosec)


def frame_from_image_msg(msg: Any, seq: int = 0, max_pixels: int = MAX_PIXELS) -> Frame:
    """A :class:`Frame` (stamp and frame id from the header) of an Image or CompressedImage message.

    Raises :class:`~spotvlm_ros.runtime.image_codec.ImageDecodeError` with the reason.
    """
    image = decode_image_msg(msg, max_pixels=max_pixels)
    return Frame(stamp_ns(msg.header), image, frame_id=str(msg.header.frame_id), seq=seq)


def image_msg_fields(image: np.ndarray, stamp: int, frame_id: str) -> dict[str, Any]:
    """``sensor_msgs/Image`` (rgb8) fields for ``rosidl_runtime_py.set_message_fields``, data as bytes."""
    fields = rgb_to_image_msg(image, stamp, frame_id)
    fields["data"] = fields["data"].tobytes()
    return fields
