"""SVLM prompts recorded from the real runtime: context turns, focus crops, own earlier answers.

The SVLM must learn to use late LVLM answers (history turns, focus crops) and to overrule them when its
own view disagrees. Its training prompts are therefore not written here: the real
:class:`~spotvlm_ros.runtime.edge.EdgeRuntime` (Context Replacement, Visual Focus, context store) runs
over synthetic clips on the simulated clock with :class:`ScriptedBackend` in place of both models, and
every SVLM call it makes is recorded with the ground truth of its frame as the target. The scripted
LVLM answers keyframes in the LVLM's own output format with some fields corrupted (a wrong answer, a
displaced box), so fresh context sometimes contradicts the frame; the scripted SVLM's own answers (the
history turns of later frames) are wrong part of the time too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ..core.annotations import FrameAnnotation
from ..core.config import SpotVlmConfig
from ..core.context_store import ContextStore
from ..core.latency import parse_latency_profile
from ..core.types import NS_PER_S, Box, Frame, LvlmResult, Region
from ..models.base import ChatMessage, Generation
from ..runtime.clock import SimulatedClock
from ..runtime.edge import EdgeRuntime, Step
from ..runtime.eval.modes import MODES, build_mode, mode_config
from ..runtime.events import RunLog
from ..runtime.simulator import Simulator
from .answers import RELEVANT, TaskQuery, answer_text, boxes_json, corrupt_answer, jitter_box, truth_regions
from .modeling import model_input_size
from .samples import Clip, Sample

CONTEXT_MODES = {"spotvlm": 0.5, "spotvlm_no_focus": 0.2, "spotvlm_no_replacement": 0.1, "svlm": 0.2}


class ScriptedBackend:
    """A stand-in model that answers from the ground truth of the frame in hand.

    It is wrong ``error_rate`` of the time and leaves each box out of its regions with probability
    ``region_drop`` (a real LVLM misses objects; focus crops then show fewer than there are) and puts the
    box of object ``id`` at a random place along its row with probability ``region_miss[id]`` (the
    shipped LVLM's pedestrian box has the pedestrian's height and row but not its place); with
    ``keep`` > 0 it records that share of its calls as training samples (the prompt the runtime built,
    the true answer as target). With ``sees`` it answers the speed limit as the frame shows it (an LVLM
    sees only the sign in view), not the posted limit.
    ``processor`` is the processor of the model it stands in for (token counts, input sizes, box
    coordinates). The driver sets :attr:`truth` before each call.
    """

    def __init__(
        self,
        name: str,
        processor: object,
        image_max_side: int,
        rng: np.random.Generator,
        *,
        error_rate: float = 0.0,
        box_jitter: float = 0.2,
        region_drop: float = 0.0,
        region_miss: Mapping[str, float] | None = None,
        keep: float = 0.0,
        sees: bool = False,
    ):
        self.name = name
        self.sees = sees
        self.processor = processor
        self.image_max_side = image_max_side
        self.rng = rng
        self.error_rate = error_rate
        self.box_jitter = box_jitter
        self.region_drop = region_drop
        self.region_miss = dict(region_miss or {})
        self.keep = keep
        self.query = TaskQuery("vqa", "light")
        self.truth: tuple[FrameAnnotation, int, int] | None = None  # annotation, frame width, height
        self.group = ""
        self.recorded: list[Sample] = []

    def input_scale(self, image: np.ndarray) -> tuple[float, float]:
        """Frame pixels -> model input pixels of an image showing the whole frame."""
        _, frame_w, frame_h = self._truth()
        height, width = image.shape[:2]
        fit = min(1.0, self.image_max_side / max(height, width))
        in_w, in_h = model_input_size(self.processor, round(width * fit), round(height * fit))
        return in_w / frame_w, in_h / frame_h

    def generate(
        self,
        messages: Sequence[ChatMessage],
        images: Sequence[np.ndarray],
        *,
        max_new_tokens: int | None = None,
        want_regions: bool = False,
    ) -> Generation:
        annotation, frame_w, frame_h = self._truth()
        query = self.query
        want_regions = want_regions or query.task == "grounding"
        scale = self.input_scale(images[0])
        if self.keep > 0 and self.rng.random() < self.keep:
            target = answer_text(query, annotation, want_regions=want_regions, scale=scale)
            truth = answer_text(query, annotation) if query.task != "grounding" else target
            group = self.group or query.key
            self.recorded.append(Sample("context", group, list(messages), list(images), target, truth))
        regions: list[Region] = []
        if want_regions:
            regions = [
                Region(self._located(item_id, r.box, frame_w).clip(frame_w, frame_h), r.label)
                for item_id in _region_ids(query, annotation)
                for r in truth_regions(annotation, (item_id,), (1.0, 1.0))
                if not self._drops_region()
            ]
        if self.rng.random() < self.error_rate:
            text = corrupt_answer(query, annotation, self.rng, seen=self.sees)
        else:
            text = answer_text(query, annotation, seen=self.sees)
        if want_regions:
            scaled = [Region(r.box.scale(*scale), r.label) for r in regions]
            text = boxes_json(scaled) if query.task == "grounding" else f"{text}\n{boxes_json(scaled)}"
        return Generation(text=text, regions=tuple(regions) if want_regions else ())

    def _located(self, item_id: str, box: Box, frame_w: int) -> Box:
        """Where the scripted LVLM puts the box of ``item_id``: jittered, or (a miss) elsewhere on its row.

        With an empty ``region_miss`` no draw is made for misses (data sets recorded before keep theirs).
        """
        box = jitter_box(box, self.rng, self.box_jitter)
        if self.region_miss and self.rng.random() < self.region_miss.get(item_id, 0.0):
            return box.shift(_missed_x1(box, frame_w, self.rng.random()) - box.x1, 0.0)
        return box

    def _drops_region(self) -> bool:
        """Whether to leave a box out (one draw per box at any rate: the recorded data sets' draws)."""
        return bool(self.rng.random() < self.region_drop)

    def count_tokens(self, text: str) -> int:
        return len(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def image_tokens(self, width: int, height: int) -> int:
        fit = min(1.0, self.image_max_side / max(width, height))
        in_w, in_h = model_input_size(self.processor, round(width * fit), round(height * fit))
        return (in_w // 28) * (in_h // 28)

    def close(self) -> None:
        """Nothing to free."""

    def _truth(self) -> tuple[FrameAnnotation, int, int]:
        if self.truth is None:
            raise RuntimeError("ScriptedBackend called before its truth was set")
        return self.truth


def _missed_x1(box: Box, frame_w: int, draw: float) -> float:
    """A left edge for ``box`` on its row at least half its width from where it is (IoU <= 1/3).

    ``draw`` in [0, 1) picks the place uniformly among the allowed ones; with none (a box wider than
    half the frame) the box goes to the far end of the row.
    """
    last = max(frame_w - box.width, 0.0)
    left = (0.0, max(min(box.x1 - box.width / 2, last), 0.0))
    right = (min(box.x1 + box.width / 2, last), last)
    left_len, right_len = left[1] - left[0], right[1] - right[0]
    if left_len + right_len <= 0:
        return 0.0 if box.x1 > last / 2 else last
    offset = draw * (left_len + right_len)
    return left[0] + offset if offset < left_len else right[0] + offset - left_len


def _region_ids(query: TaskQuery, annotation: FrameAnnotation) -> tuple[str, ...]:
    """The ground-truth boxes an answer to ``query`` locates."""
    if query.task == "caption":
        return tuple(g.id for g in annotation.grounding)
    if query.task == "grounding":
        return (query.item_id,)
    return RELEVANT.get(query.item_id, ())


class _TruthAnswerer:
    """Sets the scripted SVLM's truth to the frame being answered, then lets the real answerer work."""

    def __init__(self, inner: object, backend: ScriptedBackend, truth: dict[int, FrameAnnotation]):
        self.inner = inner
        self.backend = backend
        self.truth = truth

    def observe(self, frame: Frame) -> None:
        self.inner.observe(frame)  # type: ignore[attr-defined]

    def answer(self, frame: Frame, skipped: int = 0) -> Step:
        self.backend.truth = (self.truth[frame.stamp_ns], frame.width, frame.height)
        return self.inner.answer(frame, skipped)  # type: ignore[attr-defined]


def simulate_run(
    clip: Clip,
    config: SpotVlmConfig,
    query: TaskQuery,
    mode: str,
    mean_delay_s: float,
    svlm: ScriptedBackend,
    lvlm: ScriptedBackend,
    seed: int,
) -> None:
    """Run ``mode`` over ``clip`` on the simulated clock; the scripted SVLM records its calls."""
    latency = parse_latency_profile(f"lognormal:mean={mean_delay_s:.3f},sigma=0.8", seed=seed)
    origin = clip.frames[0].stamp_ns
    clock = SimulatedClock(origin)
    svlm.query = lvlm.query = query
    svlm.group = f"{query.key}@{mode}"
    run = build_mode(
        MODES[mode],
        config,
        task=query.task,
        prompt=query.prompt,
        edge_backend=svlm,  # type: ignore[arg-type]
        cloud_backend=lvlm,  # type: ignore[arg-type]
        latency=latency,
        clock=clock,
        origin_ns=origin,
    )
    truth = {f.stamp_ns: a for f, a in zip(clip.frames, clip.annotations, strict=True)}

    def frames() -> Iterator[Frame]:
        for frame in clip.frames:
            lvlm.truth = (truth[frame.stamp_ns], frame.width, frame.height)  # a keyframe is the frame in hand
            yield frame

    Simulator(_TruthAnswerer(run.answerer, svlm, truth), clock, RunLog(), run.cloud).run(frames())


def context_samples(
    clip: Clip,
    config: SpotVlmConfig,
    svlm: ScriptedBackend,
    lvlm: ScriptedBackend,
    rng: np.random.Generator,
    runs: int,
    mean_delay_s: tuple[float, float],
    queries: Sequence[TaskQuery],
    history_lengths: Sequence[int] = (),
) -> list[Sample]:
    """Recorded SVLM calls of ``runs`` simulated runs over ``clip`` (random mode, query and delay).

    With ``history_lengths`` each run also draws its ``context.history_length`` from them.
    """
    svlm.recorded = []
    modes, weights = zip(*CONTEXT_MODES.items(), strict=True)
    for _ in range(runs):
        mode = str(rng.choice(modes, p=np.asarray(weights) / sum(weights)))
        query = queries[int(rng.integers(len(queries)))]
        low, high = (math.log(v) for v in mean_delay_s)
        delay = float(math.exp(rng.uniform(low, high)))
        run_config = config
        if history_lengths:
            length = int(history_lengths[int(rng.integers(len(history_lengths)))])
            context = config.context.model_copy(update={"history_length": length})
            run_config = config.model_copy(update={"context": context})
        simulate_run(clip, run_config, query, mode, delay, svlm, lvlm, int(rng.integers(2**31)))
    samples, svlm.recorded = svlm.recorded, []
    return samples


def single_call(
    backend: ScriptedBackend,
    config: SpotVlmConfig,
    mode: str,
    query: TaskQuery,
    frame: Frame,
    annotation: FrameAnnotation,
    context: LvlmResult | None = None,
    group: str = "",
) -> Sample:
    """The SVLM call the runtime makes for one frame from a fresh start, with ``context`` in the store."""
    cfg = mode_config(config, MODES[mode])
    store = ContextStore.from_config(cfg.context)
    if context is not None:
        store.add(context)
    runtime = EdgeRuntime(backend, cfg, store, task=query.task, prompt=query.prompt)  # type: ignore[arg-type]
    runtime.observe(frame)
    backend.query, backend.truth, backend.group = query, (annotation, frame.width, frame.height), group
    keep, backend.keep, backend.recorded = backend.keep, 1.0, []
    try:
        runtime.answer(frame)
    finally:
        backend.keep = keep
    (sample,) = backend.recorded
    backend.recorded = []
    return sample


def light_context(
    frame: Frame,
    annotation: FrameAnnotation,
    with_regions: bool,
    age_s: float,
    answer: str,
    rng: np.random.Generator,
    lvlm_processor: object,
) -> LvlmResult:
    """An LVLM-style result about the light, ``age_s`` old, saying ``answer``, with the light's box."""
    light = annotation.box("light")
    regions = ()
    if light is not None:
        regions = (Region(jitter_box(light.box, rng, 0.15).clip(frame.width, frame.height), light.label),)
    in_w, in_h = model_input_size(lvlm_processor, frame.width, frame.height)
    scaled = [Region(r.box.scale(in_w / frame.width, in_h / frame.height), r.label) for r in regions]
    query = TaskQuery("vqa", "light")
    return LvlmResult(
        request_id=f"heldout-{frame.stamp_ns}",
        stamp_ns=frame.stamp_ns - round(age_s * NS_PER_S),
        task=query.task,
        prompt=query.prompt,
        text=f"{answer}\n{boxes_json(scaled)}" if with_regions else answer,
        regions=regions,
        image_size=(frame.width, frame.height),
        model="scripted-lvlm",
    )


def wrong_light(annotation: FrameAnnotation, rng: np.random.Generator) -> str:
    """A light state other than the true one."""
    return corrupt_answer(TaskQuery("vqa", "light"), annotation, rng)
