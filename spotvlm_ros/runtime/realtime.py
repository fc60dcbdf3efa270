"""Wall-clock replay: the same answerer and cloud client as the simulator, driven by threads.

The calling thread plays the frames at their stamps (scaled by ``rate``) on a :class:`WallClock`: each
frame goes to the cloud client (which submits keyframes to its worker threads and returns at once) and
into a one-frame slot. An edge thread takes the newest frame from the slot whenever it is free; a frame
replaced in the slot before the edge took it is skipped (latest wins). Model and network latencies are
the real ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from ..core.types import Frame
from .bag_reader import BagFrame
from .clock import WallClock
from .cloud import CloudClient
from .edge import Answerer
from .events import Answered, RunSink

LOG = logging.getLogger("spotvlm.realtime")


class LatestFrameSlot:
    """A depth-1 mailbox: ``put`` replaces (and returns) the frame not yet taken."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, frame: Frame) -> Frame | None:
        with self._cond:
            replaced, self._frame = self._frame, frame
            self._cond.notify()
            return replaced

    def take(self) -> Frame | None:
        """The newest frame, waiting for one; None once closed and empty."""
        with self._cond:
            while self._frame is None and not self._closed:
                self._cond.wait()
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """Frames put and not taken yet: 0 or 1."""
        with self._cond:
            return int(self._frame is not None)


class RealtimeRunner:
    """Plays frames on the wall clock; the edge runs in its own thread and never waits on the cloud."""

    def __init__(self, answerer: Answerer, clock: WallClock, sink: RunSink, cloud: CloudClient | None = None):
        self.answerer = answerer
        self.clock = clock
        self.sink = sink
        self.cloud = cloud
        self._slot = LatestFrameSlot()
        self._stop = threading.Event()
        self._skipped_since_answer = 0
        self._count_lock = threading.Lock()
        self._edge_error: BaseException | None = None

    def run(self, items: Iterable[BagFrame | Frame]) -> None:
        """Play ``items`` at their stamps, then let the edge finish the last frame."""
        edge = threading.Thread(target=self._edge_loop, name="spotvlm-edge", daemon=True)
        edge.start()
        try:
            for item in items:
                if self._stop.is_set():
                    break
                frame = self._admit(item)
                if frame is None:
                    continue
                if not self.clock.started:
                    self.clock.start(frame.stamp_ns)
                if not self.clock.sleep_until(frame.stamp_ns, self._stop):
                    break
                if self.cloud is not None:
                    self.cloud.on_frame(frame)
                self.answerer.observe(frame)
                replaced = self._slot.put(frame)
                if replaced is not None:
                    with self._count_lock:
                        self._skipped_since_answer += 1
                    self.sink.on_skip(replaced)
        finally:
            self._slot.close()
            edge.join()
            if self.cloud is not None:
                self.cloud.close()
            self.clock.close()
        if self._edge_error is not None:
            raise RuntimeError(f"the edge thread failed: {self._edge_error}") from self._edge_error

    def stop(self) -> None:
        """Stop playing frames (from another thread, e.g. on Ctrl-C)."""
        self._stop.set()

    @property
    def waiting(self) -> int:
        """Frames waiting for the edge: 0 or 1 (latest wins)."""
        return self._slot.waiting

    def _admit(self, item: BagFrame | Frame) -> Frame | None:
        if isinstance(item, BagFrame):
            self.sink.on_input(item)
            return item.frame
        self.sink.on_input(BagFrame(item.stamp_ns, item))
        return item

    def _edge_loop(self) -> None:
        while (frame := self._slot.take()) is not None:
            start = self.clock.now_ns()
            with self._count_lock:
                skipped, self._skipped_since_answer = self._skipped_since_answer, 0
            try:
                step = self.answerer.answer(frame, skipped)
            except Exception as err:  # stop the run cleanly and report it, rather than hang the player
                LOG.exception("edge step failed")
                self._edge_error = err
                self._stop.set()
                return
            self.sink.on_answer(Answered(frame, step, start, self.clock.now_ns()))
