"""Seeded clips and data sets of the synthetic driving world, frame by frame with ground truth."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from ..core.annotations import FrameAnnotation
from ..core.types import NS_PER_S, Frame
from .camera import Camera
from .props import LightMount
from .render import FrameLayout, Painter, layout_frame
from .scene import MAX_CARS, ClipSpec, Scene
from .signs import SPEED_LIMITS, visible_box
from .truth import annotate

DEFAULT_START_NS = 1_700_000_000_000_000_000
MAX_STEP_S = 0.05  # dynamics step; a frame period is split into steps no longer than this
MIN_SIZE = (32, 24)
MAX_SIDE = 4096
FRAME_ID = "camera"


def _whole(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_seed(seed: int) -> None:
    if not _whole(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _check(seed: int, num_frames: int, fps: float, width: int, height: int, start_ns: int = 0) -> None:
    _check_seed(seed)
    if not _whole(num_frames) or num_frames < 0:
        raise ValueError(f"num_frames must be a non-negative integer, got {num_frames!r}")
    if not (isinstance(fps, int | float) and math.isfinite(fps) and 0 < fps <= 1000):
        raise ValueError(f"fps must be in (0, 1000], got {fps!r}")
    sizes_ok = _whole(width) and _whole(height)
    if not (sizes_ok and MIN_SIZE[0] <= width <= MAX_SIDE and MIN_SIZE[1] <= height <= MAX_SIDE):
        raise ValueError(
            f"image size must be integers within {MIN_SIZE} .. {MAX_SIDE}, got {width!r}x{height!r}"
        )
    if not _whole(start_ns) or start_ns < 0:
        raise ValueError(f"start_ns must be a non-negative integer, got {start_ns!r}")


def clip_spec(seed: int, signs: bool = False) -> ClipSpec:
    """The clip contents a seed picks on its own: traffic 0-3 cars, pedestrians in half the clips."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    return ClipSpec(
        traffic=int(rng.integers(MAX_CARS + 1)), pedestrians=bool(rng.random() < 0.5), signs=signs
    )


def simulate_clip(
    seed: int, num_frames: int, fps: float, width: int, height: int, spec: ClipSpec | None
) -> Iterator[tuple[int, Scene, FrameLayout]]:
    """The world state behind ``generate_clip``: frame index, scene and its projection, frame by frame.

    The scene object is advanced in place after each yield; read it before resuming the iterator.
    """
    _check(seed, num_frames, fps, width, height)
    return _simulate(seed, num_frames, fps, width, height, spec)


def _simulate(
    seed: int, num_frames: int, fps: float, width: int, height: int, spec: ClipSpec | None
) -> Iterator[tuple[int, Scene, FrameLayout]]:
    camera = Camera.for_image(width, height)
    scene_seq, mount_seq = np.random.SeedSequence([int(seed), 2]).spawn(2)
    scene = Scene.create(spec or clip_spec(seed), camera, scene_seq, np.random.SeedSequence([int(seed), 6]))
    mount = LightMount.draw(np.random.default_rng(mount_seq))
    steps = max(1, math.ceil((1.0 / fps) / MAX_STEP_S))
    for index in range(num_frames):
        yield index, scene, layout_frame(scene, mount, camera)
        for _ in range(steps):
            scene.step(1.0 / fps / steps)


def _stamp(start_ns: int, index: int, fps: float) -> int:
    return start_ns + round(index * NS_PER_S / fps)


def generate_clip(
    seed: int,
    num_frames: int,
    fps: float = 10.0,
    width: int = 640,
    height: int = 480,
    start_ns: int = DEFAULT_START_NS,
    *,
    spec: ClipSpec | None = None,
) -> Iterator[tuple[Frame, FrameAnnotation]]:
    """Frames (RGB ``height`` x ``width``) of one seeded clip and their ground truth.

    ``spec`` fixes the traffic level and whether pedestrians cross; by default the seed picks them
    (``clip_spec``). The same arguments give bit-identical frames and annotations.
    """
    _check(seed, num_frames, fps, width, height, start_ns)
    return _clip(seed, num_frames, fps, width, height, start_ns, spec)


def _clip_painter(seed: int, width: int, height: int, scene: Scene) -> Painter:
    """The painter of a clip's seeded look (ground, scenery, trees, sensor noise)."""
    return Painter(Camera.for_image(width, height), np.random.SeedSequence([int(seed), 5]), scene.light_z)


def _clip(
    seed: int, num_frames: int, fps: float, width: int, height: int, start_ns: int, spec: ClipSpec | None
) -> Iterator[tuple[Frame, FrameAnnotation]]:
    painter: Painter | None = None
    for index, scene, layout in _simulate(seed, num_frames, fps, width, height, spec):
        if painter is None:
            painter = _clip_painter(seed, width, height, scene)
        stamp = _stamp(start_ns, index, fps)
        annotation = annotate(stamp, scene.light_state, layout, width, height, scene.speed_limit)
        yield Frame(stamp, painter.paint(scene, layout, index), FRAME_ID, index), annotation


