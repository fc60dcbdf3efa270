"""Discrete-event replay on the virtual clock: deterministic, and as fast as the models allow.

Frames arrive at their bag stamps. The answerer (edge runtime or a baseline) is busy for its step's
``busy_s`` (``edge.step_time_s`` when set, else the measured compute time); a frame that arrives while
it is busy waits in a one-frame slot, and a newer arrival replaces it (latest wins: the replaced frame
is reported as skipped, never queued). LVLM answers land in the context store at their delivery events
(``send time + latency model delay``). Events at the same time run in the order they were scheduled,
and frames arriving at a time run after the events due then; nothing reads the wall clock, so two runs
with the same seed and a fixed step time are bit-identical.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.types import Frame
from .bag_reader import BagFrame
from .clock import SimulatedClock
from .cloud import CloudClient
from .edge import Answerer, Step
from .events import Answered, RunSink


class Simulator:
    """Drives one answerer (and optionally a cloud client) over frames on a :class:`SimulatedClock`."""

    def __init__(
        self, answerer: Answerer, clock: SimulatedClock, sink: RunSink, cloud: CloudClient | None = None
    ):
        self.answerer = answerer
        self.clock = clock
        self.sink = sink
        self.cloud = cloud
        self._busy = False
        self._pending: Frame | None = None
        self._skipped_since_answer = 0

    def run(self, items: Iterable[BagFrame | Frame], drain: bool = True) -> None:
        """Replay ``items`` in order; with ``drain``, finish the answer in progress and the slot."""
        for item in items:
            if not isinstance(item, BagFrame):
                item = BagFrame(item.stamp_ns, item)
            if item.frame is not None:
                self.clock.advance_to(item.stamp_ns)  # events due before the frame are reported first
            self.sink.on_input(item)
            if item.frame is not None:
                self._arrive(item.frame)
        if drain:
            self.finish()

    @property
    def waiting(self) -> int:
        """Frames waiting for the answerer: 0 or 1 (latest wins)."""
        return int(self._pending is not None)

    def offer(self, frame: Frame) -> None:
        """A frame arrives (at its stamp, or now when its stamp is in the past)."""
        self.clock.advance_to(frame.stamp_ns)
        self._arrive(frame)

    def _arrive(self, frame: Frame) -> None:
        if self.cloud is not None and self.cloud.on_frame(frame):
            self.clock.advance_to(self.clock.now_ns())  # a zero-delay answer is there for this very frame
        self.answerer.observe(frame)
        if not self._busy:
            self._start(frame)
            return
        if self._pending is not None:
            self._skip(self._pending)
        self._pending = frame

    def _skip(self, frame: Frame) -> None:
        self._skipped_since_answer += 1
        self.sink.on_skip(frame)

    def _start(self, frame: Frame) -> None:
        start = self.clock.now_ns()
        step = self.answerer.answer(frame, self._skipped_since_answer)
        self._skipped_since_answer = 0
        self._busy = True
        if step.busy_s <= 0:
            self._finish(frame, step, start)
            return
        self.clock.call_later(step.busy_s, lambda: self._finish(frame, step, start))

    def _finish(self, frame: Frame, step: Step, start: int) -> None:
        self.sink.on_answer(Answered(frame, step, start, self.clock.now_ns()))
        self._busy = False
        if self._pending is not None:
            frame, self._pending = self._pending, None
            self._start(frame)

    def finish(self) -> None:
        """Let the answer in progress (and the waiting frame) complete, then stop the cloud client."""
        while self._busy and (due := self.clock.next_event_ns()) is not None:
            self.clock.advance_to(due)
        if self.cloud is not None:
            self.cloud.close()
