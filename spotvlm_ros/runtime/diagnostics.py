"""What the nodes report on ``/diagnostics``, computed without ROS: rates, percentiles, levels.

Each node keeps one monitor (:class:`EdgeMonitor`, :class:`BridgeMonitor`, :class:`ServerMonitor`),
feeds it events with the node's clock in seconds, and turns ``report(now_s, ...)`` into a
``diagnostic_msgs/DiagnosticStatus`` (level, message, key/value pairs). Monitors are thread-safe: the
SVLM thread, subscription callbacks and the diagnostics timer touch them at the same time.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100, linear interpolation); NaN when there are no values."""
    data = sorted(values)
    if not data:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    pos = (len(data) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


class RateMeter:
    """Events per second over the last ``window_s`` seconds (0 when fewer than two events).

    While events keep coming it is (events - 1) / (last - first); once the stream stalls for more than two
    mean intervals, the time since the first event counts, so the rate decays towards 0.
    """

    def __init__(self, window_s: float = 5.0) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now_s: float) -> None:
        self._times.append(now_s)
        self._trim(now_s)

    def _trim(self, now_s: float) -> None:
        while self._times and now_s - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now_s: float) -> float:
        self._trim(now_s)
        if len(self._times) < 2:
            return 0.0
        intervals = len(self._times) - 1
        span = self._times[-1] - self._times[0]
        if now_s - self._times[-1] > 2 * span / intervals:  # the stream stalled: let the rate decay
            span = now_s - self._times[0]
        return intervals / max(span, 1e-9)


class Samples:
    """The last ``size`` values of a measurement, with percentiles."""

    def __init__(self, size: int = 200) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, value: float) -> None:
        self._values.append(float(value))
        self.count += 1

    def p(self, q: float) -> float:
        return percentile(self._values, q)

    @property
    def last(self) -> float:
        return self._values[-1] if self._values else math.nan


@dataclass(frozen=True)
class DiagnosticReport:
    """One ``DiagnosticStatus``: level (OK/WARN/ERROR/STALE), message and key/value pairs."""

    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES[self.level]


def _fmt(value: float, digits: int = 3) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


