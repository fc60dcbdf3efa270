"""``spotvlm eval``: every mode x latency profile x task item, simulated on one annotated bag.

Each run replays the first ``max_frames`` camera messages of the bag on a fresh virtual clock with a fresh
context store (afresh again wherever the ground truth's ``sequence`` changes: a bag of recordings back to back
is scored as that many drives, and no answer about one is context for the next) and a latency model seeded
from ``config.seed``, the profile's spec and the draw (so every mode of a profile sees the same delay sequence
for the same send times, and a profile gets the same delays whether it is evaluated alone or in a sweep), then
scores the answers against the bag's ``annotations.jsonl``. With ``draws`` > 1 every profile is run under that
many delay sequences and the summary averages them (two draws of 30 s of lognormal delays differed by 0.06 in
SpotVLM's VQA accuracy). Model calls are memoized across runs (see :mod:`.memo`); nothing reads the wall
clock, so the same seed gives the same numbers.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.annotations import AnnotationIndex
from ...core.config import SpotVlmConfig
from ...core.latency import parse_latency_profile
from ...core.metrics import AgeStats, LatencyStats, age_stats, latency_stats
from ...core.types import NS_PER_S
from ...models.base import VlmBackend
from ..bag_reader import BagFrame, open_camera_bag
from ..clock import SimulatedClock
from ..events import Answered, RunLog
from ..simulator import Simulator
from .memo import MemoBackend
from .modes import MODES, build_mode
from .tasks import TaskItem, held_answers, primary_score, score_item, task_items


class EvalError(ValueError):
    """The evaluation cannot run as asked (no ground truth, unknown question id, empty bag...)."""


@dataclass
class RunResult:
    """The numbers of one (profile, task item, mode) run."""

    profile: str
    profile_index: int
    profile_mean_s: float
    mode: str
    item: TaskItem
    draw: int
    metrics: dict[str, Any]
    latency: LatencyStats
    age: AgeStats
    counts: dict[str, Any]
    cloud: dict[str, Any]
    latencies_s: list[float] = field(default_factory=list)
    age_timeline: list[tuple[float, float]] = field(default_factory=list)
    frames: Any = field(default=None, repr=False)  # per-frame rows (pyarrow Table) when asked for

    @property
    def score(self) -> float:
        return primary_score(self.item.task, self.metrics)

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "profile_index": self.profile_index,
            "profile_mean_s": self.profile_mean_s,
            "draw": self.draw,
            "mode": self.mode,
            "task": self.item.task,
            "item": self.item.key,
            "prompt": self.item.prompt,
            "score": self.score,
            "metrics": self.metrics,
            "latency": self.latency.to_json(),
            "context_age": self.age.to_json(),
            "counts": self.counts,
            "cloud": self.cloud,
            "latencies_s": self.latencies_s,
            "age_timeline": self.age_timeline,
        }


@dataclass
class EvalResults:
    """All runs of an evaluation plus what was run."""

    bag: str
    frames: int
    seed: int
    deadline_s: float
    modes: list[str]
    profiles: list[str]
    items: list[TaskItem]
    runs: list[RunResult] = field(default_factory=list)
    model_calls: dict[str, dict[str, int]] = field(default_factory=dict)

    def run(self, profile: str, item: TaskItem, mode: str, draw: int = 0) -> RunResult:
        return next(
            r
            for r in self.runs
            if r.profile == profile and r.item == item and r.mode == mode and r.draw == draw
        )

    def frames_table(self) -> Any:
        """The per-frame rows of every run as one pyarrow Table (empty when none were recorded)."""
        from .frames import concat

        return concat(r.frames for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "bag": self.bag,
            "frames": self.frames,
            "seed": self.seed,
            "deadline_s": self.deadline_s,
            "modes": self.modes,
            "profiles": self.profiles,
            "items": [{"key": i.key, "task": i.task, "prompt": i.prompt} for i in self.items],
            "model_calls": self.model_calls,
            "runs": [r.to_json() for r in self.runs],
        }


@dataclass
class EvalPlan:
    """What to evaluate; empty sequences and 0 take the config's values."""

    modes: Sequence[str] = ()
    tasks: Sequence[str] = ()
    profiles: Sequence[str] = ()
    questions: Sequence[str] = ()
    max_frames: int = 0
    draws: int = 1  # delay sequences per profile (the summary averages them)
    per_frame: bool = False  # keep per-frame records (see :mod:`.frames`)

    def resolve(self, config: SpotVlmConfig) -> EvalPlan:
        modes = list(self.modes or config.eval.modes)
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise EvalError(f"unknown mode(s) {unknown}; choose from {list(MODES)}")
        for spec in self.profiles:
            parse_latency_profile(spec, seed=0)  # ValueError names the bad part
        if self.draws < 1:
            raise EvalError(f"draws must be at least 1, got {self.draws}")
        return EvalPlan(
            modes=modes,
            tasks=list(self.tasks or config.eval.tasks),
            profiles=list(self.profiles or config.latency.profiles),
            questions=list(self.questions),
            max_frames=self.max_frames or config.eval.max_frames,
            draws=self.draws,
            per_frame=self.per_frame,
        )


