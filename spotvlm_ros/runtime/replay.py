"""``spotvlm replay``: a bag in, the SpotVLM loop on a chosen clock, an output bag and JSONL records out.

Several cameras (``camera.topics``) are read as frame groups (:mod:`.camera_set`, ``camera.sync_slop_s``),
each camera copied onto its own topic of the output bag. The loop is the one the ROS nodes run:
:class:`EdgeRuntime` on the newest frame (latest wins) and a
:class:`CloudClient` sending keyframes to the LVLM. ``clock="simulated"`` replays on the virtual clock
(cloud delays from ``latency.profile`` under ``seed``; SVLM busy for ``edge.step_time_s`` or its measured
time), ``clock="realtime"`` on the wall clock with real model and network latency. With ``out_dir`` the
run writes ``out_dir/bag`` (input frames copied, answers, contexts, detections, markers, focus images;
an earlier run's bag there is replaced), ``out_dir/records.jsonl`` and ``out_dir/summary.json``. The
state of the cloud link and the freshness of the context the edge used are logged once per change
(:mod:`.link_state`) and summarized under ``link``.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import SpotVlmConfig
from ..core.context_store import ContextStore
from ..core.keyframes import KeyframePolicy
from ..core.latency import parse_latency_profile
from ..core.metrics import age_stats, latency_stats
from ..core.types import NS_PER_S, Frame, LvlmResult
from ..models.base import VlmBackend
from ..models.factory import create_backend
from .bag_reader import BagFrame, CameraBag
from .bag_writer import OutputBag
from .camera_set import CameraSetBag, CameraSetOutputBag, HeldMessages, open_cameras
from .clock import SimulatedClock, WallClock
from .cloud import CloudClient, DelaySampler, LvlmQuery, SimulatedDispatcher, ThreadDispatcher, wants_regions
from .edge import EdgeRuntime
from .events import Answered, FrameRecord, RunLog
from .link_state import CloudLinkState, ContextFreshness
from .realtime import RealtimeRunner
from .simulator import Simulator

CLOCKS = ("simulated", "realtime")


class BagSink:
    """Writes a run's events into an :class:`OutputBag` and its JSONL records (thread-safe)."""

    def __init__(self, bag: OutputBag):
        self.bag = bag
        self._lock = threading.Lock()

    def on_camera(self, topic: str, item: BagFrame) -> None:
        """One message of one camera of several, copied onto its topic (the group comes to on_input)."""
        if item.frame is not None and isinstance(self.bag, CameraSetOutputBag):
            with self._lock:
                self.bag.write_camera(topic, item)

    def on_input(self, item: BagFrame) -> None:
        with self._lock:
            if item.frame is not None:
                if not item.frame.cameras:  # a group's cameras were copied by on_camera
                    self.bag.write_frame(item)
            else:
                self.bag.write_record(
                    {"type": "unreadable", "index": item.index, "log_ns": item.log_ns, "error": item.error}
                )

    def on_answer(self, answered: Answered) -> None:
        record = FrameRecord.of(answered)
        with self._lock:
            self.bag.write_answer(answered.step.answer, answered.finish_ns, answered.frame)
            self.bag.write_record({"type": "answer", **record.to_json()})

    def on_skip(self, frame: Frame) -> None:
        with self._lock:
            self.bag.write_record({"type": "skip", "stamp_ns": frame.stamp_ns})

    def on_context(self, result: LvlmResult, receive_ns: int, accepted: bool) -> None:
        with self._lock:
            self.bag.write_context(result, receive_ns)
            self.bag.write_record(
                {
                    "type": "context",
                    "request_id": result.request_id,
                    "stamp_ns": result.stamp_ns,
                    "receive_ns": receive_ns,
                    "accepted": accepted,
                    "text": result.text,
                    "regions": len(result.regions),
                    "round_trip_s": result.round_trip_s,
                }
            )


