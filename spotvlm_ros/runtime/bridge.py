"""The bridge between camera and LVLM server as a state machine (no ROS import): frames in, commands out.

For every frame, :meth:`BridgeLogic.on_frame` consults the keyframe policy and returns what the node
must do: :class:`SendGoal` (a ``QueryLVLM`` goal dict, JPEG inside; a frame group of several cameras
sends every camera, the others in ``more_images``) and :class:`CancelGoal` (a request
past ``keyframes.timeout_s``, or preempted: with every slot busy, a request older than
``keyframes.preempt_after_s`` is cancelled so the newest frame goes out; latest frame wins). The node
sends them asynchronously and reports back with :meth:`on_goal_response` (rejections free the slot) and
:meth:`on_result`, which returns the ``LvlmContext`` dict to publish (latched) or None. :meth:`tick`
expires requests and tracks the server: when it disappears, requests in flight are dropped at once
(their results can never come), and when it comes back the bridge sends again. A refused goal (a busy
server) makes the bridge back off for a jittered, growing while before it sends again, so several
bridges sharing one saturated server take turns instead of the same ones winning every freed slot;
a refusal streak logs one line when it starts and one when the server accepts again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..core.config import SpotVlmConfig
from ..core.keyframes import KeyframePolicy
from ..core.messages import lvlm_result_from_msg, lvlm_result_to_msg, query_goal
from ..core.types import NS_PER_S, Frame, s_to_ns
from .cloud import wants_regions
from .diagnostics import BridgeMonitor
from .image_codec import encode_jpeg

LOG = logging.getLogger("spotvlm.bridge")

# action_msgs/msg/GoalStatus values of finished goals.
GOAL_SUCCEEDED, GOAL_CANCELED, GOAL_ABORTED = 4, 5, 6
GOAL_STATUS_NAMES = {GOAL_SUCCEEDED: "succeeded", GOAL_CANCELED: "canceled", GOAL_ABORTED: "aborted"}

Log = Callable[[str], None]

# Back-off after a refused goal: the first wait and the longest, before a jitter of x0.5..x1.5.
REFUSAL_BACKOFF_S = (0.2, 2.0)


@dataclass(frozen=True)
class SendGoal:
    """Send ``goal`` (``QueryLVLM`` goal dict) as request ``request_id`` (``jpeg_bytes``: all cameras)."""

    request_id: str
    goal: dict[str, Any]
    stamp_ns: int
    jpeg_bytes: int


@dataclass(frozen=True)
class CancelGoal:
    """Cancel request ``request_id`` (``reason``: timeout, preempted or shutdown)."""

    request_id: str
    reason: str


Command = SendGoal | CancelGoal


@dataclass
class _Pending:
    stamp_ns: int
    sent_ns: int


class BridgeLogic:
    """Keyframe policy, request bookkeeping and server tracking of the bridge node.

    Not thread-safe by itself: the node calls every method from one mutually exclusive callback group.
    """

    def __init__(
        self,
        config: SpotVlmConfig,
        monitor: BridgeMonitor | None = None,
        *,
        prefix: str = "bridge",
        info: Log = LOG.info,
        warn: Log = LOG.warning,
    ) -> None:
        self.monitor = monitor or BridgeMonitor()
        self.prefix = prefix
        self._info, self._warn = info, warn
        self._pending: dict[str, _Pending] = {}
        self._count = 0
        self.server_up = False
        self._ever_up = False
        self._refusals = 0  # consecutive refused goals
        self._backoff_due = False  # a refusal came; the back-off starts at the next frame
        self._retry_after_ns = 0
        self._jitter = random.Random(prefix)  # deterministic, different per bridge
        self.reconfigure(config)

    def reconfigure(self, config: SpotVlmConfig) -> None:
        """Apply a new config; requests in flight keep their slots."""
        self.config = config
        self.task, self.prompt = config.task, config.prompt
        self.want_regions = wants_regions(config, config.task)
        self.jpeg_quality = config.keyframes.jpeg_quality
        self.max_side = config.keyframes.max_image_side
        self.timeout_ns = s_to_ns(config.keyframes.timeout_s)
        self.preempt_ns = s_to_ns(config.keyframes.preempt_after_s)
        self.policy = KeyframePolicy(config.keyframes)
        for request_id, pending in sorted(self._pending.items(), key=lambda kv: kv[1].sent_ns):
            self.policy.on_sent(request_id, pending.sent_ns)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def is_pending(self, request_id: str) -> bool:
        """True while ``request_id`` waits for its result (not done, expired, preempted or lost)."""
        return request_id in self._pending

    def on_frame(self, frame: Frame, now_ns: int) -> list[Command]:
        """Offer a frame; returns the commands to run now (cancels first, then at most one send)."""
        commands: list[Command] = list(self._expire(now_ns))
        if not self.server_up or self._backing_off(now_ns):
            return commands
        if self.policy.should_send(frame.stamp_ns, frame.image, now_ns):
            commands.append(self._send(frame, now_ns))
            return commands
        victim = self._preemptable(frame, now_ns)
        if victim is not None:
            self._forget(victim)
            self.monitor.count("preempted")
            commands.append(CancelGoal(victim, "preempted"))
            if self.policy.should_send(frame.stamp_ns, frame.image, now_ns):
                commands.append(self._send(frame, now_ns))
        return commands

    def _backing_off(self, now_ns: int) -> bool:
        """True while waiting after a refused goal (the wait starts at the first frame after it)."""
        if self._backoff_due:
            low, high = REFUSAL_BACKOFF_S
            wait_s = min(high, low * 2 ** (self._refusals - 1)) * self._jitter.uniform(0.5, 1.5)
            self._retry_after_ns = now_ns + s_to_ns(wait_s)
            self._backoff_due = False
        return now_ns < self._retry_after_ns

    def _preemptable(self, frame: Frame, now_ns: int) -> str | None:
        """The oldest request to cancel for ``frame``, when preemption is on and every slot is busy."""
        if self.preempt_ns <= 0 or len(self._pending) < self.policy.max_in_flight:
            return None
        request_id, pending = min(self._pending.items(), key=lambda kv: kv[1].sent_ns)
        if now_ns - pending.sent_ns < self.preempt_ns or frame.stamp_ns <= pending.stamp_ns:
            return None
        return request_id

    def _send(self, frame: Frame, now_ns: int) -> SendGoal:
        self._count += 1
        request_id = f"{self.prefix}-{self._count}"
        jpegs = [encode_jpeg(v.image, quality=self.jpeg_quality, max_side=self.max_side) for v in frame.views]
        goal = query_goal(
            jpegs[0],
            frame.stamp_ns,
            frame.frame_id,
            task=self.task,
            prompt=self.prompt,
            want_regions=self.want_regions,
            request_id=request_id,
            more_images=[
                (j, v.stamp_ns, v.frame_id) for j, v in zip(jpegs[1:], frame.cameras[1:], strict=True)
            ],
        )
        self.policy.on_sent(request_id, now_ns)
        self._pending[request_id] = _Pending(frame.stamp_ns, now_ns)
        self.monitor.sent(now_ns / NS_PER_S)
        return SendGoal(request_id, goal, frame.stamp_ns, sum(len(j) for j in jpegs))

    def _forget(self, request_id: str) -> bool:
        if self._pending.pop(request_id, None) is None:
            return False
        self.policy.on_done(request_id)
        return True

    def _expire(self, now_ns: int) -> list[CancelGoal]:
        late = [rid for rid, p in self._pending.items() if now_ns - p.sent_ns >= self.timeout_ns]
        for request_id in late:
            self._forget(request_id)
            self.monitor.count("timeouts")
            self._warn(
                f"LVLM request {request_id} timed out after {self.timeout_ns / NS_PER_S:g} s; cancelled"
            )
        return [CancelGoal(rid, "timeout") for rid in late]

    def on_goal_response(self, request_id: str, accepted: bool) -> None:
        """The server accepted or rejected the goal; a rejection frees the slot and starts a back-off."""
        if accepted:
            if self._refusals:
                self._info(f"LVLM server accepts requests again after {self._refusals} refusal(s)")
            self._refusals, self._retry_after_ns = 0, 0
            return
        if self._forget(request_id):
            self.monitor.count("rejected")
            self._refusals += 1
            self._backoff_due = True
            if self._refusals == 1:
                self._warn(
                    f"LVLM server rejected request {request_id} (see the server log for why); "
                    "backing off with jitter until it accepts again"
                )

    def on_send_failed(self, request_id: str, error: str) -> None:
        """Sending the goal failed (the server vanished meanwhile)."""
        if self._forget(request_id):
            self.monitor.count("lost")
            self._warn(f"LVLM request {request_id} could not be sent: {error}")

    def on_result(
        self, request_id: str, status: int, result: Mapping[str, Any] | None, now_ns: int
    ) -> dict[str, Any] | None:
        """A finished goal; returns the ``LvlmContext`` dict to publish, or None."""
        pending = self._pending.get(request_id)
        if pending is None:
            self.monitor.count("stale")  # timed out, preempted or lost before the result came
            return None
        self._forget(request_id)
        status_name = GOAL_STATUS_NAMES.get(status, f"status {status}")
        if status != GOAL_SUCCEEDED or result is None or not result.get("success", False):
            reason = (result or {}).get("error", "") or status_name
            self.monitor.count("failed")
            self._warn(f"LVLM request {request_id} {status_name}: {reason}")
            return None
        try:
            context = lvlm_result_from_msg(result["context"])
        except (KeyError, TypeError, ValueError) as err:
            self.monitor.count("failed")
            self._warn(f"LVLM request {request_id}: malformed result ({type(err).__name__}: {err})")
            return None
        if context.stamp_ns != pending.stamp_ns:
            self.monitor.count("failed")
            self._warn(
                f"LVLM request {request_id}: result stamp {context.stamp_ns} is not the keyframe's "
                f"{pending.stamp_ns}; dropped"
            )
            return None
        round_trip_s = (now_ns - pending.sent_ns) / NS_PER_S
        self.monitor.result(round_trip_s)
        return lvlm_result_to_msg(replace(context, request_id=request_id, round_trip_s=round_trip_s))

    def tick(self, now_ns: int, server_up: bool) -> list[CancelGoal]:
        """Expire late requests and follow the server's availability; returns cancels to send."""
        cancels = self._expire(now_ns)
        if server_up and not self.server_up:
            self._info("LVLM server reconnected" if self._ever_up else "LVLM server available")
            self._ever_up = True
        elif self.server_up and not server_up:
            lost = list(self._pending)
            for request_id in lost:
                self._forget(request_id)
            self.monitor.count("lost", len(lost))
            self._warn(
                f"LVLM server gone; {len(lost)} request(s) in flight dropped; "
                "the edge keeps answering with the context it has"
            )
        self.server_up = server_up
        return cancels

    def shutdown(self) -> list[CancelGoal]:
        """Cancel everything in flight (deactivation)."""
        ids = list(self._pending)
        for request_id in ids:
            self._forget(request_id)
        return [CancelGoal(rid, "shutdown") for rid in ids]
