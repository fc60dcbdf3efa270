"""``spotvlm bench soak``: a long run of the SpotVLM loop; memory must not grow and no frame may go missing.

A camera at ``--fps`` (30) feeds the loop the edge node runs: :class:`EdgeRuntime` on the newest frame
(latest wins), :class:`CloudClient` sending keyframes, LVLM answers landing in the context store and
steering Context Replacement and Visual Focus. The SVLM is slow (``--step-s`` 0.2 s per answer, so
most frames are skipped by design); the LVLM is an instant canned grounding model whose answers arrive
after the ``--profile`` delay. Frames come from a pre-rendered synthetic-world clip played in a loop.

- Default: ``--minutes`` (30) of simulated time on the virtual clock (54,000 frames), as fast as the
  machine allows.
- ``--wall-s N``: N seconds on the wall clock with threads (the wall-clock runner), the SVLM and LVLM
  paced to take their time for real.

Figures (last line ``BENCH soak {...}``):

- ``ticks_answered_fraction`` = (frames answered + frames skipped by design) / frames that arrived. A
  frame is *skipped by design* when a newer frame replaced it in the one-frame slot while the SVLM was
  busy (latest wins); any frame neither answered nor skipped so is lost. Target >= 0.99.
- ``rss_growth_fraction`` = (resident memory at the end - after warm-up) / after warm-up, both after a
  garbage collection; warm-up is the first ``--warmup`` fraction (0.1) of the run. Target <= 0.05.
- ``max_container_len``: the longest list, dict, deque or set reachable from the loop's objects at the
  end; ``containers_grown``: those longer at the end than after warm-up by more than 10 entries, with
  both lengths (bounded caches may still be filling up to their capacity after warm-up).
- queue depths: frames waiting for the SVLM (at most 1), LVLM requests in flight, clock events pending
  (simulated clock only);
  answer gaps and latency of the answers.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import SpotVlmConfig, load_config
from ..core.context_store import ContextStore
from ..core.keyframes import KeyframePolicy
from ..core.latency import parse_latency_profile
from ..core.types import NS_PER_S, Frame, LvlmResult
from ..models.base import Generation
from ..models.zero import ZeroCostBackend
from ..runtime.bag_reader import BagFrame
from ..runtime.clock import SimulatedClock, WallClock
from ..runtime.cloud import (
    CloudClient,
    DelaySampler,
    LvlmQuery,
    SimulatedDispatcher,
    ThreadDispatcher,
    wants_regions,
)
from ..runtime.edge import EdgeRuntime
from ..runtime.events import Answered, FrameRecord
from ..runtime.link_state import CloudLinkState
from ..runtime.realtime import RealtimeRunner
from ..runtime.simulator import Simulator
from . import bench_line

START_NS = 1_700_000_000 * NS_PER_S
LATENCIES_KEPT = 20_000
GROWTH_SLACK = 10
_MAX_DEPTH = 5


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc/self/statm``; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil  # not a dependency on Linux

        return int(psutil.Process().memory_info().rss)


class CannedGroundingCloud(ZeroCostBackend):
    """An instant LVLM for load runs: one fixed sentence and two regions at fixed fractions of the image."""

    BOXES = ((0.55, 0.2, 0.7, 0.45, "traffic light"), (0.2, 0.55, 0.45, 0.85, "car"))

    def __init__(self) -> None:
        super().__init__(name="canned:cloud", answer="The light is red; a car waits at the stop line.")

    def generate(self, messages, images, *, max_new_tokens=None, want_regions=False) -> Generation:
        generation = super().generate(messages, images, max_new_tokens=max_new_tokens)
        if not (want_regions and images):
            return generation
        height, width = images[0].shape[:2]
        boxes = [{"bbox_2d": [x1 * width, y1 * height, x2 * width, y2 * height], "label": label}
                 for x1, y1, x2, y2, label in self.BOXES]  # fmt: skip
        from ..models.grounding import parse_regions  # the real parser, as a real LVLM answer takes

        parse = parse_regions(json.dumps(boxes), (width, height))
        return Generation(self.answer, parse.regions, generation.prompt_tokens, generation.image_tokens, 0.0)


class PacedBackend:
    """A backend whose calls take at least ``seconds()`` of wall time (modelled compute or network)."""

    def __init__(self, inner: ZeroCostBackend, seconds: Callable[[], float]) -> None:
        self.inner, self.seconds = inner, seconds
        self.name = f"paced:{inner.name}"

    def generate(self, messages, images, **kwargs) -> Generation:
        deadline = time.monotonic() + self.seconds()
        generation = self.inner.generate(messages, images, **kwargs)
        time.sleep(max(0.0, deadline - time.monotonic()))
        return generation

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def image_tokens(self, width: int, height: int) -> int:
        return self.inner.image_tokens(width, height)

    def close(self) -> None:
        self.inner.close()


class SoakSink:
    """Counts a run's events with bounded memory; writes the per-frame JSONL records to ``records``."""

    def __init__(self, records: Path) -> None:
        self._file = records.open("w", buffering=1 << 16)
        self._lock = threading.Lock()
        self.inputs = self.answered = self.skipped = self.contexts = self.accepted = 0
        self.latencies: deque[float] = deque(maxlen=LATENCIES_KEPT)
        self.max_gap_s = 0.0
        self._last_finish_ns: int | None = None

    def on_input(self, item: BagFrame) -> None:
        with self._lock:
            self.inputs += 1

    def on_answer(self, answered: Answered) -> None:
        record = FrameRecord(
            answered.step.answer,
            answered.start_ns,
            answered.finish_ns,
            answered.latency_s,
            answered.step.error,
        )
        with self._lock:
            self.answered += 1
            self.latencies.append(answered.latency_s)
            if self._last_finish_ns is not None:
                self.max_gap_s = max(self.max_gap_s, (answered.finish_ns - self._last_finish_ns) / NS_PER_S)
            self._last_finish_ns = answered.finish_ns
            self._file.write(json.dumps({"type": "answer", **record.to_json()}) + "\n")

    def on_skip(self, frame: Frame) -> None:
        with self._lock:
            self.skipped += 1
            self._file.write(f'{{"type": "skip", "stamp_ns": {frame.stamp_ns}}}\n')

    def on_context(self, result: LvlmResult, receive_ns: int, accepted: bool) -> None:
        with self._lock:
            self.contexts += 1
            self.accepted += int(accepted)

    def close(self) -> None:
        self._file.close()


