"""The context store: the newest LVLM result per task plus a short history, safe across threads.

Results are keyed by the stamp of the keyframe they describe. Under fluctuating latency they arrive out
of order: a result older than the newest one held never replaces it (it may still fill a gap in the
history, so a past turn can use it), and a result whose stamp is already held is a duplicate and is
ignored. The age of a context is ``current frame stamp - result stamp``; beyond ``max_context_age_s``
the context is not used and the lookup says so.

What the history keeps (``history_keeps``): ``recent`` holds the newest ``history_length`` results;
``changes`` holds one result per run of equal answers (the run's newest; answers compared by their
normalized first line), the newest ``history_length`` runs. Keyframes that repeat an answer then do not
push out the last different one: a sign's value read once stays in the history while later keyframes
answer that no sign is in view.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .metrics import answer_part, normalize_answer
from .types import (
    CONTEXT_DISABLED,
    CONTEXT_NONE,
    CONTEXT_TOO_OLD,
    CONTEXT_USED,
    LvlmResult,
    s_to_ns,
)

if TYPE_CHECKING:
    from .config import ContextConfig

__all__ = ["ContextLookup", "ContextStore"]


@dataclass(frozen=True, slots=True)
class ContextLookup:
    """What the edge may use for one frame: the result (None unless used), its age and why."""

    result: LvlmResult | None
    age_s: float
    status: str

    @property
    def used(self) -> bool:
        return self.status == CONTEXT_USED


_NO_CONTEXT = ContextLookup(None, -1.0, CONTEXT_NONE)
_DISABLED = ContextLookup(None, -1.0, CONTEXT_DISABLED)


class _TaskHistory:
    """Results of one task sorted by stamp, at most ``capacity`` of them (the newest ones)."""

    __slots__ = ("stamps", "results", "revision")

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.results: list[LvlmResult] = []
        self.revision = 0


def _same_answer(a: LvlmResult, b: LvlmResult) -> bool:
    """Whether two results give the same answer (normalized first line, region JSON ignored)."""
    return normalize_answer(answer_part(a.text)) == normalize_answer(answer_part(b.text))


def _collapse_runs(entry: _TaskHistory, index: int) -> None:
    """Keep one result per run of equal answers around the result just put at ``index``: the run's newest."""
    results = entry.results
    if index + 1 < len(results) and _same_answer(results[index], results[index + 1]):
        del entry.stamps[index], entry.results[index]  # a newer result already says the same
        return
    if index > 0 and _same_answer(results[index - 1], results[index]):
        del entry.stamps[index - 1], entry.results[index - 1]