@dataclass
class ReplaySummary:
    """What a replay did; ``to_json`` is what ``summary.json`` holds."""

    bag: str
    topic: str
    clock: str
    task: str
    edge_model: str
    cloud_model: str
    counts: dict[str, Any]
    latency: dict[str, Any]
    context_age: dict[str, Any]
    cloud: dict[str, Any]
    read: dict[str, Any]
    wall_s: float
    outputs: dict[str, str] = field(default_factory=dict)
    link: dict[str, Any] = field(default_factory=dict)

    @property
    def frames_per_s(self) -> float:
        """Camera messages processed per wall second."""
        return self.counts["messages"] / self.wall_s if self.wall_s > 0 else 0.0

    def to_json(self, include_wall_time: bool = True) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if include_wall_time:
            data["frames_per_s"] = self.frames_per_s
        else:
            del data["wall_s"]
        return data

    def lines(self) -> list[str]:
        """A short human-readable account."""
        c, lat, age, cloud = self.counts, self.latency, self.context_age, self.cloud
        return [
            f"replayed {self.bag} ({self.topic}) on the {self.clock} clock, task {self.task}",
            f"  models: edge {self.edge_model}, cloud {self.cloud_model}",
            f"  frames: {c['messages']} messages, {c['answered']} answered, "
            f"{c['skipped_latest_wins']} skipped (latest wins), {c['unreadable']} unreadable "
            f"{c['unreadable_by_reason'] or ''}".rstrip(),
            f"  latency: p50 {lat['p50_s'] * 1000:.0f} ms, p95 {lat['p95_s'] * 1000:.0f} ms, "
            f"{lat['deadline_misses']} over the {lat['deadline_s']} s deadline",
            f"  context: {age['with_context']}/{age['frames']} answers used LVLM context, mean age "
            f"{age['mean_s']:.2f} s",
            f"  cloud: {cloud['requests']} requests, {cloud['bytes_sent'] / 1e6:.2f} MB sent, "
            f"{cloud['accepted']} contexts accepted, {cloud['out_of_order']} out of order, "
            f"{cloud['timeouts']} timed out, {cloud['preempted']} preempted, {cloud['errors']} failed",
            f"  wall time {self.wall_s:.2f} s ({self.frames_per_s:.1f} frames/s)",
        ] + self._link_lines()

    def _link_lines(self) -> list[str]:
        if not self.link:
            return []
        cloud, context = self.link["cloud"], self.link["context"]
        return [
            f"  link: cloud {cloud['state']} at the end ({cloud['changes']} changes), context "
            f"{context['state']} at the end ({context['changes']} changes)"
        ]