def container_sizes(roots: dict[str, object], skip: Sequence[object] = ()) -> dict[str, int]:
    """Length of every list/dict/deque/set reachable from ``roots`` through SpotVLM objects, by path.

    Objects in ``skip`` (e.g. the soak's own sink) are not entered.
    """
    sizes: dict[str, int] = {}
    seen: set[int] = {id(obj) for obj in skip}

    def walk(value: object, path: str, depth: int) -> None:
        if id(value) in seen or depth > _MAX_DEPTH:
            return
        seen.add(id(value))
        if isinstance(value, (list, dict, deque, set, frozenset, tuple)) and not isinstance(value, str):
            sizes[path] = len(value)
            items = value.values() if isinstance(value, dict) else value
            for index, item in enumerate(list(items)[:64]):
                if _is_ours(item) or isinstance(item, (list, dict, deque)):
                    walk(item, f"{path}[{index}]", depth + 1)
            return
        if _is_ours(value):
            for name, attr in _attributes(value):
                walk(attr, f"{path}.{name}", depth + 1)

    for name, root in roots.items():
        walk(root, name, 0)
    return sizes


def _is_ours(value: object) -> bool:
    return type(value).__module__.startswith("spotvlm_ros")


def _attributes(value: object) -> Iterator[tuple[str, object]]:
    names = list(getattr(value, "__dict__", {}))
    for cls in type(value).__mro__:
        names += [s for s in getattr(cls, "__slots__", ()) if isinstance(s, str)]
    for name in dict.fromkeys(names):
        if hasattr(value, name):
            yield name, getattr(value, name)


