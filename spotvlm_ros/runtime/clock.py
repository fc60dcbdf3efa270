"""The two clocks the runtime runs on: a discrete-event virtual clock and the wall clock.

Both tell *stream time*: integer nanoseconds in the time base of the camera stamps, so context ages
(``frame stamp - keyframe stamp``) and keyframe timeouts mean the same under either clock.

- :class:`SimulatedClock` holds a queue of callbacks keyed by ``(time, sequence number)``; time only moves
  when the driver runs the queue, so a run is deterministic and takes no wall time.
- :class:`WallClock` maps ``time.monotonic()`` onto stream time from an origin stamp and runs callbacks on
  one timer thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..core.types import NS_PER_S, s_to_ns

Callback = Callable[[], None]
_LOG = logging.getLogger(__name__)


class Timer:
    """A scheduled callback; :meth:`cancel` stops it from running (no effect once it ran)."""

    __slots__ = ("when_ns", "callback", "cancelled")

    def __init__(self, when_ns: int, callback: Callback) -> None:
        self.when_ns = when_ns
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock(Protocol):
    """Stream time plus callbacks at stream times."""

    def now_ns(self) -> int:
        """Current stream time in nanoseconds."""
        ...

    def call_at(self, when_ns: int, callback: Callback) -> Timer:
        """Run ``callback`` at stream time ``when_ns`` (at once when it is already past)."""
        ...


class _TimerQueue:
    """Timers ordered by (time, insertion sequence): equal times run in the order they were scheduled."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()

    def push(self, timer: Timer) -> None:
        heapq.heappush(self._heap, (timer.when_ns, next(self._seq), timer))

    def peek_ns(self) -> int | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop(self) -> Timer:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)


class SimulatedClock:
    """Discrete-event virtual clock: callbacks run in ``(time, seq)`` order when the driver advances."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)
        self._queue = _TimerQueue()

    def now_ns(self) -> int:
        return self._now

    def call_at(self, when_ns: int, callback: Callback) -> Timer:
        timer = Timer(max(int(when_ns), self._now), callback)
        self._queue.push(timer)
        return timer

    def call_later(self, delay_s: float, callback: Callback) -> Timer:
        """Run ``callback`` ``delay_s`` seconds of stream time from now."""
        return self.call_at(self._now + s_to_ns(max(0.0, delay_s)), callback)

    @property
    def pending(self) -> int:
        """Callbacks scheduled and not yet run or cancelled."""
        return len(self._queue)

    def next_event_ns(self) -> int | None:
        """Stream time of the next callback, if any."""
        return self._queue.peek_ns()

    def advance_to(self, when_ns: int) -> None:
        """Run every callback due at or before ``when_ns`` (callbacks may schedule more), then set now."""
        while (due := self._queue.peek_ns()) is not None and due <= when_ns:
            timer = self._queue.pop()
            self._now = max(self._now, timer.when_ns)
            timer.callback()
        self._now = max(self._now, int(when_ns))

    def run_until_idle(self, limit_ns: int | None = None) -> None:
        """Run callbacks until none is left (or the next is after ``limit_ns``)."""
        while (due := self._queue.peek_ns()) is not None and (limit_ns is None or due <= limit_ns):
            self.advance_to(due)


class WallClock:
    """Stream time on the wall clock: ``origin_ns + (monotonic() - t0) * rate``; callbacks on one thread.

    :meth:`start` pins the origin (normally the first frame's stamp) to "now"; before it, stream time is
    the origin itself. :meth:`close` stops the timer thread; pending callbacks are dropped.
    """

    def __init__(self, rate: float = 1.0) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self._origin_ns = 0
        self._t0: float | None = None
        self._queue = _TimerQueue()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self, origin_ns: int) -> None:
        """Pin stream time ``origin_ns`` to the current wall time."""
        with self._cond:
            self._origin_ns = int(origin_ns)
            self._t0 = time.monotonic()
            self._cond.notify_all()

    @property
    def started(self) -> bool:
        return self._t0 is not None

    def now_ns(self) -> int:
        if self._t0 is None:
            return self._origin_ns
        return self._origin_ns + int((time.monotonic() - self._t0) * self.rate * NS_PER_S)

    def seconds_until(self, when_ns: int) -> float:
        """Wall seconds until stream time ``when_ns`` (negative when past)."""
        return (when_ns - self.now_ns()) / NS_PER_S / self.rate

    def sleep_until(self, when_ns: int, stop: threading.Event | None = None) -> bool:
        """Sleep until stream time ``when_ns``; False when ``stop`` was set meanwhile."""
        wait = self.seconds_until(when_ns)
        if wait <= 0:
            return not (stop and stop.is_set())
        if stop is None:
            time.sleep(wait)
            return True
        return not stop.wait(wait)

    def call_at(self, when_ns: int, callback: Callback) -> Timer:
        timer = Timer(int(when_ns), callback)
        with self._cond:
            if self._closed:
                timer.cancel()
                return timer
            self._queue.push(timer)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="spotvlm-wallclock", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return timer

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    due = self._queue.peek_ns()
                    if due is None:
                        self._cond.wait()
                        continue
                    wait = self.seconds_until(due)
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._closed:
                    return
                timer = self._queue.pop()
            if not timer.cancelled:
                try:
                    timer.callback()
                except Exception:  # a failing callback must not stop the clock of the whole runtime
                    _LOG.exception("timer callback failed")

    def close(self) -> None:
        """Stop the timer thread; callbacks not yet run are dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
