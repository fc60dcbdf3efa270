"""Helpers of the ROS 2 launch tests: a tiny-model parameter file, a fixture camera and topic collectors.

Imported only by test modules that already checked :data:`ros_env.ROS_MISSING`, so ROS imports are safe.
"""

from __future__ import annotations

import array
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from spotvlm_ros.models.tiny import cached_tiny_model

FRAME_ID = "fixture_camera"
BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
NODE_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def tiny_params(path: Path, **sections: dict[str, Any]) -> Path:
    """A ``/**: ros__parameters:`` file running both models as tiny offline Qwen2.5-VL models."""
    cached_tiny_model("qwen2_5_vl", 0)  # build once here, not inside a node under a launch timeout
    cached_tiny_model("qwen2_5_vl", 1)
    params: dict[str, Any] = {
        "edge": {"backend": "tiny", "max_new_tokens": 3, "image_max_side": 64},
        "cloud": {"backend": "tiny", "max_new_tokens": 6, "image_max_side": 64},
        "focus": {"full_size": 64, "crop_size": 32},
        "keyframes": {"min_interval_s": 0.5, "max_image_side": 96, "timeout_s": 20.0},
        "camera": {"no_frames_warn_s": 5.0},
    }
    for name, values in sections.items():
        params.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    return path


def frame_image(i: int, width: int = 160, height: int = 120) -> np.ndarray:
    """A gradient with a square moving across: frames differ, decoding is checkable."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    image[:, :, 2] = 80
    x = (i * 7) % (width - 20)
    image[50:70, x : x + 20] = (255, 255, 0)
    return image


class Collector:
    """Messages of one topic with their arrival times; ``wait`` polls for a condition."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[tuple[float, Any]] = []

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self.items.append((time.monotonic(), msg))

    @property
    def messages(self) -> list[Any]:
        with self._lock:
            return [m for _, m in self.items]

    def since(self, t0: float) -> list[Any]:
        with self._lock:
            return [m for t, m in self.items if t >= t0]

    def wait(self, condition: Callable[[list[Any]], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition(self.messages):
                return True
            time.sleep(0.1)
        return condition(self.messages)


class CameraRig:
    """What the test changes on running fixture cameras: stamp offsets and stopped cameras."""

    def __init__(self, topics: dict[str, str]) -> None:
        self.topics = dict(topics)
        self.offsets_ns: dict[str, int] = {}
        self.stopped: set[str] = set()
        self.sent: dict[str, list[int]] = {}
        self.ticks = 0


class RosHarness:
    """An rclpy node spinning in a thread: a fixture camera and subscriptions for the assertions."""

    def __init__(self, name: str = "spotvlm_test_harness") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.published: dict[int, str] = {}  # stamp ns -> frame id of every frame sent
        self._count = 0

    def camera(self, topic: str, rate_hz: float = 5.0, qos: QoSProfile | int = 10) -> None:
        """Publish fixture frames (rgb8, stamped with the node clock) at ``rate_hz``."""
        pub = self.node.create_publisher(Image, topic, qos)

        def tick() -> None:
            self._count += 1
            image = frame_image(self._count)
            msg = Image()
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.header.frame_id = FRAME_ID
            msg.height, msg.width = image.shape[:2]
            msg.encoding, msg.step = "rgb8", image.shape[1] * 3
            msg.data = array.array("B", image.tobytes())
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self.published[stamp] = FRAME_ID
            pub.publish(msg)

        self.node.create_timer(1.0 / rate_hz, tick)

    def cameras(self, topics: dict[str, str], rate_hz: float = 5.0, qos: QoSProfile | int = 10) -> CameraRig:
        """Several fixture cameras (topic -> frame id) publishing one frame each per tick.

        Tick k is stamped ``start + k / rate_hz`` (no timer jitter in the stamps) plus the camera's
        ``offsets_ns`` entry; a camera in ``stopped`` publishes nothing. Sent stamps are recorded per
        camera in ``sent``.
        """
        rig = CameraRig(topics)
        pubs = {topic: self.node.create_publisher(Image, topic, qos) for topic in topics}
        start = self.node.get_clock().now().nanoseconds
        period_ns = round(1e9 / rate_hz)

        def tick() -> None:
            self._count += 1
            rig.ticks += 1
            for index, (topic, frame_id) in enumerate(topics.items()):
                if topic in rig.stopped:
                    continue
                image = frame_image(self._count + 11 * index)
                stamp = start + rig.ticks * period_ns + rig.offsets_ns.get(topic, 0)
                msg = Image()
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                msg.header.frame_id = frame_id
                msg.height, msg.width = image.shape[:2]
                msg.encoding, msg.step = "rgb8", image.shape[1] * 3
                msg.data = array.array("B", image.tobytes())
                rig.sent.setdefault(frame_id, []).append(stamp)
                pubs[topic].publish(msg)

        self.node.create_timer(1.0 / rate_hz, tick)
        return rig

    def collect(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10) -> Collector:
        collector = Collector()
        self.node.create_subscription(msg_type, topic, collector, qos)
        return collector

    def call(self, srv_type: Any, name: str, request: Any, timeout_s: float = 30.0) -> Any:
        """Call a service from the test thread (the executor thread delivers the response)."""
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout_s):
                raise TimeoutError(f"service {name} not available")
            future = client.call_async(request)
            deadline = time.monotonic() + timeout_s
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not future.done():
                raise TimeoutError(f"no response from {name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def stamp_ns(header: Any) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
