"""``spotvlm_edge``: the SVLM on every newest camera frame, with the LVLM context the bridge latches.

Subscribes the camera (``camera.*`` parameters: topic, raw/compressed, QoS) and ``context``
(TRANSIENT_LOCAL, depth 1); the SVLM runs in its own thread (``runtime.edge_worker``), so callbacks never
wait for it. Publishes ``~/answer`` (EdgeAnswer), ``~/detections`` (header of the frame) and
``~/focus_image`` (annotated, only computed while someone subscribes). Model loaded on activate, freed
on deactivate.
"""

from __future__ import annotations

import time

from rosidl_runtime_py import message_to_ordereddict
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from spotvlm_msgs.msg import EdgeAnswer, LvlmContext

from ..core.messages import edge_answer_to_msg, lvlm_result_from_msg, regions_to_detection_array
from ..core.types import Frame
from ..models.factory import create_backend
from ..runtime.diagnostics import DiagnosticReport, EdgeMonitor
from ..runtime.edge import Step
from ..runtime.edge_worker import EdgeWorker, build_edge_runtime, carry_store
from ..runtime.image_codec import ImageDecodeError
from ..runtime.overlay import annotate, answer_detections
from ..runtime.qos import CONTEXT_QOS, OUTPUT_QOS, FrameWatchdog, camera_qos, camera_topic, no_frames_message
from ..runtime.ros_msgs import frame_from_image_msg, image_msg_fields
from ..runtime.ros_params import touches
from .common import SpotVlmNode, fill, qos_profile, qos_spec, run_node


class EdgeNode(SpotVlmNode):
    """Thin adapter: camera and context in, answers out; the SVLM step is ``runtime.edge.EdgeRuntime``."""

    def __init__(self) -> None:
        super().__init__("spotvlm_edge")
        self.monitor = EdgeMonitor()
        self.store = None
        self.backend = None
        self.worker: EdgeWorker | None = None
        self._seq = 0

    def configure(self) -> None:
        out = qos_profile(OUTPUT_QOS)
        self.answer_pub = self.create_lifecycle_publisher(EdgeAnswer, "~/answer", out)
        self.detections_pub = self.create_lifecycle_publisher(Detection2DArray, "~/detections", out)
        self.focus_pub = self.create_lifecycle_publisher(Image, "~/focus_image", out)
        self.store = carry_store(self.store, self.config)
        self.context_sub = self.create_subscription(
            LvlmContext, "context", self._on_context, qos_profile(CONTEXT_QOS)
        )

    def activate(self) -> None:
        camera = self.config.camera
        self.backend = create_backend(self.config.edge, role="edge")
        self.worker = EdgeWorker(
            build_edge_runtime(self.backend, self.config, self.store), self._publish, self.monitor
        )
        self.worker.start()
        self.msg_type = CompressedImage if camera.transport == "compressed" else Image
        self.camera_qos = camera_qos(camera)
        self.camera_sub = self.create_subscription(
            self.msg_type, camera_topic(camera), self._on_image, qos_profile(self.camera_qos)
        )
        self.topic = self.camera_sub.topic_name
        self.watchdog = FrameWatchdog(camera.no_frames_warn_s, time.monotonic())
        self.watch_timer = self.create_timer(1.0, self._check_frames)
        self.get_logger().info(f"SVLM {self.backend.name} on {self.topic} ({self.camera_qos.describe()})")

    def deactivate(self) -> None:
        self.destroy_subscription(self.camera_sub)
        self.destroy_timer(self.watch_timer)
        if self.worker is not None and not self.worker.stop():
            self.get_logger().warning("the SVLM step did not finish in time; freeing the model anyway")
        self.worker = None
        if self.backend is not None:
            self.backend.close()  # frees the weights and the GPU cache
        self.backend = None

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout_s=2.0)

    def cleanup(self) -> None:
        for pub in (self.answer_pub, self.detections_pub, self.focus_pub):
            self.destroy_lifecycle_publisher(pub)
        self.destroy_subscription(self.context_sub)

    def on_config_change(self, keys: set[str]) -> None:
        if touches(keys, "context."):
            self.store = carry_store(self.store, self.config)
        if self.worker is not None and self.backend is not None:
            self.worker.replace_answerer(build_edge_runtime(self.backend, self.config, self.store))

    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._seq += 1
        try:
            frame = frame_from_image_msg(msg, self._seq)
        except ImageDecodeError as err:
            self.monitor.frame_undecodable()
            self.get_logger().warning(f"skipped a frame on {self.topic}: {err}", throttle_duration_sec=5.0)
            return
        self.watchdog.on_frame(time.monotonic())
        self.worker.submit(frame)

    def _on_context(self, msg: LvlmContext) -> None:
        try:
            result = lvlm_result_from_msg(message_to_ordereddict(msg))
        except ValueError as err:
            self.get_logger().warning(f"ignored a malformed context: {err}")
            return
        self.store.add(result)

    def _check_frames(self) -> None:
        now = time.monotonic()
        if self.watchdog.due(now):
            infos = self.get_publishers_info_by_topic(self.topic)
            offered = [qos_spec(i.qos_profile) for i in infos]
            types = [i.topic_type for i in infos]
            silent = self.watchdog.silent_for(now)
            msg_type = f"sensor_msgs/msg/{self.msg_type.__name__}"
            self.get_logger().warning(
                no_frames_message(self.topic, msg_type, self.camera_qos, silent, offered, types)
            )

    def _publish(self, frame: Frame, step: Step) -> None:
        answer = step.answer
        self.answer_pub.publish(fill(EdgeAnswer(), edge_answer_to_msg(answer)))
        detections = regions_to_detection_array(answer_detections(answer), answer.stamp_ns, answer.frame_id)
        self.detections_pub.publish(fill(Detection2DArray(), detections))
        if self.focus_pub.get_subscription_count() > 0:
            image = annotate(frame.image, answer)
            self.focus_pub.publish(fill(Image(), image_msg_fields(image, answer.stamp_ns, answer.frame_id)))

    def diagnostic_report(self) -> DiagnosticReport:
        return self.monitor.report(
            time.monotonic(), no_frames_warn_s=self.config.camera.no_frames_warn_s, active=self.active
        )


def main(args: list[str] | None = None) -> int:
    """Run ``spotvlm_edge``."""
    return run_node(EdgeNode, args)
