"""``spotvlm_bridge``: keyframes from the camera to the ``QueryLVLM`` action, results latched on ``context``.

All decisions (which frame, when to cancel, what to publish, server up/down) are
``runtime.bridge.BridgeLogic``; this node only runs its commands with an ActionClient, asynchronously:
nothing here waits for the server. Several cameras are synchronized by stamp (``nodes.cameras``) and
each group goes out as one keyframe. Results go out on ``context`` (TRANSIENT_LOCAL, depth 1).
"""

from __future__ import annotations

import threading
from functools import partial

from rclpy.action import ActionClient
from rosidl_runtime_py import message_to_ordereddict

from spotvlm_msgs.action import QueryLVLM
from spotvlm_msgs.msg import LvlmContext

from ..core.types import Frame
from ..runtime.bridge import BridgeLogic, CancelGoal, Command
from ..runtime.diagnostics import BridgeMonitor, DiagnosticReport
from ..runtime.qos import CONTEXT_QOS
from .cameras import CameraInput
from .common import SpotVlmNode, fill, qos_profile, run_node

TICK_S = 0.2


class BridgeNode(SpotVlmNode):
    """Thin adapter around :class:`BridgeLogic`; one lock orders camera, timer and action callbacks."""

    def __init__(self) -> None:
        super().__init__("spotvlm_bridge")
        self.monitor = BridgeMonitor()
        self._lock = threading.Lock()
        self._handles: dict[str, object] = {}
        self.logic: BridgeLogic | None = None

    def configure(self) -> None:
        log = self.get_logger()
        self.logic = BridgeLogic(
            self.config, self.monitor, prefix=self.get_name(), info=log.info, warn=log.warning
        )
        self.client = ActionClient(self, QueryLVLM, "query_lvlm")
        self.context_pub = self.create_lifecycle_publisher(LvlmContext, "context", qos_profile(CONTEXT_QOS))

    def activate(self) -> None:
        self.cameras = CameraInput(self, self.config.camera, self._on_frame, self._on_bad_frame)
        self.timer = self.create_timer(TICK_S, self._tick)

    def deactivate(self) -> None:
        self.cameras.destroy()
        self.destroy_timer(self.timer)
        with self._lock:
            self._run(self.logic.shutdown())

    def cleanup(self) -> None:
        self.client.destroy()
        self.destroy_lifecycle_publisher(self.context_pub)

    def on_config_change(self, keys: set[str]) -> None:
        if self.logic is not None:
            with self._lock:
                self.logic.reconfigure(self.config)

    def _on_bad_frame(self, err: Exception) -> None:
        self.get_logger().warning(f"skipped a frame: {err}", throttle_duration_sec=5.0)

    def _on_frame(self, frame: Frame) -> None:
        with self._lock:
            self._run(self.logic.on_frame(frame, self.now_ns()))

    def _tick(self) -> None:
        with self._lock:
            self._run(self.logic.tick(self.now_ns(), self.client.server_is_ready()))
            if not self.logic.server_up:
                self._handles.clear()  # goals of a vanished server never finish

    def _run(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, CancelGoal):
                handle = self._handles.pop(command.request_id, None)
                if handle is not None:
                    handle.cancel_goal_async()
                continue
            goal = fill(QueryLVLM.Goal(), command.goal)
            future = self.client.send_goal_async(goal)
            future.add_done_callback(partial(self._on_goal_response, command.request_id))

    def _on_goal_response(self, request_id: str, future) -> None:
        with self._lock:
            try:
                handle = future.result()
            except Exception as err:  # the server vanished between discovery and the request
                self.logic.on_send_failed(request_id, str(err))
                return
            self.logic.on_goal_response(request_id, handle.accepted)
            if not handle.accepted:
                return
            if not self.logic.is_pending(request_id):  # cancelled or timed out meanwhile
                handle.cancel_goal_async()
                return
            self._handles[request_id] = handle
        handle.get_result_async().add_done_callback(partial(self._on_result, request_id))

    def _on_result(self, request_id: str, future) -> None:
        response = future.result()
        result = message_to_ordereddict(response.result) if response is not None else None
        with self._lock:
            self._handles.pop(request_id, None)
            context = self.logic.on_result(
                request_id, response.status if response else 0, result, self.now_ns()
            )
        if context is not None:
            self.context_pub.publish(fill(LvlmContext(), context))

    def diagnostic_report(self) -> DiagnosticReport:
        logic = self.logic
        in_flight = logic.in_flight if logic else 0
        server_up = logic.server_up if logic else False
        return self.monitor.report(
            self.now_ns() / 1e9, in_flight=in_flight, server_up=server_up, active=self.active
        )


def main(args: list[str] | None = None) -> int:
    """Run ``spotvlm_bridge``."""
    return run_node(BridgeNode, args)