class _Progress:
    """Counts camera messages for a progress callback."""

    def __init__(self, advance: Callable[[int], None] | None):
        self.advance = advance

    def on_input(self, item: BagFrame) -> None:
        if self.advance is not None:
            self.advance(1)

    def on_answer(self, answered: Answered) -> None:
        """Answers are not counted."""

    def on_skip(self, frame: Any) -> None:
        """Skips are not counted."""

    def on_context(self, result: Any, receive_ns: int, accepted: bool) -> None:
        """Contexts are not counted."""


def count_frames(bag: Path, topic: str, max_frames: int) -> int:
    """Camera messages an evaluation of ``bag`` reads per run."""
    with open_camera_bag(bag, topic) as camera:
        return min(camera.message_count, max_frames) if max_frames else camera.message_count


@dataclass
class EvalSetup:
    """A resolved plan with the bag's ground truth and the task items to ask."""

    bag: Path
    config: SpotVlmConfig
    plan: EvalPlan
    annotations: AnnotationIndex
    items: list[TaskItem]
    frames: int

    @property
    def runs(self) -> int:
        return len(self.plan.profiles) * self.plan.draws * len(self.items) * len(self.plan.modes)


def prepare_eval(bag: str | Path, config: SpotVlmConfig, plan: EvalPlan | None = None) -> EvalSetup:
    """Check the plan and the bag's ground truth; raises EvalError when there is nothing to evaluate."""
    plan = (plan or EvalPlan()).resolve(config)
    bag = Path(bag)
    with open_camera_bag(bag, config.camera.topic) as camera:
        annotations = camera.annotations
    if annotations is None or len(annotations) == 0:
        raise EvalError(f"{bag} has no ground truth ({bag}/annotations.jsonl); evaluation needs it")
    items = task_items(annotations, plan.tasks, config.eval.caption_prompt, plan.questions)
    if not items:
        raise EvalError(
            f"the annotations of {bag} have nothing for tasks {list(plan.tasks)} "
            f"and ids {list(plan.questions)}"
        )
    frames = count_frames(bag, config.camera.topic, plan.max_frames)
    if frames == 0:
        raise EvalError(f"{bag} has no camera messages")
    return EvalSetup(bag, config, plan, annotations, items, frames)


def run_eval(
    setup: EvalSetup,
    edge_backend: VlmBackend,
    cloud_backend: VlmBackend,
    advance: Callable[[int], None] | None = None,
    on_run: Callable[[RunResult], None] | None = None,
    jobs: int = 1,
) -> EvalResults:
    """Run every profile x item x mode of ``setup``.

    ``advance(n)`` reports camera messages done, ``on_run(run)`` each run as soon as it finishes.
    ``jobs`` > 1 runs them in that many worker processes (:mod:`.workers`: same runs, no ``advance``).
    """
    config, plan = setup.config, setup.plan
    edge = edge_backend if isinstance(edge_backend, MemoBackend) else MemoBackend(edge_backend)
    cloud = cloud_backend if isinstance(cloud_backend, MemoBackend) else MemoBackend(cloud_backend)
    edge_before, edge_misses_before = edge.hits + edge.misses, edge.misses
    cloud_before, cloud_misses_before = cloud.hits + cloud.misses, cloud.misses
    results = EvalResults(
        str(setup.bag),
        setup.frames,
        config.seed,
        config.eval.deadline_s,
        list(plan.modes),
        list(plan.profiles),
        setup.items,
    )
    progress = _Progress(advance)
    if jobs > 1:
        from .workers import run_in_workers, task_list

        results.runs, results.model_calls = run_in_workers(setup, task_list(setup), jobs, on_run)
        return results
    for index, profile in enumerate(plan.profiles):
        for draw in range(plan.draws):
            for item in setup.items:
                for mode in plan.modes:
                    run = _run_one(setup, profile, index, draw, item, mode, edge, cloud, progress)
                    results.runs.append(run)
                    if on_run is not None:
                        on_run(run)
    results.model_calls = {
        "edge": {
            "calls": edge.hits + edge.misses - edge_before,
            "computed": edge.misses - edge_misses_before,
        },
        "cloud": {
            "calls": cloud.hits + cloud.misses - cloud_before,
            "computed": cloud.misses - cloud_misses_before,
        },
    }
    return results