class EdgeMonitor:
    """Camera frames in, SVLM answers out: rates, step time, context age, dropped frames, errors."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._frames = RateMeter(window_s)
        self._answers = RateMeter(window_s)
        self.step_s = Samples()
        self.context_age_s = math.nan
        self.context_status = "none"
        self.frames = self.dropped = self.answers = self.errors = self.undecodable = 0
        self.last_frame_s: float | None = None
        self.last_error = ""

    def frame(self, now_s: float) -> None:
        with self._lock:
            self.frames += 1
            self.last_frame_s = now_s
            self._frames.tick(now_s)

    def frame_dropped(self, count: int = 1) -> None:
        """A frame replaced before the SVLM took it (latest wins)."""
        with self._lock:
            self.dropped += count

    def frame_undecodable(self) -> None:
        with self._lock:
            self.undecodable += 1

    def answered(
        self, now_s: float, step_s: float, context_age_s: float, status: str, error: str = ""
    ) -> None:
        with self._lock:
            self.answers += 1
            self._answers.tick(now_s)
            self.step_s.add(step_s)
            self.context_age_s = context_age_s
            self.context_status = status
            if error:
                self.errors += 1
            self.last_error = error

    def report(self, now_s: float, *, no_frames_warn_s: float, active: bool = True) -> DiagnosticReport:
        with self._lock:
            values = {
                "camera_rate_hz": _fmt(self._frames.rate(now_s), 2),
                "svlm_rate_hz": _fmt(self._answers.rate(now_s), 2),
                "svlm_step_ms_p50": _fmt(self.step_s.p(50) * 1000, 1),
                "svlm_step_ms_p95": _fmt(self.step_s.p(95) * 1000, 1),
                "context_age_s": _fmt(self.context_age_s, 2) if self.context_age_s >= 0 else "none",
                "context_status": self.context_status,
                "frames_received": str(self.frames),
                "frames_dropped": str(self.dropped),
                "frames_undecodable": str(self.undecodable),
                "answers": str(self.answers),
                "svlm_errors": str(self.errors),
            }
            silent = now_s - self.last_frame_s if self.last_frame_s is not None else math.inf
            if not active:
                return DiagnosticReport(STALE, "inactive (lifecycle)", values)
            if silent > no_frames_warn_s:
                when = "yet" if self.last_frame_s is None else f"for {silent:.1f} s"
                return DiagnosticReport(WARN, f"no camera frame {when}", values)
            if self.last_error:
                return DiagnosticReport(WARN, f"SVLM failed: {self.last_error}", values)
            return DiagnosticReport(OK, f"answering at {values['svlm_rate_hz']} Hz", values)


class BridgeMonitor:
    """Keyframes to the LVLM and results back: rate, round-trip p50/p95, in flight, failures."""

    def __init__(self, window_s: float = 10.0) -> None:
        self._lock = threading.Lock()
        self._sent = RateMeter(window_s)
        self.round_trip_s = Samples()
        self.counts: Counter[str] = Counter()

    def sent(self, now_s: float) -> None:
        with self._lock:
            self.counts["sent"] += 1
            self._sent.tick(now_s)

    def result(self, round_trip_s: float) -> None:
        with self._lock:
            self.counts["results"] += 1
            self.round_trip_s.add(round_trip_s)

    def count(self, event: str, n: int = 1) -> None:
        """Count an event: ``rejected``, ``failed``, ``timeouts``, ``preempted``, ``lost``, ``stale`` ..."""
        with self._lock:
            self.counts[event] += n

    def report(
        self, now_s: float, *, in_flight: int, server_up: bool, active: bool = True
    ) -> DiagnosticReport:
        with self._lock:
            values = {
                "keyframe_rate_hz": _fmt(self._sent.rate(now_s), 2),
                "lvlm_round_trip_s_p50": _fmt(self.round_trip_s.p(50)),
                "lvlm_round_trip_s_p95": _fmt(self.round_trip_s.p(95)),
                "in_flight": str(in_flight),
                "server": "up" if server_up else "down",
            }
            for key in ("sent", "results", "rejected", "failed", "timeouts", "preempted", "lost", "stale"):
                values[key] = str(self.counts[key])
        if not active:
            return DiagnosticReport(STALE, "inactive (lifecycle)", values)
        if not server_up:
            return DiagnosticReport(
                ERROR, "LVLM server unavailable; the edge goes on without new context", values
            )
        if self.counts["results"] == 0 and (self.counts["failed"] or self.counts["timeouts"]):
            return DiagnosticReport(WARN, "no LVLM result yet, only failures and timeouts", values)
        return DiagnosticReport(OK, f"{in_flight} request(s) in flight", values)


class ServerMonitor:
    """Goals accepted, rejected (by reason), finished (by outcome) and their compute time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds = Samples()
        self.counts: Counter[str] = Counter()
        self.last_error = ""

    def count(self, event: str) -> None:
        with self._lock:
            self.counts[event] += 1

    def finished(self, outcome: str, seconds: float, error: str = "") -> None:
        with self._lock:
            self.counts[outcome] += 1
            self.seconds.add(seconds)
            if error:
                self.last_error = error

    def report(self, *, model: str, running: int, active: bool = True) -> DiagnosticReport:
        with self._lock:
            values = {
                "model": model or "none",
                "goals_running": str(running),
                "lvlm_s_p50": _fmt(self.seconds.p(50)),
                "lvlm_s_p95": _fmt(self.seconds.p(95)),
            }
            values.update({k: str(v) for k, v in sorted(self.counts.items())})
            last_error = self.last_error
        if not active:
            return DiagnosticReport(STALE, "inactive (lifecycle): no model loaded", values)
        if last_error and self.counts["succeeded"] == 0:
            return DiagnosticReport(ERROR, f"backend failing: {last_error}", values)
        return DiagnosticReport(OK, f"serving {values['model']}", values)
