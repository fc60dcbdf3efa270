"""``spotvlm_lvlm_server``: the ``QueryLVLM`` action server around an LVLM backend (``cloud.*`` parameters).

Goal checks, decoding, generation and result building are ``runtime.lvlm_service.LvlmService``; this
node maps them onto an rclpy ActionServer (reentrant group, multi-threaded executor): rejected goals
are logged with the reason, feedback streams the answer so far (one message per service callback),
a cancel stops the generation mid-answer, backend errors abort the goal with the reason. The backend
is loaded on activate and freed (with the GPU cache) on deactivate.
"""

from __future__ import annotations

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup

from spotvlm_msgs.action import QueryLVLM

from ..models.factory import create_backend
from ..runtime.diagnostics import DiagnosticReport, ServerMonitor
from ..runtime.lvlm_service import CANCELED, SUCCEEDED, LvlmService, goal_view
from .common import SpotVlmNode, fill, run_node


class LvlmServerNode(SpotVlmNode):
    """Thin adapter: ActionServer callbacks call :class:`LvlmService`."""

    def __init__(self) -> None:
        super().__init__("spotvlm_lvlm_server")
        self.monitor = ServerMonitor()
        self.service: LvlmService | None = None
        self.server: ActionServer | None = None

    def activate(self) -> None:
        backend = create_backend(self.config.cloud, role="cloud")
        self.service = LvlmService(backend, self.config, self.monitor)
        self.server = ActionServer(
            self,
            QueryLVLM,
            "query_lvlm",
            execute_callback=self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=ReentrantCallbackGroup(),
        )
        self.get_logger().info(f"serving {backend.name} on the query_lvlm action")

    def deactivate(self) -> None:
        self.server.destroy()
        self.server = None
        service, self.service = self.service, None
        service.close()  # queued goals end now, the one generating stops
        service.backend.close()  # frees the weights and the GPU cache

    def stop(self) -> None:
        if self.service is not None:
            self.service.close()  # queued and generating goals end now

    def on_config_change(self, keys: set[str]) -> None:
        if self.service is not None:
            self.service.config = self.config

    def _on_goal(self, goal: QueryLVLM.Goal) -> GoalResponse:
        service = self.service
        reason = service.admit(goal_view(goal)) if service is not None else "server inactive"
        if reason:
            self.get_logger().warning(f"rejected goal {goal.request_id!r}: {reason}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        if self.service is not None:
            self.service.cancel(goal_handle.request.request_id)
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle) -> QueryLVLM.Result:
        def feedback(text: str) -> None:
            goal_handle.publish_feedback(QueryLVLM.Feedback(partial_text=text))

        service = self.service
        if service is None:  # deactivated between acceptance and execution
            goal_handle.abort()
            return QueryLVLM.Result(success=False, error="server inactive")
        outcome = service.run(
            goal_view(goal_handle.request),
            cancelled=lambda: goal_handle.is_cancel_requested,
            feedback=feedback,
        )
        if outcome.status == SUCCEEDED:
            goal_handle.succeed()
        elif outcome.status == CANCELED:
            goal_handle.canceled()
        else:
            self.get_logger().warning(f"aborted goal {goal_handle.request.request_id!r}: {outcome.error}")
            goal_handle.abort()
        return fill(QueryLVLM.Result(), outcome.result)

    def diagnostic_report(self) -> DiagnosticReport:
        service = self.service
        model = service.backend.name if service is not None else ""
        return self.monitor.report(model=model, running=service.running if service else 0, active=self.active)


def main(args: list[str] | None = None) -> int:
    """Run ``spotvlm_lvlm_server``."""
    return run_node(LvlmServerNode, args)