def replay_bag(
    bag: str | Path,
    config: SpotVlmConfig,
    *,
    clock: str = "simulated",
    out_dir: str | Path | None = None,
    max_frames: int = 0,
    rate: float = 1.0,
    edge_backend: VlmBackend | None = None,
    cloud_backend: VlmBackend | None = None,
    focus_image_every: int = 1,
    focus_image_max_side: int = 1280,
    advance: Callable[[int], None] | None = None,
) -> ReplaySummary:
    """Replay ``bag`` through the SpotVLM loop; backends default to the ones ``config`` names.

    Annotated focus images in the output bag are downscaled to ``focus_image_max_side`` (0 = full size),
    so a high-resolution camera does not write hundreds of MB per frame.
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    started = time.perf_counter()
    edge_backend = edge_backend or create_backend(config.edge, "edge")
    cloud_backend = cloud_backend or create_backend(config.cloud, "cloud")
    out = Path(out_dir) if out_dir is not None else None
    # camera messages read before the output bag is open; nothing is held when no bag is written
    held = HeldMessages() if out is not None else None
    with open_cameras(bag, config.camera.camera_topics, config.camera.sync_slop_s, on_message=held) as camera:
        source = iter(camera)
        if max_frames:
            source = itertools.islice(source, max_frames)
        first = next(source, None)
        origin = first.stamp_ns if first is not None else 0
        items = itertools.chain([first], source) if first is not None else iter(())
        if advance is not None:
            items = _counting(items, advance)
        output = None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            _remove_previous_bag(out / "bag")
            output = _output_bag(out, camera, focus_image_every, focus_image_max_side)
            output.open()
        freshness = ContextFreshness(config.context.max_context_age_s)
        sinks: list = [freshness]
        if output is not None:
            sink = BagSink(output)
            sinks.append(sink)
            held.attach(sink.on_camera)
        log = RunLog(sinks=sinks)
        try:
            cloud, answerer, runner = _assemble(config, clock, origin, rate, edge_backend, cloud_backend, log)
            runner.run(items)
        finally:
            if output is not None:
                output.close()
        read = camera.stats.as_dict()
    wall = time.perf_counter() - started
    records = log.answered
    summary = ReplaySummary(
        bag=str(bag),
        topic=camera.topic,
        clock=clock,
        task=config.task,
        edge_model=edge_backend.name,
        cloud_model=cloud_backend.name,
        counts=log.counts(),
        latency=latency_stats([r.latency_s for r in records], config.eval.deadline_s).to_json(),
        context_age=age_stats([r.answer.context_age_s for r in records]).to_json(),
        cloud=cloud.stats.to_json(),
        read=read,
        wall_s=wall,
        link={"cloud": cloud.link.summary(), "context": freshness.summary()},
    )
    if out is not None:
        summary.outputs = {"bag": str(out / "bag"), "records": str(out / "records.jsonl")}
        summary.outputs["summary"] = str(out / "summary.json")
        (out / "summary.json").write_text(
            json.dumps(summary.to_json(), indent=1, sort_keys=True, default=str)
        )
    return summary


def _output_bag(out: Path, camera: CameraBag | CameraSetBag, every: int, max_side: int) -> OutputBag:
    """The run's output bag: the input camera topic(s) copied, answers, contexts, focus images."""
    common = {
        "records_path": out / "records.jsonl",
        "focus_image_every": every,
        "focus_image_max_side": max_side,
    }
    if isinstance(camera, CameraSetBag):
        return CameraSetOutputBag(out / "bag", input_topics=camera.msgtypes, **common)
    return OutputBag(out / "bag", input_topic=camera.topic, input_msgtype=camera.msgtype, **common)


def _remove_previous_bag(path: Path) -> None:
    """An earlier run's output bag is replaced; anything else at that path is left alone (and refused)."""
    if path.is_dir() and (not any(path.iterdir()) or (path / "metadata.yaml").is_file()):
        shutil.rmtree(path)


def _counting(items, advance: Callable[[int], None]):
    for item in items:
        advance(1)
        yield item


def _assemble(
    config: SpotVlmConfig,
    clock_name: str,
    origin: int,
    rate: float,
    edge_backend: VlmBackend,
    cloud_backend: VlmBackend,
    log: RunLog,
) -> tuple[CloudClient, EdgeRuntime, Simulator | RealtimeRunner]:
    store = ContextStore.from_config(config.context)
    query = LvlmQuery(cloud_backend, config, config.task, config.prompt, wants_regions(config, config.task))
    policy = KeyframePolicy(config.keyframes)
    if clock_name == "simulated":
        clock = SimulatedClock(origin)
        latency = parse_latency_profile(config.latency.profile, seed=config.seed)
        dispatcher = SimulatedDispatcher(
            clock, DelaySampler(clock, latency, config.cloud.step_time_s, origin)
        )
        step_time = config.edge.step_time_s
    else:
        clock = WallClock(rate)
        cancel = getattr(cloud_backend, "cancel", None)
        dispatcher = ThreadDispatcher(
            clock, max_workers=config.keyframes.max_in_flight, cancel_backend=cancel
        )
        step_time = 0.0
    cloud = CloudClient(
        query,
        store,
        clock,
        dispatcher,
        policy,
        config.keyframes.timeout_s,
        log.on_context,
        preempt_after_s=config.keyframes.preempt_after_s,
        link=CloudLinkState(now_s=lambda: clock.now_ns() / NS_PER_S),
    )
    edge = EdgeRuntime(edge_backend, config, store, step_time_s=step_time)
    if isinstance(clock, SimulatedClock):
        return cloud, edge, Simulator(edge, clock, log, cloud)
    return cloud, edge, RealtimeRunner(edge, clock, log, cloud)
