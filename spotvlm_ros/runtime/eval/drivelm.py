"""``spotvlm eval`` on an imported DriveLM bag: every question at its key frame, scored per DriveLM group.

A DriveLM question belongs to one key frame. Each (latency profile, mode, question) run replays the question's
drive (its ground truth's ``sequence``: one nuScenes scene) from the drive's first frame up to and including
the key frame on a fresh simulated clock, the question being the prompt on every frame (so the LVLM's late
answers to it at earlier keyframes are the SVLM's context, as in any SpotVLM run), and keeps the answer held
at the key frame (its own, else the newest answer available by its capture time; none = skipped). The
answers are scored with :mod:`spotvlm_ros.core.drivelm_metrics` per group (perception, prediction,
planning, behavior) and over all. DriveLM's GPT score is not computed.

Drives are independent on the simulated clock, so ``jobs`` > 1 runs them in worker processes, each with its
own backends (for an OpenAI-compatible endpoint: that many concurrent requests); the answers do not depend
on it when the step times are fixed (``edge.step_time_s``, ``cloud.step_time_s``), as in every simulated run.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import Reader

from ...core.annotations import AnnotationIndex, FrameAnnotation, VqaItem
from ...core.config import SpotVlmConfig
from ...core.drivelm_metrics import GPT_NOT_COMPUTED, ScoredItem, TagRef, score_by_group
from ...core.latency import parse_latency_profile
from ...core.types import NS_PER_S
from ...models.base import VlmBackend
from ..bag_reader import IMAGE_TYPES
from ..camera_set import open_cameras
from ..clock import SimulatedClock
from ..events import RunLog
from ..simulator import Simulator
from ..typestore import spotvlm_typestore
from .drive_frames import DEFAULT_BUDGET_BYTES, DriveFrames
from .memo import worker_backends
from .modes import MODES, build_mode
from .runner import EvalError, latency_seed
from .tasks import held_answers, vqa_answer_text

GROUPS = ("perception", "prediction", "planning", "behavior")
REFERENCE_CAMERA = "CAM_FRONT"


def has_drivelm_truth(annotations: AnnotationIndex | None) -> bool:
    """Whether the ground truth holds grouped (DriveLM) questions."""
    return annotations is not None and any(q.group for a in annotations.items.values() for q in a.vqa)


@dataclass(frozen=True)
class Question:
    """One DriveLM question at its key frame."""

    sequence: str
    frame_stamp_ns: int  # the ground truth's stamp
    stamp_ns: int  # the evaluated camera's image of the key frame
    item: VqaItem

    @property
    def key(self) -> str:
        return f"{self.frame_stamp_ns}/{self.item.id}"


def camera_stamp(frame: FrameAnnotation, camera: str) -> int:
    """The stamp of ``camera``'s image of an annotated instant (the annotation's own stamp by default)."""
    return dict(frame.cameras).get(camera, frame.stamp_ns)


def select_questions(
    annotations: AnnotationIndex,
    camera: str,
    groups: Sequence[str] = GROUPS,
    per_group: int = 0,
    ids: Sequence[str] = (),
) -> list[Question]:
    """The questions of ``groups`` in stamp order.

    ``ids`` keeps only those item ids (``planning-6``: the 7th planning question of each key frame);
    ``per_group`` > 0 then keeps the first N per group and frame.
    """
    chosen: list[Question] = []
    for stamp in sorted(annotations.items):
        frame = annotations.items[stamp]
        on_camera = camera_stamp(frame, camera)
        for group in groups:
            items = [q for q in frame.vqa if q.group == group and (not ids or q.id in ids)]
            chosen += [Question(frame.sequence, stamp, on_camera, q) for q in items[: per_group or None]]
    return chosen


def choose_topics(bag: Path, config: SpotVlmConfig) -> list[str]:
    """The camera topics to read; the first is the reference, whose stamps are the questions' frames.

    ``camera.topics`` (or ``camera.topic``) when set, else CAM_FRONT's topic, else the only image topic.
    """
    if config.camera.topics or config.camera.topic:
        return list(config.camera.camera_topics)
    reader = Reader(bag)
    reader.open()
    try:
        topics = sorted({c.topic for c in reader.connections if c.msgtype in IMAGE_TYPES})
    finally:
        reader.close()
    front = [t for t in topics if t.strip("/").split("/")[0] == REFERENCE_CAMERA]
    if front:
        return front[:1]
    if len(topics) == 1:
        return topics
    raise EvalError(f"{bag}: several image topics and none of {REFERENCE_CAMERA}; set camera.topic: {topics}")


@dataclass
class TopicIndex:
    """What the headers of the camera topics say.

    Per topic: its camera (the messages' frame id) and the log time of each stamp; per drive of the
    reference topic (the first), the log time of its first message.
    """

    cameras: list[str] = field(default_factory=list)
    logs: list[dict[int, int]] = field(default_factory=list)
    drive_starts: dict[str, int] = field(default_factory=dict)

    def first_log(self, frame: FrameAnnotation) -> int | None:
        """The log time of the first camera message of an annotated instant (None: none found)."""
        found = [
            logs.get(camera_stamp(frame, camera))
            for camera, logs in zip(self.cameras, self.logs, strict=True)
        ]
        return min((v for v in found if v is not None), default=None)

    def stop_after(self, frame: FrameAnnotation) -> int | None:
        """The log time just after the last camera message of an annotated instant (None: one missing)."""
        found = [
            logs.get(camera_stamp(frame, camera))
            for camera, logs in zip(self.cameras, self.logs, strict=True)
        ]
        return None if None in found else max(v for v in found if v is not None) + 1


def index_topics(bag: Path, topics: Sequence[str], annotations: AnnotationIndex) -> TopicIndex:
    """Read the topics' headers only (no image decoded).

    A message of the reference topic without ground truth is in the drive before it.
    """
    store = spotvlm_typestore()
    index = TopicIndex()
    reader = Reader(bag)
    reader.open()
    try:
        for number, topic in enumerate(topics):
            connections = [c for c in reader.connections if c.topic == topic]
            if not connections:
                raise EvalError(f"{bag}: no topic {topic}")
            camera, logs = "", {}
            current = ""
            by_stamp: dict[int, FrameAnnotation] = {}
            for conn, log_ns, raw in reader.messages(connections):
                header = store.deserialize_cdr(raw, conn.msgtype).header
                if not camera:
                    camera = str(header.frame_id)
                    by_stamp = {camera_stamp(a, camera): a for a in annotations.items.values()}
                stamp_ns = int(header.stamp.sec) * NS_PER_S + int(header.stamp.nanosec)
                logs[stamp_ns] = log_ns
                if number == 0:
                    truth = by_stamp.get(stamp_ns)
                    current = truth.sequence if truth is not None else current
                    index.drive_starts.setdefault(current, log_ns)
            index.cameras.append(camera)
            index.logs.append(logs)
    finally:
        reader.close()
    return index


@dataclass
class DriveJob:
    """The runs of one drive: every profile x question x mode."""

    bag: str
    topics: list[str]
    config: dict[str, Any]
    sequence: str
    start_log_ns: int
    questions: list[tuple[Question, int]]  # with the log time just after the key frame's messages
    modes: list[str]
    profiles: list[str]
    cache_bytes: int = DEFAULT_BUDGET_BYTES


@dataclass(frozen=True)
class QuestionAnswer:
    """The answer a mode held at a question's key frame (``None``: none), with its latency and context age."""

    profile: str
    mode: str
    question: str
    group: str
    answer: str | None
    own: bool
    latency_s: float | None = None
    context_age_s: float | None = None


def run_drive(job: DriveJob, edge: VlmBackend, cloud: VlmBackend) -> list[QuestionAnswer]:
    """Every run of a drive, in (profile, question, mode) order."""
    config = SpotVlmConfig.model_validate(job.config)
    last = max(stop for _, stop in job.questions)
    frames = DriveFrames(
        job.bag, job.topics, config.camera.sync_slop_s, job.start_log_ns, last, job.cache_bytes
    )
    answers = []
    for profile in job.profiles:
        seed = latency_seed(config.seed, profile, 0)
        for question, log_ns in job.questions:
            for mode in job.modes:
                latency = parse_latency_profile(profile, seed=seed)
                run = _run_question(frames, config, profile, mode, question, log_ns, latency, edge, cloud)
                answers.append(run)
    return answers


def _run_question(
    frames: DriveFrames,
    config: SpotVlmConfig,
    profile: str,
    mode: str,
    question: Question,
    log_ns: int,
    latency: Any,
    edge: VlmBackend,
    cloud: VlmBackend,
) -> QuestionAnswer:
    log = RunLog()
    items = frames.frames(log_ns)
    first = next(items, None)
    if first is None:
        raise EvalError(f"{frames.bag}: no camera message up to the key frame of {question.key}")
    clock = SimulatedClock(first.stamp_ns)
    run = build_mode(
        MODES[mode],
        config,
        task="vqa",
        prompt=question.item.question,
        edge_backend=edge,
        cloud_backend=cloud,
        latency=latency,
        clock=clock,
        origin_ns=first.stamp_ns,
        on_result=log.on_context,
    )
    Simulator(run.answerer, clock, log, run.cloud).run(itertools.chain([first], items))
    records = sorted(log.answered, key=lambda r: r.stamp_ns)
    held = dict(held_answers(sorted(log.frames), records))
    answer = held.get(question.stamp_ns)
    own = next((r for r in records if r.stamp_ns == question.stamp_ns), None)
    return QuestionAnswer(
        profile,
        mode,
        question.key,
        question.item.group,
        None if answer is None else vqa_answer_text(answer),
        own is not None,
        None if own is None else own.latency_s,
        None if answer is None else answer.context_age_s,
    )


def _worker(job: DriveJob) -> list[QuestionAnswer]:
    """A drive in a worker process, with backends of its own."""
    edge, cloud = worker_backends(SpotVlmConfig.model_validate(job.config))
    try:
        return run_drive(job, edge, cloud)
    finally:
        cloud.close()
        edge.close()


@dataclass
class DriveLmResults:
    """Every answer and the metric table per (profile, mode) and group."""

    bag: str
    topics: list[str]
    modes: list[str]
    profiles: list[str]
    drives: int
    questions: list[Question]
    answers: list[QuestionAnswer] = field(default_factory=list)

    def table(self) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
        """Metrics by profile, mode and group (and ``all``)."""
        by_key = {q.key: q for q in self.questions}
        out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        for profile in self.profiles:
            for mode in self.modes:
                scored = [
                    _scored(by_key[a.question], a.answer)
                    for a in self.answers
                    if a.profile == profile and a.mode == mode
                ]
                out.setdefault(profile, {})[mode] = score_by_group(scored, GROUPS)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "bag": self.bag,
            "topics": self.topics,
            "modes": self.modes,
            "profiles": self.profiles,
            "drives": self.drives,
            "questions": len(self.questions),
            "gpt_score": GPT_NOT_COMPUTED,
            "metrics": self.table(),
            "answers": [asdict(a) for a in self.answers],
        }


