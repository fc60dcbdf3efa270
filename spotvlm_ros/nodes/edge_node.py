"""``spotvlm_edge``: the SVLM on every newest camera frame, with the LVLM context the bridge latches.

Subscribes the camera (``camera.*`` parameters: topic, raw/compressed, QoS; several cameras are
synchronized by stamp, see ``nodes.cameras``) and ``context`` (TRANSIENT_LOCAL, depth 1); the SVLM runs
in its own thread (``runtime.edge_worker``), so callbacks never wait for it. Publishes ``~/answer``
(EdgeAnswer), ``~/detections`` (header of the frame, each detection's header naming its camera) and
``~/focus_image`` (annotated, only computed while someone subscribes; with several cameras one
``~/focus_image/<camera name>`` per camera, named by ``core.camera_groups.camera_names``). Model
loaded on activate, freed on deactivate.
"""

from __future__ import annotations

import time

from rosidl_runtime_py import message_to_ordereddict
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from spotvlm_msgs.msg import EdgeAnswer, LvlmContext

from ..core.camera_groups import camera_names
from ..core.messages import edge_answer_to_msg, lvlm_result_from_msg, regions_to_detection_array
from ..core.types import Frame
from ..models.factory import create_backend
from ..runtime.diagnostics import DiagnosticReport, EdgeMonitor
from ..runtime.edge import Step
from ..runtime.edge_worker import EdgeWorker, build_edge_runtime, camera_wait_note, carry_store
from ..runtime.overlay import annotate, answer_detections, camera_answer
from ..runtime.qos import CONTEXT_QOS, OUTPUT_QOS, FrameWatchdog, no_frames_message
from ..runtime.ros_msgs import camera_topics, image_msg_fields
from ..runtime.ros_params import touches
from .cameras import CameraInput
from .common import SpotVlmNode, fill, qos_profile, qos_spec, run_node


class EdgeNode(SpotVlmNode):
    """Thin adapter: camera and context in, answers out; the SVLM step is ``runtime.edge.EdgeRuntime``."""

    def __init__(self) -> None:
        super().__init__("spotvlm_edge")
        self.monitor = EdgeMonitor()
        self.store = None
        self.backend = None
        self.worker: EdgeWorker | None = None
        self.camera_pubs: list = []  # the focus image publisher of each camera (several cameras)

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
        topics = camera_topics(camera)
        if len(topics) > 1:  # before the cameras: the first group may come at once
            out = qos_profile(OUTPUT_QOS)
            self.camera_pubs = [
                self.create_lifecycle_publisher(Image, f"~/focus_image/{name}", out)
                for name in camera_names(topics)
            ]
        self.cameras = CameraInput(self, camera, self.worker.submit, self._on_bad_frame, self._on_camera)
        self.watchdogs = [
            FrameWatchdog(camera.no_frames_warn_s, time.monotonic()) for _ in self.cameras.topics
        ]
        self.watch_timer = self.create_timer(1.0, self._check_frames)
        topics = ", ".join(self.cameras.topics)
        self.get_logger().info(f"SVLM {self.backend.name} on {topics} ({self.cameras.qos.describe()})")

    def deactivate(self) -> None:
        self.cameras.destroy()
        self.destroy_timer(self.watch_timer)
        if self.worker is not None and not self.worker.stop():
            self.get_logger().warning("the SVLM step did not finish in time; freeing the model anyway")
        self.worker = None
        for pub in self.camera_pubs:
            self.destroy_lifecycle_publisher(pub)
        self.camera_pubs = []
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

    def _on_camera(self, index: int) -> None:
        self.watchdogs[index].on_frame(time.monotonic())

    def _on_bad_frame(self, err: Exception) -> None:
        self.monitor.frame_undecodable()
        topics = ", ".join(self.cameras.topics)
        self.get_logger().warning(f"skipped a frame on {topics}: {err}", throttle_duration_sec=5.0)

    def _on_context(self, msg: LvlmContext) -> None:
        try:
            result = lvlm_result_from_msg(message_to_ordereddict(msg))
        except ValueError as err:
            self.get_logger().warning(f"ignored a malformed context: {err}")
            return
        self.store.add(result)

    def _check_frames(self) -> None:
        now = time.monotonic()
        for topic, watchdog in zip(self.cameras.topics, self.watchdogs, strict=True):
            if not watchdog.due(now):
                continue
            infos = self.get_publishers_info_by_topic(topic)
            offered = [qos_spec(i.qos_profile) for i in infos]
            types = [i.topic_type for i in infos]
            silent = watchdog.silent_for(now)
            message = no_frames_message(
                topic, self.cameras.msg_type_name, self.cameras.qos, silent, offered, types
            )
            self.get_logger().warning(message + camera_wait_note(len(self.cameras.topics)))

    def _publish(self, frame: Frame, step: Step) -> None:
        answer = step.answer
        self.answer_pub.publish(fill(EdgeAnswer(), edge_answer_to_msg(answer)))
        detections = regions_to_detection_array(answer_detections(answer), answer.stamp_ns, answer.frame_id)
        self.detections_pub.publish(fill(Detection2DArray(), detections))
        if not frame.cameras:
            if self.focus_pub.get_subscription_count() > 0:
                image = annotate(frame.image, answer)
                self.focus_pub.publish(
                    fill(Image(), image_msg_fields(image, answer.stamp_ns, answer.frame_id))
                )
            return
        for view, pub in zip(frame.cameras, self.camera_pubs, strict=False):
            if pub.get_subscription_count() > 0:
                image = annotate(view.image, camera_answer(answer, view.frame_id, frame.frame_id))
                pub.publish(fill(Image(), image_msg_fields(image, answer.stamp_ns, view.frame_id)))

    def diagnostic_report(self) -> DiagnosticReport:
        return self.monitor.report(
            time.monotonic(), no_frames_warn_s=self.config.camera.no_frames_warn_s, active=self.active
        )


def main(args: list[str] | None = None) -> int:
    """Run ``spotvlm_edge``."""
    return run_node(EdgeNode, args)
