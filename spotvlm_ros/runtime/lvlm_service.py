"""The LVLM server's logic without ROS: admit ``QueryLVLM`` goals, run the backend, build results.

:meth:`LvlmService.admit` decides on a goal before any decoding: known task, a prompt, image bytes
within ``server.max_image_bytes``, a JPEG/PNG header whose pixel count is within
``server.max_image_pixels``, fewer than ``server.max_queued_goals`` goals running. It returns "" or the
rejection reason (the node logs it and rejects). :meth:`LvlmService.run` decodes the image, runs the
backend (a goal of several cameras, ``more_images``, shows the LVLM every camera, as images or a mosaic
per ``focus.multi_camera``, and its regions come back in their camera) and returns an
:class:`Outcome`: ``succeeded`` with the result dict (``QueryLVLM`` result layout, regions in pixels of
the image the server got), ``canceled``, or ``aborted`` with the reason
(undecodable image, backend error). While the backend generates, the text so far goes to ``feedback``
(at most every ``FEEDBACK_INTERVAL_S``; the full answer last), and a cancel (or :meth:`LvlmService.close`)
stops it mid-generation: a local model between two tokens, an HTTP backend by closing the request.
Local models generate one goal at a time: the others wait in the service, where a cancel (or
:meth:`LvlmService.close`) ends them at once.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.config import MAX_CAMERAS, SpotVlmConfig
from ..core.focus.cameras import camera_set_input
from ..core.messages import header_stamp_ns, lvlm_result_to_msg
from ..core.types import TASKS, LvlmResult
from ..models.base import BackendError, GenerationCancelled, VlmBackend
from .diagnostics import ServerMonitor
from .image_codec import ImageDecodeError, compressed_image_size, decode_compressed

LOG = logging.getLogger("spotvlm.lvlm_service")

SUCCEEDED, CANCELED, ABORTED = "succeeded", "canceled", "aborted"
LOCAL_BACKENDS = ("tiny", "hf")
"""Backends that generate one request at a time in this process: goals queue in the service."""
QUEUE_POLL_S = 0.05
FEEDBACK_INTERVAL_S = 0.1
"""Partial answers go to ``feedback`` at most this often."""


# Largest generation a goal may ask for (the config schema's bound of ``cloud.max_new_tokens``).
MAX_NEW_TOKENS = 4096


@dataclass(frozen=True)
class Outcome:
    """How a goal ended: status, the result dict and the seconds spent."""

    status: str
    result: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def error(self) -> str:
        return str(self.result.get("error", ""))


def goal_view(goal: Any) -> dict[str, Any]:
    """A ``QueryLVLM`` goal message (rclpy or any object with its fields) as the dict ``admit``/``run`` read.

    The image bytes are not copied: ``data`` is the message's own buffer.
    """
    return {
        "image": _image_view(goal.image),
        "more_images": [_image_view(image) for image in getattr(goal, "more_images", ())],
        "task": goal.task,
        "prompt": goal.prompt,
        "want_regions": bool(goal.want_regions),
        "max_new_tokens": int(goal.max_new_tokens),
        "request_id": goal.request_id,
    }


def _image_view(image: Any) -> dict[str, Any]:
    stamp = image.header.stamp
    return {
        "header": {"stamp": {"sec": stamp.sec, "nanosec": stamp.nanosec}, "frame_id": image.header.frame_id},
        "format": image.format,
        "data": image.data,
    }


def failed_result(error: str) -> dict[str, Any]:
    """A ``QueryLVLM`` result dict for a goal that produced no answer."""
    return {"success": False, "error": error}


class LvlmService:
    """One loaded LVLM backend serving goals; ``admit``/``run``/``cancel`` are thread-safe."""

    def __init__(self, backend: VlmBackend, config: SpotVlmConfig, monitor: ServerMonitor | None = None):
        self.backend = backend
        self.config = config
        self.monitor = monitor or ServerMonitor()
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._cancel = getattr(backend, "cancel", None)
        concurrent = 1 if config.cloud.backend in LOCAL_BACKENDS else config.server.max_queued_goals
        self._slots = threading.Semaphore(concurrent)
        self._closing = threading.Event()
        parameters = inspect.signature(backend.generate).parameters
        self._takes_request_id = "request_id" in parameters
        self._streams = "on_text" in parameters and "should_stop" in parameters

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def check(self, goal: Mapping[str, Any]) -> str:
        """Why ``goal`` cannot be served ("" when it can); no decoding, no state change."""
        task = str(goal.get("task", ""))
        if task not in TASKS:
            return f"unknown task {task!r}; expected one of {', '.join(TASKS)}"
        if not str(goal.get("prompt", "")).strip():
            return "empty prompt"
        if not str(goal.get("request_id", "")):
            return "empty request_id"
        max_new = goal.get("max_new_tokens", 0)
        if not isinstance(max_new, int) or not 0 <= max_new <= MAX_NEW_TOKENS:
            return f"max_new_tokens={max_new!r} outside 0..{MAX_NEW_TOKENS} (0 = cloud.max_new_tokens)"
        images = [goal.get("image") or {}, *(goal.get("more_images") or ())]
        if len(images) > MAX_CAMERAS:
            return f"{len(images)} images; at most {MAX_CAMERAS} cameras per goal"
        names = [str((image.get("header") or {}).get("frame_id", "")) for image in images]
        if len(images) > 1 and len(set(names)) != len(names):
            return f"the images of several cameras need distinct header.frame_id values, got {names}"
        for index, image in enumerate(images):
            reason = self._check_image(image)
            if reason:
                return reason if len(images) == 1 else f"image {index} ({names[index]!r}): {reason}"
        return ""

    def _check_image(self, image: Mapping[str, Any]) -> str:
        limits = self.config.server
        data = image.get("data", b"")
        if len(data) == 0:
            return "no image data"
        if len(data) > limits.max_image_bytes:
            return f"image of {len(data)} bytes exceeds server.max_image_bytes={limits.max_image_bytes}"
        size = compressed_image_size(data)
        if size is None:
            return f"image is not a JPEG or PNG stream (format {image.get('format', '')!r})"
        width, height = size
        if width <= 0 or height <= 0 or width * height > limits.max_image_pixels:
            return (
                f"image of {width}x{height} pixels exceeds server.max_image_pixels={limits.max_image_pixels}"
            )
        return ""

    def admit(self, goal: Mapping[str, Any]) -> str:
        """Check ``goal`` and reserve a slot for it; returns the rejection reason or ""."""
        reason = self.check(goal)
        if not reason:
            with self._lock:
                key = str(goal["request_id"])
                if len(self._running) >= self.config.server.max_queued_goals:
                    reason = f"busy: {len(self._running)} goal(s) running (server.max_queued_goals)"
                elif key in self._running:
                    reason = f"request id {key!r} is already running"
                else:
                    self._running.add(key)
        self.monitor.count("rejected" if reason else "accepted")
        return reason

    def release(self, goal: Mapping[str, Any]) -> None:
        """Free the slot :meth:`admit` reserved (``run`` does; call it when ``run`` is never called)."""
        with self._lock:
            self._running.discard(str(goal.get("request_id", "")))

    def cancel(self, request_id: str) -> None:
        """Ask the backend to abort ``request_id`` if it can (HTTP); others stop after generating."""
        if self._cancel is not None and request_id:
            self._cancel(request_id)

    def close(self) -> None:
        """Abort goals still queued or generating; call before closing the backend."""
        self._closing.set()

    def messages(self, prompt: str, images: int = 1, note: str = "") -> list[dict[str, Any]]:
        """System prompt, then the image(s) and the goal's prompt (the backend adds the grounding request).

        ``note`` (which image is which camera) goes before the prompt.
        """
        text = f"{note} {prompt}" if note else prompt
        parts = [{"type": "image"} for _ in range(images)]
        return [
            {"role": "system", "content": [{"type": "text", "text": self.config.system_prompt}]},
            {"role": "user", "content": [*parts, {"type": "text", "text": text}]},
        ]

    def run(
        self,
        goal: Mapping[str, Any],
        cancelled: Callable[[], bool] = lambda: False,
        feedback: Callable[[str], None] = lambda text: None,
    ) -> Outcome:
        """Serve an admitted goal; never raises (errors become an aborted outcome with the reason)."""
        start = time.perf_counter()
        try:
            outcome = self._run(goal, cancelled, feedback)
        except Exception as err:  # a broken backend must not take the server down
            LOG.exception("goal %s failed", goal.get("request_id", ""))
            outcome = Outcome(ABORTED, failed_result(f"internal error: {type(err).__name__}: {err}"))
        finally:
            self.release(goal)
        seconds = time.perf_counter() - start
        self.monitor.finished(outcome.status, seconds, outcome.error)
        return Outcome(outcome.status, outcome.result, seconds)

    def _run(
        self, goal: Mapping[str, Any], cancelled: Callable[[], bool], feedback: Callable[[str], None]
    ) -> Outcome:
        if cancelled():
            return Outcome(CANCELED, failed_result("canceled before start"))
        image_msg = goal["image"]
        image_msgs = [image_msg, *(goal.get("more_images") or ())]
        try:
            decoded = [decode_compressed(bytes(m["data"]), str(m.get("format", ""))) for m in image_msgs]
        except ImageDecodeError as err:
            return Outcome(ABORTED, failed_result(f"undecodable image: {err}"))
        image = decoded[0]
        cameras = None
        if len(decoded) > 1:
            names = [str(m["header"].get("frame_id", "")) for m in image_msgs]
            want = bool(goal.get("want_regions", False))
            mode, side = self.config.focus.multi_camera, self.config.cloud.image_max_side
            cameras = camera_set_input(decoded, names, mode, side, want)
        request_id = str(goal.get("request_id", ""))
        max_new_tokens = int(goal.get("max_new_tokens", 0)) or self.config.cloud.max_new_tokens
        extra: dict[str, Any] = {"request_id": request_id} if self._takes_request_id and request_id else {}
        partial = ThrottledFeedback(feedback, FEEDBACK_INTERVAL_S)
        if self._streams:
            extra["on_text"] = partial
            extra["should_stop"] = lambda: cancelled() or self._closing.is_set()
        while not self._slots.acquire(timeout=QUEUE_POLL_S):  # a goal cancelled while queued ends at once
            if self._closing.is_set():
                return Outcome(ABORTED, failed_result("server shutting down"))
            if cancelled():
                return Outcome(CANCELED, failed_result("canceled while queued"))
        try:
            if cancelled():
                return Outcome(CANCELED, failed_result("canceled while queued"))
            generation = self.backend.generate(
                self.messages(str(goal["prompt"]), *((len(cameras.images), cameras.note) if cameras else ())),
                cameras.images if cameras else [image],
                max_new_tokens=max_new_tokens,
                want_regions=bool(goal.get("want_regions", False)),
                **extra,
            )
        except GenerationCancelled:
            if self._closing.is_set() and not cancelled():
                return Outcome(ABORTED, failed_result("server shutting down"))
            return Outcome(CANCELED, failed_result("canceled during generation"))
        except BackendError as err:
            if cancelled():
                return Outcome(CANCELED, failed_result("canceled"))
            return Outcome(ABORTED, failed_result(f"backend error: {err}"))
        finally:
            self._slots.release()
        if cancelled():
            return Outcome(CANCELED, failed_result("canceled"))
        if generation.text != partial.last_sent:
            feedback(generation.text)
        header = image_msg["header"]
        result = LvlmResult(
            request_id=request_id,
            stamp_ns=header_stamp_ns(header),
            task=str(goal["task"]),
            prompt=str(goal["prompt"]),
            text=generation.text,
            regions=cameras.to_cameras(generation.regions) if cameras else generation.regions,
            image_size=(int(image.shape[1]), int(image.shape[0])),
            model=self.backend.name,
            round_trip_s=generation.seconds,
            frame_id=str(header.get("frame_id", "")),
            camera_sizes=cameras.sizes if cameras else (),
        )
        return Outcome(SUCCEEDED, {"context": lvlm_result_to_msg(result), "success": True, "error": ""})


class ThrottledFeedback:
    """Forwards partial answers to ``feedback`` at most every ``interval_s`` (the first one at once)."""

    def __init__(self, feedback: Callable[[str], None], interval_s: float) -> None:
        self._feedback = feedback
        self._interval_s = interval_s
        self._sent_at = -float("inf")
        self.last_sent: str | None = None

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if now - self._sent_at >= self._interval_s:
            self._sent_at = now
            self.last_sent = text
            self._feedback(text)