def _scored(question: Question, answer: str | None) -> ScoredItem:
    item = question.item
    tags = tuple(TagRef(o.id, o.camera, o.center[0], o.center[1]) for o in item.objects)
    return ScoredItem(item.group, item.question, item.answer, answer, item.metrics, item.options, tags)


def run_drivelm_eval(
    bag: str | Path,
    config: SpotVlmConfig,
    *,
    modes: Sequence[str],
    profiles: Sequence[str],
    groups: Sequence[str] = GROUPS,
    per_group: int = 0,
    ids: Sequence[str] = (),
    jobs: int = 1,
    cache_bytes: int = DEFAULT_BUDGET_BYTES,
    backends: Callable[[], tuple[VlmBackend, VlmBackend]] | None = None,
    on_drive: Callable[[str, int], None] | None = None,
) -> DriveLmResults:
    """Evaluate ``modes`` x ``profiles`` on the chosen questions; ``backends()`` gives the in-process pair."""
    bag = Path(bag)
    unknown = [m for m in modes if m not in MODES] + [g for g in groups if g not in GROUPS]
    if unknown:
        raise EvalError(f"unknown mode(s) or group(s) {unknown}; modes {list(MODES)}, groups {list(GROUPS)}")
    if jobs < 1:
        raise EvalError(f"jobs must be at least 1, got {jobs}")
    topics = choose_topics(bag, config)
    with open_cameras(bag, topics, config.camera.sync_slop_s) as camera:
        annotations = camera.annotations
    if not has_drivelm_truth(annotations):
        raise EvalError(f"{bag} has no DriveLM ground truth (grouped questions in annotations.jsonl)")
    assert annotations is not None
    index = index_topics(bag, topics, annotations)
    questions = select_questions(annotations, index.cameras[0], groups, per_group, ids)
    if not questions:
        raise EvalError(f"{bag}: no DriveLM question of groups {list(groups)} and ids {list(ids)}")
    jobs_list = _drive_jobs(bag, topics, config, questions, index, annotations, list(modes), list(profiles))
    for job in jobs_list:
        job.cache_bytes = cache_bytes
    results = DriveLmResults(str(bag), topics, list(modes), list(profiles), len(jobs_list), questions)
    if jobs == 1 or len(jobs_list) == 1:
        if backends is None:
            raise EvalError("in-process evaluation needs backends")
        edge, cloud = backends()
        for job in jobs_list:
            results.answers += run_drive(job, edge, cloud)
            if on_drive is not None:
                on_drive(job.sequence, len(job.questions))
        return results
    context = multiprocessing.get_context("spawn")  # torch and threads do not survive fork
    with ProcessPoolExecutor(max_workers=min(jobs, len(jobs_list)), mp_context=context) as pool:
        for job, answers in zip(jobs_list, pool.map(_worker, jobs_list), strict=True):
            results.answers += answers
            if on_drive is not None:
                on_drive(job.sequence, len(job.questions))
    return results


def _drive_jobs(
    bag: Path,
    topics: list[str],
    config: SpotVlmConfig,
    questions: Sequence[Question],
    index: TopicIndex,
    annotations: AnnotationIndex,
    modes: list[str],
    profiles: list[str],
) -> list[DriveJob]:
    jobs: dict[str, DriveJob] = {}
    dumped = config.model_dump(mode="json")
    starts = dict(index.drive_starts)
    for stamp in sorted(annotations.items, reverse=True):  # the other cameras of a drive's first instant
        frame = annotations.items[stamp]
        first = index.first_log(frame)
        if frame.sequence in starts and first is not None:
            starts[frame.sequence] = min(index.drive_starts[frame.sequence], first)
    for question in questions:
        stop = index.stop_after(annotations.items[question.frame_stamp_ns])
        if stop is None:
            raise EvalError(f"{bag}: a camera of {topics} has no image at the key frame of {question.key}")
        start = starts[question.sequence]
        job = jobs.setdefault(
            question.sequence,
            DriveJob(str(bag), topics, dumped, question.sequence, start, [], modes, profiles),
        )
        job.questions.append((question, stop))
    return list(jobs.values())