class ContextStore:
    """Newest LVLM result per task plus a short history; every method is thread-safe.

    ``history_length`` bounds the results kept per task (at least the newest one is always kept);
    ``history_keeps`` is ``recent`` or ``changes`` (see the module docstring).
    ``enabled=False`` makes every lookup answer :data:`CONTEXT_DISABLED` (the SVLM-alone baseline).
    """

    def __init__(
        self,
        history_length: int = 4,
        max_context_age_s: float = 10.0,
        enabled: bool = True,
        history_keeps: str = "recent",
    ):
        if history_keeps not in ("recent", "changes"):
            raise ValueError(f"history_keeps must be 'recent' or 'changes', got {history_keeps!r}")
        if history_length < 0:
            raise ValueError(f"history_length must be >= 0, got {history_length}")
        if not max_context_age_s > 0:
            raise ValueError(f"max_context_age_s must be > 0, got {max_context_age_s}")
        self.history_length = history_length
        self.max_context_age_s = float(max_context_age_s)
        self.max_context_age_ns = s_to_ns(max_context_age_s)
        self.enabled = enabled
        self.keeps_changes = history_keeps == "changes"
        self._capacity = max(1, history_length)
        self._tasks: dict[str, _TaskHistory] = {}
        self._lock = threading.Lock()
        self._revision = 0
        self.rejected_old = 0
        self.rejected_duplicate = 0

    def _next_revision(self) -> int:
        self._revision += 1
        return self._revision

    @classmethod
    def from_config(cls, config: ContextConfig) -> ContextStore:
        """Build from a :class:`~spotvlm_ros.core.config.ContextConfig`."""
        return cls(
            history_length=config.history_length,
            max_context_age_s=config.max_context_age_s,
            enabled=config.enabled,
            history_keeps=config.history_keeps,
        )

    def add(self, result: LvlmResult) -> bool:
        """Store ``result``; True when it became the newest context of its task.

        False for a duplicate (same task and stamp already held) and for an out-of-order result older
        than the newest held; such an older result is still kept in the history when it falls inside
        the history window, so a past turn can use it.
        """
        with self._lock:
            entry = self._tasks.setdefault(result.task, _TaskHistory())
            index = bisect.bisect_left(entry.stamps, result.stamp_ns)
            if index < len(entry.stamps) and entry.stamps[index] == result.stamp_ns:
                self.rejected_duplicate += 1
                return False
            newest = index == len(entry.stamps)
            if not newest:
                self.rejected_old += 1
                if len(entry.stamps) >= self._capacity and index == 0:
                    return False  # older than everything the bounded history keeps
            entry.stamps.insert(index, result.stamp_ns)
            entry.results.insert(index, result)
            if self.keeps_changes:
                _collapse_runs(entry, index)
            if len(entry.stamps) > self._capacity:
                del entry.stamps[0], entry.results[0]
            entry.revision = self._next_revision()
            return newest

    def lookup(self, task: str, now_ns: int) -> ContextLookup:
        """The context for a frame of ``task`` captured at ``now_ns``.

        Uses the newest result whose keyframe is not newer than the frame. ``status`` is
        ``used`` (result set), ``none``, ``too_old`` (age set, result None) or ``disabled``.
        """
        if not self.enabled:
            return _DISABLED
        with self._lock:
            entry = self._tasks.get(task)
            if entry is None:
                return _NO_CONTEXT
            index = bisect.bisect_right(entry.stamps, now_ns) - 1
            if index < 0:
                return _NO_CONTEXT
            result = entry.results[index]
        age_ns = now_ns - result.stamp_ns
        age_s = age_ns / 1e9
        if age_ns > self.max_context_age_ns:
            return ContextLookup(None, age_s, CONTEXT_TOO_OLD)
        return ContextLookup(result, age_s, CONTEXT_USED)

    def history(self, task: str) -> list[LvlmResult]:
        """The held results of ``task``, oldest first (newest last), at most ``history_length``."""
        with self._lock:
            entry = self._tasks.get(task)
            if entry is None or self.history_length == 0:
                return []
            return list(entry.results)

    def get(self, task: str, stamp_ns: int) -> LvlmResult | None:
        """The result of ``task`` for the keyframe captured at ``stamp_ns``, if held."""
        with self._lock:
            entry = self._tasks.get(task)
            if entry is None:
                return None
            index = bisect.bisect_left(entry.stamps, stamp_ns)
            if index < len(entry.stamps) and entry.stamps[index] == stamp_ns:
                return entry.results[index]
            return None

    def newest(self, task: str) -> LvlmResult | None:
        """The newest result of ``task`` regardless of age, if any."""
        with self._lock:
            entry = self._tasks.get(task)
            return entry.results[-1] if entry and entry.results else None

    def revision(self, task: str) -> int:
        """A store-wide increasing number, new whenever the results of ``task`` change (for caches)."""
        with self._lock:
            entry = self._tasks.get(task)
            return entry.revision if entry else 0

    def tasks(self) -> list[str]:
        """Tasks with at least one result."""
        with self._lock:
            return sorted(self._tasks)

    def clear(self, task: str | None = None) -> None:
        """Forget every result (of ``task`` only, when given)."""
        with self._lock:
            if task is None:
                self._tasks.clear()
            elif task in self._tasks:
                entry = self._tasks[task]
                entry.stamps.clear()
                entry.results.clear()
                entry.revision = self._next_revision()
