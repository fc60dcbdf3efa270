"""The synthetic test bag of ``spotvlm make-bag``: clips of the synthetic world with ground truth.

Clips (seeds ``seed``, ``seed + 1``, ...) follow each other with continuous stamps, each frame's ground
truth naming its clip as its ``sequence`` (``clip-<seed>``: evaluations run each clip as its own drive);
the bag is written by ``bag_writer.write_camera_bag`` (header stamps = capture stamps, ``annotations.jsonl``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ..core.annotations import ANNOTATIONS_FILE, FrameAnnotation
from ..core.types import NS_PER_S, Frame
from ..synthetic.world import clip_spec, generate_clip
from .bag_writer import BagSummary, write_camera_bag

DEFAULT_START_NS = 1_700_000_000 * NS_PER_S


def synthetic_frames(
    frames_per_clip: int,
    clips: int = 1,
    seed: int = 0,
    fps: float = 10.0,
    width: int = 640,
    height: int = 480,
    start_ns: int = DEFAULT_START_NS,
    signs: bool = False,
) -> Iterator[tuple[Frame, FrameAnnotation]]:
    """Clips of the synthetic world (seeds ``seed``, ``seed + 1``, ...) with continuous stamps.

    Each annotation's ``sequence`` is ``clip-<its seed>``; ``signs`` adds speed-limit signs (and the
    speed-limit question) to every clip.
    """
    if frames_per_clip < 1 or clips < 1:
        raise ValueError("frames per clip and clips must be >= 1")
    if not 0 < fps <= 1000:
        raise ValueError(f"fps must be in (0, 1000], got {fps}")
    period_ns = round(NS_PER_S / fps)
    for clip in range(clips):
        clip_start = start_ns + clip * frames_per_clip * period_ns
        name = f"clip-{seed + clip}"
        spec = clip_spec(seed + clip, signs=signs)
        for frame, annotation in generate_clip(
            seed + clip, frames_per_clip, fps=fps, width=width, height=height, start_ns=clip_start, spec=spec
        ):
            yield frame, replace(annotation, sequence=name)


def make_synthetic_bag(
    path: str | Path,
    *,
    frames: int = 100,
    clips: int = 1,
    seed: int = 0,
    fps: float = 10.0,
    width: int = 640,
    height: int = 480,
    storage: str = "mcap",
    transport: str = "raw",
    topic: str = "",
    jpeg_quality: int = 90,
    signs: bool = False,
) -> BagSummary:
    """A bag of ``clips`` synthetic clips of ``frames`` frames each, with ``annotations.jsonl``."""
    source = synthetic_frames(frames, clips, seed=seed, fps=fps, width=width, height=height, signs=signs)
    return write_camera_bag(
        path, source, storage=storage, transport=transport, topic=topic, jpeg_quality=jpeg_quality
    )


def describe(summary: BagSummary) -> str:
    """Human-readable lines about a written bag and how to use it."""
    rate = (summary.frames - 1) / summary.duration_s if summary.duration_s > 0 else 0.0
    lines = [
        f"wrote {summary.path}: {summary.frames} frames, {summary.duration_s:.1f} s at {rate:.1f} Hz, "
        f"{summary.bytes / 1e6:.1f} MB",
        f"  topic {summary.topic} ({summary.msgtype}), header stamps = capture stamps",
    ]
    if summary.annotated:
        lines.append(f"  ground truth: {summary.path / ANNOTATIONS_FILE} ({summary.annotated} frames)")
    lines.append(f"  replay it: spotvlm replay {summary.path}")
    return "\n".join(lines)