class SequenceKey:
    """The recording a bag message belongs to (its ground truth's ``sequence``), for ``itertools.groupby``.

    A message without ground truth (or without a frame) belongs to the recording before it.
    """

    def __init__(self, annotations: AnnotationIndex):
        self.annotations = annotations
        self.current = ""

    def __call__(self, item: BagFrame) -> str:
        annotation = self.annotations.get(item.stamp_ns)
        if annotation is not None and item.frame is not None:
            self.current = annotation.sequence
        return self.current


def merge_cloud_use(parts: Sequence[tuple[dict[str, Any], int]]) -> dict[str, Any]:
    """The cloud figures of a run's recordings in one: counts add up, fractions are frame-weighted."""
    frames = sum(n for _, n in parts)
    merged: dict[str, Any] = {}
    for figures, n in parts:
        for key, value in figures.items():
            if isinstance(value, float):
                merged[key] = merged.get(key, 0.0) + value * n / max(frames, 1)
            else:
                merged[key] = merged.get(key, 0) + value
    return merged


def latency_seed(seed: int, profile: str, draw: int) -> int:
    """The seed of a run's delay sequence: from the config's seed, the profile's spec and the draw."""
    return zlib.crc32(f"{seed}/{draw}/{profile}".encode())


def _run_one(
    setup: EvalSetup,
    profile: str,
    profile_index: int,
    draw: int,
    item: TaskItem,
    mode: str,
    edge: VlmBackend,
    cloud: VlmBackend,
    progress: _Progress,
) -> RunResult:
    bag, config, plan = setup.bag, setup.config, setup.plan
    latency = parse_latency_profile(profile, seed=latency_seed(config.seed, profile, draw))
    log = RunLog(sinks=[progress])
    cloud_parts: list[tuple[dict[str, Any], int]] = []
    with open_camera_bag(bag, config.camera.topic) as camera:
        items: Iterator[BagFrame] = iter(camera)
        if plan.max_frames:
            items = itertools.islice(items, plan.max_frames)
        origin: int | None = None
        for _, group in itertools.groupby(items, key=SequenceKey(setup.annotations)):
            sequence = iter(group)
            first = next(sequence)
            origin = first.stamp_ns if origin is None else origin
            clock = SimulatedClock(first.stamp_ns)
            run = build_mode(
                MODES[mode],
                config,
                task=item.task,
                prompt=item.prompt,
                edge_backend=edge,
                cloud_backend=cloud,
                latency=latency,
                clock=clock,
                origin_ns=first.stamp_ns,
                on_result=log.on_context,
            )
            before = len(log.frames)
            Simulator(run.answerer, clock, log, run.cloud).run(itertools.chain([first], sequence))
            cloud_parts.append((run.cloud_json(), len(log.frames) - before))
    if origin is None:
        raise EvalError(f"{bag} has no camera messages")
    records = sorted(log.answered, key=lambda r: r.stamp_ns)
    held = held_answers(sorted(log.frames), records)
    latencies = [r.latency_s for r in records]
    profile_mean_s = float(latency.mean_s) + config.cloud.step_time_s
    frames = None
    if plan.per_frame:
        from .frames import frame_table

        frames = frame_table(
            profile=profile,
            profile_mean_s=profile_mean_s,
            draw=draw,
            mode=mode,
            item=item,
            annotations=setup.annotations,
            held=held,
            own=(r.stamp_ns for r in records),
            contexts=(c.result for c in log.contexts),
        )
    return RunResult(
        profile=profile,
        profile_index=profile_index,
        draw=draw,
        profile_mean_s=profile_mean_s,
        mode=mode,
        item=item,
        metrics=score_item(item, setup.annotations, held),
        latency=latency_stats(latencies, config.eval.deadline_s),
        age=age_stats([r.answer.context_age_s for r in records]),
        counts=log.counts() | {"sequences": len(cloud_parts)},
        cloud=merge_cloud_use(cloud_parts),
        latencies_s=latencies,
        age_timeline=[((r.stamp_ns - origin) / NS_PER_S, r.answer.context_age_s) for r in records],
        frames=frames,
    )
