"""Cloud link and context freshness as small state machines that log one line per change, not per frame.

- :class:`CloudLinkState` follows the outcomes of LVLM requests: ``up`` after an answer, ``degraded``
  after a failure (error or timeout), ``down`` after ``down_after`` failures in a row. Each change is
  logged once (WARNING when it gets worse, INFO when it recovers) with the reason and the counts.
- :class:`ContextFreshness` follows what the edge answered with (:attr:`EdgeAnswer.context_status`):
  ``fresh`` (LVLM context used), ``stale`` (the newest context is older than
  ``context.max_context_age_s``: SVLM-only answers), ``none`` (no context yet) or ``disabled``. It is a
  :class:`~.events.RunSink`, so a run log forwards answers to it.

Both are thread-safe; the log line is written outside the lock. Times are stream seconds (the runtime's
clock, so durations mean the same on the simulated clock), or ``time.monotonic()`` when no clock is given.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.types import (
    CONTEXT_DISABLED,
    CONTEXT_NONE,
    CONTEXT_TOO_OLD,
    CONTEXT_USED,
    NS_PER_S,
    Frame,
    LvlmResult,
)
from .bag_reader import BagFrame
from .events import Answered

LOG = logging.getLogger("spotvlm.link")

UNKNOWN, UP, DEGRADED, DOWN = "unknown", "up", "degraded", "down"
FRESH, STALE, NONE, DISABLED = "fresh", "stale", "none", "disabled"
_FRESHNESS = {CONTEXT_USED: FRESH, CONTEXT_TOO_OLD: STALE, CONTEXT_NONE: NONE, CONTEXT_DISABLED: DISABLED}
_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change: from, to, why, and when (seconds; see the module docstring)."""

    before: str
    after: str
    reason: str
    at_s: float


class CloudLinkState:
    """``unknown`` -> ``up`` / ``degraded`` / ``down`` from request outcomes; logs each change once."""

    def __init__(
        self,
        down_after: int = 2,
        logger: logging.Logger = LOG,
        now_s: Callable[[], float] = time.monotonic,
    ) -> None:
        if down_after < 1:
            raise ValueError(f"down_after must be >= 1, got {down_after}")
        self.down_after = down_after
        self.log = logger
        self.state = UNKNOWN
        self.ok = self.failed = self.consecutive_failures = 0
        self.changes = 0
        self.last: Transition | None = None
        self._now_s = now_s
        self._since_s = 0.0
        self._lock = threading.Lock()

    def success(self, request_id: str, round_trip_s: float) -> None:
        """An LVLM answer arrived (accepted or not: the link works)."""
        with self._lock:
            self.ok += 1
            outage = self.consecutive_failures
            self.consecutive_failures = 0
            reason = f"{request_id} answered in {round_trip_s:.2f} s"
            if outage:
                reason += f" after {outage} failed request(s)"
            line = self._move(UP, reason)
        self._emit(line, logging.INFO)

    def failure(self, request_id: str, reason: str) -> None:
        """An LVLM request failed or timed out."""
        with self._lock:
            self.failed += 1
            self.consecutive_failures += 1
            state = DOWN if self.consecutive_failures >= self.down_after else DEGRADED
            if self.state == DOWN:
                state = DOWN  # one more failure while down changes nothing
            line = self._move(state, f"{request_id}: {_short(reason)}")
        self._emit(line, logging.WARNING)

    def summary(self) -> dict[str, int | str]:
        """State and counts, for run summaries."""
        with self._lock:
            return {"state": self.state, "changes": self.changes, "ok": self.ok, "failed": self.failed}

    def _move(self, state: str, reason: str) -> str:
        if state == self.state:
            return ""
        now = self._now_s()
        before = self.state
        held = f" for {now - self._since_s:.1f} s" if before != UNKNOWN else ""  # no clock before a start
        self.state, self._since_s = state, now
        self.changes += 1
        self.last = Transition(before, state, reason, now)
        return (
            f"cloud link {state} (was {before}{held}): {reason}; "
            f"{self.consecutive_failures} failure(s) in a row, {self.ok} ok / {self.failed} failed so far"
        )

    def _emit(self, line: str, level: int) -> None:
        if line:
            self.log.log(level, "%s", line)


class ContextFreshness:
    """Follows the context status of the edge's answers; logs each change of freshness once.

    Its transitions carry the stamp (in seconds) of the first frame answered in the new state.
    """

    def __init__(self, max_context_age_s: float, logger: logging.Logger = LOG) -> None:
        self.max_context_age_s = max_context_age_s
        self.log = logger
        self.state = UNKNOWN
        self.changes = 0
        self.frames_in_state = 0
        self.last: Transition | None = None
        self._lock = threading.Lock()

    def observe(self, status: str, stamp_ns: int, context_id: str = "") -> None:
        """One answered frame with its ``context_status``."""
        state = _FRESHNESS.get(status, status)
        with self._lock:
            if state == self.state:
                self.frames_in_state += 1
                return
            before, frames = self.state, self.frames_in_state
            self.state, self.frames_in_state = state, 1
            self.changes += 1
            reason = _why(state, context_id, self.max_context_age_s)
            self.last = Transition(before, state, reason, stamp_ns / NS_PER_S)
        level = logging.WARNING if state == STALE else logging.INFO
        self.log.log(
            level,
            "LVLM context %s from frame %d (was %s for %d frame(s)): %s",
            state,
            stamp_ns,
            before,
            frames,
            reason,
        )

    def summary(self) -> dict[str, int | str]:
        with self._lock:
            return {"state": self.state, "changes": self.changes}

    # ---- RunSink ----------------------------------------------------------------------------------------

    def on_input(self, item: BagFrame) -> None:
        """Inputs change nothing."""

    def on_answer(self, answered: Answered) -> None:
        answer = answered.step.answer
        self.observe(answer.context_status, answer.stamp_ns, answer.context_id)

    def on_skip(self, frame: Frame) -> None:
        """Skipped frames change nothing."""

    def on_context(self, result: LvlmResult, receive_ns: int, accepted: bool) -> None:
        """Arrivals change nothing until the edge uses them."""


def _why(state: str, context_id: str, max_age_s: float) -> str:
    if state == FRESH:
        return f"answers use LVLM context {context_id}"
    if state == STALE:
        return f"the newest LVLM context is older than context.max_context_age_s={max_age_s:g} s; SVLM-only"
    if state == NONE:
        return "no LVLM context yet; SVLM-only"
    return "context disabled; SVLM-only"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."