class Loop:
    """The SpotVLM loop under test and the probes the soak reads from it."""

    def __init__(self, config: SpotVlmConfig, sink: SoakSink, wall: bool, step_s: float) -> None:
        self.store = ContextStore.from_config(config.context)
        latency = parse_latency_profile(config.latency.profile, seed=config.seed)
        cloud_backend = CannedGroundingCloud()
        if wall:
            self.clock = WallClock(1.0)
            self.edge_backend = PacedBackend(ZeroCostBackend("zero:edge"), lambda: step_s)
            started = time.monotonic()
            cloud = PacedBackend(cloud_backend, lambda: max(0.0, latency.sample(time.monotonic() - started)))
            self.dispatcher = ThreadDispatcher(self.clock, max_workers=config.keyframes.max_in_flight)
        else:
            self.clock = SimulatedClock(START_NS)
            self.edge_backend, cloud = ZeroCostBackend("zero:edge"), cloud_backend
            delay = DelaySampler(self.clock, latency, config.cloud.step_time_s, START_NS)
            self.dispatcher = SimulatedDispatcher(self.clock, delay)
        self.cloud = CloudClient(
            LvlmQuery(cloud, config, config.task, config.prompt, wants_regions(config, config.task)),
            self.store,
            self.clock,
            self.dispatcher,
            KeyframePolicy(config.keyframes),
            config.keyframes.timeout_s,
            sink.on_context,
            preempt_after_s=config.keyframes.preempt_after_s,
            link=CloudLinkState(now_s=lambda: self.clock.now_ns() / NS_PER_S),
        )
        self.sink = sink
        self.edge = EdgeRuntime(self.edge_backend, config, self.store, step_time_s=0.0 if wall else step_s)
        if wall:
            self.runner: Simulator | RealtimeRunner = RealtimeRunner(self.edge, self.clock, sink, self.cloud)
        else:
            self.runner = Simulator(self.edge, self.clock, sink, self.cloud)

    def roots(self) -> dict[str, object]:
        return {"runner": self.runner}

    def queue_depths(self) -> dict[str, int]:
        events = self.clock.pending if isinstance(self.clock, SimulatedClock) else 0
        return {
            "waiting_frames": self.runner.waiting,
            "in_flight": self.cloud.in_flight,
            "clock_events": events,
        }


def clip_images(frames: int, width: int, height: int, fps: float) -> list[np.ndarray]:
    """A synthetic-world clip, rendered once and played in a loop."""
    from ..synthetic.world import generate_clip

    return [frame.image for frame, _ in generate_clip(0, frames, fps=fps, width=width, height=height)]


class Probe:
    """Samples memory and queues while frames are produced; takes the warm-up snapshot."""

    def __init__(self, loop: Loop, warm_at: int) -> None:
        self.loop, self.warm_at = loop, warm_at
        self.rss_warm = self.rss_max = 0
        self.warm_sizes: dict[str, int] = {}
        self.max_depths: dict[str, int] = {}

    def sample(self, index: int) -> None:
        for key, value in self.loop.queue_depths().items():
            self.max_depths[key] = max(self.max_depths.get(key, 0), value)
        if index == self.warm_at:
            gc.collect()
            self.rss_warm = rss_bytes()
            self.warm_sizes = container_sizes(self.loop.roots(), skip=[self.loop.sink])
        if index % 1000 == 0:
            self.rss_max = max(self.rss_max, rss_bytes())


def frames_simulated(images: list[np.ndarray], count: int, fps: float, probe: Probe) -> Iterator[Frame]:
    for index in range(count):
        probe.sample(index)
        yield Frame(START_NS + round(index * NS_PER_S / fps), images[index % len(images)], "camera", index)


