"""What a run reports, whichever clock drives it: answered, skipped and unreadable frames, and contexts.

A driver (simulator or wall-clock runner) calls a :class:`RunSink` as things happen; :class:`RunLog`
keeps a light record of everything (no images) for summaries and evaluation, and forwards every event to
further sinks (e.g. the output bag writer). Sinks may be called from several threads; ``RunLog`` locks.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core.types import NS_PER_S, EdgeAnswer, Frame, LvlmResult
from .bag_reader import BagFrame
from .edge import Step


@dataclass(frozen=True, slots=True)
class Answered:
    """A frame the answerer worked on: started at ``start_ns`` (after any wait), done at ``finish_ns``."""

    frame: Frame
    step: Step
    start_ns: int
    finish_ns: int

    @property
    def latency_s(self) -> float:
        """From the frame's capture to its answer: wait for the edge plus the step's own latency."""
        return (self.start_ns - self.frame.stamp_ns) / NS_PER_S + self.step.latency_s


class RunSink(Protocol):
    """Receives the events of a run."""

    def on_input(self, item: BagFrame) -> None:
        """Every message read from the camera topic, readable or not."""
        ...

    def on_answer(self, answered: Answered) -> None: ...

    def on_skip(self, frame: Frame) -> None:
        """A frame dropped because a newer one arrived while the answerer was busy (latest wins)."""
        ...

    def on_context(self, result: LvlmResult, receive_ns: int, accepted: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One answered frame, without its image."""

    answer: EdgeAnswer
    start_ns: int
    finish_ns: int
    latency_s: float
    error: str = ""

    @classmethod
    def of(cls, answered: Answered) -> FrameRecord:
        """The record of an answered frame."""
        step = answered.step
        return cls(step.answer, answered.start_ns, answered.finish_ns, answered.latency_s, step.error)

    @property
    def stamp_ns(self) -> int:
        return self.answer.stamp_ns

    def to_json(self) -> dict[str, Any]:
        a = self.answer
        return {
            "stamp_ns": a.stamp_ns,
            "task": a.task,
            "text": a.text,
            "regions": [[*r.box.as_tuple(), r.label, r.score] for r in a.regions],
            "context_id": a.context_id,
            "context_age_s": a.context_age_s,
            "context_status": a.context_status,
            "focus_mode": a.focus_mode,
            "focus_regions": len(a.focus_regions),
            "inference_s": a.inference_s,
            "prompt_tokens": a.prompt_tokens,
            "image_tokens": a.image_tokens,
            "skipped_frames": a.skipped_frames,
            "start_ns": self.start_ns,
            "finish_ns": self.finish_ns,
            "latency_s": self.latency_s,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class ContextRecord:
    """One LVLM result as it arrived."""

    result: LvlmResult
    receive_ns: int
    accepted: bool


@dataclass
class RunLog:
    """Everything a run reported, in arrival order; forwards each event to ``sinks``."""

    sinks: Sequence[RunSink] = ()
    inputs: int = 0
    frames: list[int] = field(default_factory=list)
    unreadable: Counter[str] = field(default_factory=Counter)
    answered: list[FrameRecord] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    contexts: list[ContextRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def on_input(self, item: BagFrame) -> None:
        with self._lock:
            self.inputs += 1
            if item.frame is None:
                self.unreadable[item.error or "unreadable"] += 1
            else:
                self.frames.append(item.frame.stamp_ns)
        for sink in self.sinks:
            sink.on_input(item)

    def on_answer(self, answered: Answered) -> None:
        record = FrameRecord.of(answered)
        with self._lock:
            self.answered.append(record)
        for sink in self.sinks:
            sink.on_answer(answered)

    def on_skip(self, frame: Frame) -> None:
        with self._lock:
            self.skipped.append(frame.stamp_ns)
        for sink in self.sinks:
            sink.on_skip(frame)

    def on_context(self, result: LvlmResult, receive_ns: int, accepted: bool) -> None:
        with self._lock:
            self.contexts.append(ContextRecord(result, receive_ns, accepted))
        for sink in self.sinks:
            sink.on_context(result, receive_ns, accepted)

    @property
    def unreadable_total(self) -> int:
        return sum(self.unreadable.values())

    def counts(self) -> dict[str, Any]:
        """Frame and context counts of the run."""
        with self._lock:
            return {
                "messages": self.inputs,
                "frames": len(self.frames),
                "unreadable": self.unreadable_total,
                "unreadable_by_reason": dict(sorted(self.unreadable.items())),
                "answered": len(self.answered),
                "skipped_latest_wins": len(self.skipped),
                "edge_errors": sum(1 for r in self.answered if r.error),
                "contexts_received": len(self.contexts),
                "contexts_accepted": sum(1 for c in self.contexts if c.accepted),
            }
