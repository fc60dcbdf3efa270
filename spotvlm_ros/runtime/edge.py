"""The edge side of the loop: one SVLM answer for one frame, with Context Replacement and Visual Focus.

Per frame: context store lookup -> Visual Focus view (downscaled frame + crops of the regions the LVLM
found, carried to this frame; a frame of several cameras shows every camera, regions carried per
camera) -> Context Replacement prompt (history turns where late LVLM answers replace the SVLM's own)
-> SVLM generate -> :class:`EdgeAnswer`. The runtime itself never waits on the
cloud: it reads whatever the store holds at that moment. Which frame to answer (latest wins) is the
driver's business (simulator or wall-clock runner), so the same object runs under both clocks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from ..core.config import SpotVlmConfig
from ..core.context_store import ContextStore
from ..core.focus import FocusView, FrameBuffer, VisualFocus
from ..core.prompt import ContextReplacement
from ..core.types import EdgeAnswer, Frame
from ..models.base import BackendError, VlmBackend

LOG = logging.getLogger("spotvlm.edge")


@dataclass(frozen=True, slots=True)
class Step:
    """One answered frame as a driver sees it.

    ``busy_s`` is how long the answering pipeline is occupied (frames arriving meanwhile are skipped,
    latest wins); ``latency_s`` is the time from start of work to the answer (the driver adds any wait
    before the start). They differ only for baselines whose answers do not occupy the edge.
    """

    answer: EdgeAnswer
    busy_s: float
    latency_s: float
    view: FocusView | None = None
    error: str = ""


class Answerer(Protocol):
    """Anything that answers frames: the edge runtime, or a baseline of the evaluation."""

    def observe(self, frame: Frame) -> None:
        """See every frame as it arrives (answered or not), e.g. to keep keyframe images."""
        ...

    def answer(self, frame: Frame, skipped: int = 0) -> Step:
        """Answer ``frame``; ``skipped`` frames were dropped (latest wins) since the previous answer."""
        ...


class EdgeRuntime:
    """The SVLM step of SpotVLM for one task and prompt.

    ``step_time_s > 0`` fixes the reported compute time of a step (simulated clock: the run stays
    bit-identical); 0 reports the measured generate time.
    """

    def __init__(
        self,
        backend: VlmBackend,
        config: SpotVlmConfig,
        store: ContextStore,
        *,
        task: str | None = None,
        prompt: str | None = None,
        step_time_s: float = 0.0,
        focus: VisualFocus | None = None,
        replacement: ContextReplacement | None = None,
    ):
        self.backend = backend
        self.config = config
        self.store = store
        self.task = task or config.task
        self.prompt = prompt or config.prompt
        self.step_time_s = step_time_s
        self.focus = focus or VisualFocus(config.focus, count_image_tokens=backend.image_tokens)
        self.replacement = replacement or ContextReplacement(
            config.context, config.system_prompt, count_tokens=backend.count_tokens
        )
        self.frames = FrameBuffer(config.focus.keyframe_buffer)
        self.want_regions = self.task == "grounding"
        self.errors = 0
        self._failing = 0  # consecutive failed frames (logged once when a streak starts and ends)

    def observe(self, frame: Frame) -> None:
        self.frames.add(frame)

    def answer(self, frame: Frame, skipped: int = 0) -> Step:
        lookup = self.store.lookup(self.task, frame.stamp_ns)
        context = lookup.result
        keyframe = self.frames.get(context.stamp_ns) if context is not None else None
        view = self.focus.prepare(frame, context, keyframe)
        plan = self.replacement.build(
            frame.stamp_ns,
            self.task,
            self.prompt,
            self.store,
            len(view.images),
            focus_note=view.note,
            lookup=lookup,
        )
        started = time.perf_counter()
        error = ""
        try:
            generation = self.backend.generate(
                plan.messages,
                view.images,
                max_new_tokens=self.config.edge.max_new_tokens,
                want_regions=self.want_regions,
            )
            text, regions = generation.text, view.regions_to_frame(generation.regions)
            prompt_tokens, image_tokens = generation.prompt_tokens, generation.image_tokens
            if self._failing:
                LOG.info("SVLM answering again after %d failed frame(s)", self._failing)
                self._failing = 0
        except BackendError as err:
            self.errors += 1
            error = str(err) or type(err).__name__
            if not self._failing:
                LOG.warning("SVLM failing from frame %d on: %s", frame.stamp_ns, error)
            self._failing += 1
            text, regions, prompt_tokens, image_tokens = "", (), 0, view.image_tokens
        measured = time.perf_counter() - started
        seconds = self.step_time_s if self.step_time_s > 0 else measured
        if self.want_regions and not regions:
            regions = view.regions  # the LVLM's regions carried to this frame answer the query
        self.replacement.record_answer(frame.stamp_ns, self.task, self.prompt, text)
        used = plan.context
        answer = EdgeAnswer(
            stamp_ns=frame.stamp_ns,
            task=self.task,
            text=text,
            frame_id=frame.frame_id,
            regions=tuple(regions),
            context_id=used.result.request_id if used.result is not None else "",
            context_age_s=used.age_s if used.result is not None else -1.0,
            context_status=used.status,
            focus_regions=view.regions,
            focus_mode=view.mode,
            inference_s=seconds,
            prompt_tokens=prompt_tokens,
            image_tokens=image_tokens or view.image_tokens,
            skipped_frames=skipped,
        )
        return Step(answer, busy_s=seconds, latency_s=seconds, view=view, error=error)