def frames_wall(images: list[np.ndarray], seconds: float, fps: float, probe: Probe) -> Iterator[Frame]:
    """Frames stamped with the wall clock at ``fps`` for ``seconds`` (the runner paces them)."""
    count = int(seconds * fps)
    yield from frames_simulated(images, count, fps, probe)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One soak run; returns the figures."""
    overrides = {"edge.backend": "zero", "cloud.backend": "zero", "latency.profile": args.profile}
    config = load_config(args.config, overrides)
    wall = args.wall_s > 0
    count = int(args.wall_s * args.fps) if wall else int(args.minutes * 60 * args.fps)
    images = clip_images(args.clip_frames, args.width, args.height, args.fps)
    with tempfile.TemporaryDirectory(prefix="spotvlm-soak-") as tmp:
        records = args.records or Path(tmp) / "records.jsonl"
        sink = SoakSink(records)
        loop = Loop(config, sink, wall, args.step_s)
        probe = Probe(loop, warm_at=max(1, int(count * args.warmup)))
        source = (
            frames_wall(images, args.wall_s, args.fps, probe)
            if wall
            else frames_simulated(images, count, args.fps, probe)
        )
        started = time.perf_counter()
        try:
            loop.runner.run(source)
        finally:
            sink.close()
        wall_s = time.perf_counter() - started
        gc.collect()
        rss_end = rss_bytes()
        end_sizes = container_sizes(loop.roots(), skip=[sink])
        records_mb = records.stat().st_size / 1e6
    grown = {
        path: [probe.warm_sizes.get(path, 0), size]
        for path, size in sorted(end_sizes.items())
        if size > probe.warm_sizes.get(path, 0) + GROWTH_SLACK
    }
    latencies = sorted(sink.latencies) or [0.0]
    largest = max(end_sizes.items(), key=lambda kv: kv[1], default=("", 0))
    stats = loop.cloud.stats
    return {
        "clock": "wall" if wall else "simulated",
        "frames": count,
        "frames_arrived": sink.inputs,
        "answered": sink.answered,
        "skipped_latest_wins": sink.skipped,
        "lost": sink.inputs - sink.answered - sink.skipped,
        "ticks_answered_fraction": round((sink.answered + sink.skipped) / max(1, sink.inputs), 6),
        "stream_s": round(count / args.fps, 1),
        "wall_s": round(wall_s, 1),
        "rss_warm_mb": round(probe.rss_warm / 1e6, 1),
        "rss_end_mb": round(rss_end / 1e6, 1),
        "rss_max_mb": round(max(probe.rss_max, rss_end) / 1e6, 1),
        "rss_growth_fraction": round((rss_end - probe.rss_warm) / max(1, probe.rss_warm), 4),
        "max_container_len": largest[1],
        "largest_container": largest[0],
        "containers_grown": grown,
        "max_waiting_frames": probe.max_depths.get("waiting_frames", 0),
        "max_in_flight": probe.max_depths.get("in_flight", 0),
        "max_clock_events": probe.max_depths.get("clock_events", 0),
        "answer_gap_max_s": round(sink.max_gap_s, 3),
        "latency_p50_s": round(latencies[len(latencies) // 2], 3),
        "latency_p95_s": round(latencies[int(len(latencies) * 0.95)], 3),
        "contexts_received": sink.contexts,
        "contexts_accepted": sink.accepted,
        "lvlm_requests": stats.requests,
        "lvlm_timeouts": stats.timeouts,
        "records_mb": round(records_mb, 1),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotvlm bench soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="simulated minutes of camera (30)")
    parser.add_argument("--wall-s", type=float, default=0.0, help="run on the wall clock this long instead")
    parser.add_argument("--fps", type=float, default=30.0, help="camera rate (30)")
    parser.add_argument("--step-s", type=float, default=0.2, help="SVLM seconds per answer (0.2)")
    parser.add_argument("--profile", default="lognormal:mean=1.5,sigma=0.8", help="LVLM delay model")
    parser.add_argument("--width", type=int, default=320, help="frame width (320)")
    parser.add_argument("--height", type=int, default=240, help="frame height (240)")
    parser.add_argument("--clip-frames", type=int, default=90, help="frames of the looped clip (90)")
    parser.add_argument("--warmup", type=float, default=0.1, help="fraction of the run before the baseline")
    parser.add_argument("--records", type=Path, default=None, help="keep the JSONL records here")
    parser.add_argument("--config", type=Path, default=None, help="YAML config (backends forced to zero)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not (args.minutes > 0 and args.fps > 0 and args.step_s >= 0 and 0 < args.warmup < 1):
        print("minutes and fps must be > 0, step-s >= 0, warmup in (0, 1)", file=sys.stderr)
        return 2
    figures = run(args)
    print(
        f"{figures['clock']} soak: {figures['frames']} frames ({figures['stream_s']} s of camera) in "
        f"{figures['wall_s']} s wall; {figures['answered']} answered, {figures['skipped_latest_wins']} "
        f"skipped (latest wins), {figures['lost']} lost"
    )
    print(
        f"RSS {figures['rss_warm_mb']} MB after warm-up -> {figures['rss_end_mb']} MB at the end "
        f"(growth {figures['rss_growth_fraction']:+.2%}, target <= 5%); max {figures['rss_max_mb']} MB"
    )
    print(
        f"queues: <= {figures['max_waiting_frames']} frame waiting, <= {figures['max_in_flight']} LVLM "
        f"request(s) in flight, <= {figures['max_clock_events']} clock events; largest container "
        f"{figures['largest_container']} ({figures['max_container_len']}); grown after warm-up: "
        f"{figures['containers_grown'] or 'none'}"
    )
    print(bench_line("soak", figures))
    return 0