def generate_sign_variants(
    seed: int,
    num_frames: int,
    fps: float = 10.0,
    width: int = 640,
    height: int = 480,
    start_ns: int = DEFAULT_START_NS,
    *,
    spec: ClipSpec | None = None,
) -> Iterator[tuple[int, list[tuple[Frame, FrameAnnotation]]]]:
    """The frames of ``generate_clip`` whose posted sign is wholly in view, repainted with the other limits.

    Yields the frame index and, per other limit, the frame and its ground truth as if the sign posted that
    limit: the pixels are the same except for the plate's digits (same scene, occluders and sensor noise).
    Frames without such a sign are skipped. Training data use it so that only the digits tell the limits
    apart.
    """
    _check(seed, num_frames, fps, width, height, start_ns)
    painter: Painter | None = None
    for index, scene, layout in _simulate(seed, num_frames, fps, width, height, spec):
        if visible_box(layout.sign, width, height) is None:
            continue
        if painter is None:
            painter = _clip_painter(seed, width, height, scene)
        stamp = _stamp(start_ns, index, fps)
        variants = []
        for value in SPEED_LIMITS:
            if value == layout.sign.value:
                continue
            repainted = replace(layout, sign=replace(layout.sign, value=value))
            image = painter.paint(scene, repainted, index)
            annotation = annotate(stamp, scene.light_state, repainted, width, height, value)
            variants.append((Frame(stamp, image, FRAME_ID, index), annotation))
        yield index, variants


def generate_annotations(
    seed: int,
    num_frames: int,
    fps: float = 10.0,
    width: int = 640,
    height: int = 480,
    start_ns: int = DEFAULT_START_NS,
    *,
    spec: ClipSpec | None = None,
) -> Iterator[FrameAnnotation]:
    """The ground truth ``generate_clip`` gives for the same arguments, without painting pixels (fast)."""
    _check(seed, num_frames, fps, width, height, start_ns)
    return (
        annotate(_stamp(start_ns, index, fps), scene.light_state, layout, width, height, scene.speed_limit)
        for index, scene, layout in _simulate(seed, num_frames, fps, width, height, spec)
    )


def dataset_clips(seed: int, num_clips: int, signs: bool = False) -> list[tuple[int, ClipSpec]]:
    """Clip seeds and contents of a data set: every (traffic, pedestrians) pair equally often.

    Clip seeds derive from ``seed`` and the clip index; contents are dealt in shuffled blocks of the
    eight (traffic level, pedestrians) combinations, so any data set is balanced up to one block.
    ``signs`` puts speed-limit signs in every clip.
    """
    _check_seed(seed)
    if not _whole(num_clips) or num_clips < 0:
        raise ValueError(f"num_clips must be a non-negative integer, got {num_clips!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 3]))
    combos = [
        ClipSpec(traffic, pedestrians, signs)
        for traffic in range(MAX_CARS + 1)
        for pedestrians in (False, True)
    ]
    specs: list[ClipSpec] = []
    while len(specs) < num_clips:
        specs += [combos[i] for i in rng.permutation(len(combos))]
    seeds = [int(np.random.SeedSequence([int(seed), 4, i]).generate_state(1)[0]) for i in range(num_clips)]
    return list(zip(seeds, specs[:num_clips], strict=True))


def generate_dataset(
    seed: int,
    num_clips: int,
    frames_per_clip: int,
    fps: float = 10.0,
    width: int = 640,
    height: int = 480,
    start_ns: int = DEFAULT_START_NS,
    gap_s: float = 1.0,
    signs: bool = False,
) -> Iterator[tuple[int, Frame, FrameAnnotation]]:
    """``(clip index, frame, annotation)`` of ``num_clips`` balanced clips (see ``dataset_clips``).

    Stamps increase across the data set: each clip starts ``gap_s`` after the previous one's last frame
    period; ``Frame.seq`` counts frames across the whole data set.
    """
    if not (isinstance(gap_s, int | float) and math.isfinite(gap_s) and gap_s >= 0):
        raise ValueError(f"gap_s must be >= 0, got {gap_s!r}")
    _check(seed, frames_per_clip, fps, width, height, start_ns)
    clips = dataset_clips(seed, num_clips, signs)
    clip_ns = _stamp(0, frames_per_clip, fps) + round(gap_s * NS_PER_S)
    return _dataset(clips, frames_per_clip, fps, width, height, start_ns, clip_ns)


def _dataset(
    clips: list[tuple[int, ClipSpec]],
    frames_per_clip: int,
    fps: float,
    width: int,
    height: int,
    start_ns: int,
    clip_ns: int,
) -> Iterator[tuple[int, Frame, FrameAnnotation]]:
    seq = 0
    for index, (clip_seed, spec) in enumerate(clips):
        clip_start = start_ns + index * clip_ns
        for frame, annotation in _clip(clip_seed, frames_per_clip, fps, width, height, clip_start, spec):
            yield index, replace(frame, seq=seq), annotation
            seq += 1
