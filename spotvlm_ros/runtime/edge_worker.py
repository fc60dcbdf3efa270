"""The edge node's SVLM thread, without ROS: camera frames in (never blocking), answers out.

:meth:`EdgeWorker.submit` is what the camera callback calls: it hands the frame to the answerer's
keyframe buffer and puts it into a one-frame slot, replacing (and counting as dropped) a frame the SVLM
has not taken yet, so the SVLM always works on the newest frame. The worker thread takes frames from the
slot, answers them and passes each :class:`~spotvlm_ros.runtime.edge.Step` to ``on_step`` (the node
publishes it). :func:`build_edge_runtime` and :func:`carry_store` rebuild the runtime on a parameter
change while keeping the LVLM context received so far.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..core.config import SpotVlmConfig
from ..core.context_store import ContextStore
from ..core.types import Frame
from ..models.base import VlmBackend
from .diagnostics import EdgeMonitor
from .edge import Answerer, EdgeRuntime, Step
from .realtime import LatestFrameSlot

LOG = logging.getLogger("spotvlm.edge_worker")

StepCallback = Callable[[Frame, Step], None]


def build_edge_runtime(backend: VlmBackend, config: SpotVlmConfig, store: ContextStore) -> EdgeRuntime:
    """The SVLM step for ``config`` on a loaded backend (measured compute time)."""
    return EdgeRuntime(backend, config, store, step_time_s=0.0)


def carry_store(old: ContextStore | None, config: SpotVlmConfig) -> ContextStore:
    """A store for ``config.context`` holding the results of ``old`` (oldest first, so order holds)."""
    store = ContextStore.from_config(config.context)
    if old is not None:
        for task in old.tasks():
            for result in old.history(task) or filter(None, [old.newest(task)]):
                store.add(result)
    return store


def camera_wait_note(cameras: int) -> str:
    """What a silent camera means when several are synchronized ("" for one camera)."""
    if cameras <= 1:
        return ""
    return (
        f"; the {cameras} cameras are answered as synchronized groups, so no group is answered "
        "until this camera publishes again (check camera.topics)"
    )


class EdgeWorker:
    """Answers the newest frame in a thread of its own; ``submit`` returns at once."""

    def __init__(
        self,
        answerer: Answerer,
        on_step: StepCallback,
        monitor: EdgeMonitor | None = None,
        now_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.monitor = monitor or EdgeMonitor()
        self._answerer = answerer
        self._on_step = on_step
        self._now_s = now_s
        self._slot = LatestFrameSlot()
        self._lock = threading.Lock()
        self._skipped = 0
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    @property
    def answerer(self) -> Answerer:
        with self._lock:
            return self._answerer

    def replace_answerer(self, answerer: Answerer) -> None:
        """Use ``answerer`` from the next frame on (after a parameter change)."""
        with self._lock:
            self._answerer = answerer

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the edge worker is already running")
        self._thread = threading.Thread(target=self._loop, name="spotvlm-svlm", daemon=True)
        self._thread.start()

    def submit(self, frame: Frame) -> None:
        """Offer a camera frame (never blocks); a frame still waiting is replaced and counted as dropped."""
        self.monitor.frame(self._now_s())
        self.answerer.observe(frame)
        if self._slot.put(frame) is not None:
            with self._lock:
                self._skipped += 1
            self.monitor.frame_dropped()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Let the current step finish and stop; False when the thread did not end within ``timeout_s``."""
        self._slot.close()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while (frame := self._slot.take()) is not None:
            with self._lock:
                skipped, self._skipped = self._skipped, 0
                answerer = self._answerer
            try:
                step = answerer.answer(frame, skipped)
                answer = step.answer
                self.monitor.answered(
                    self._now_s(), step.busy_s, answer.context_age_s, answer.context_status, step.error
                )
                self._on_step(frame, step)
            except Exception as err:  # keep answering the next frames; the failure is reported
                LOG.exception("SVLM step on frame %d failed", frame.stamp_ns)
                self.failure = err
                self.monitor.answered(self._now_s(), 0.0, -1.0, "none", f"{type(err).__name__}: {err}")
