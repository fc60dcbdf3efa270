"""Training and held-out samples from the synthetic world: full frames, crop-level questions, LVLM prompts.

A :class:`Sample` is what one model call receives (chat messages in the Hugging Face format and the
images in order, exactly as the runtime passes them to ``VlmBackend.generate``) plus the answer it is
taught. LVLM prompts are built by the runtime's own :class:`~spotvlm_ros.runtime.cloud.LvlmQuery` (and
the backend's grounding request), from the keyframe as its JPEG arrives at the cloud. Frames pass
through JPEG once, like the frames of the demo bag.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..core.annotations import FrameAnnotation
from ..core.config import SpotVlmConfig
from ..core.focus.views import crop_image, crop_rect
from ..core.types import Frame
from ..models.grounding import grounding_instruction
from ..models.hf_local import with_grounding_request
from ..runtime.cloud import LvlmQuery
from ..runtime.image_codec import decode_compressed, encode_jpeg
from ..synthetic import dataset_clips, generate_dataset, generate_sign_variants
from .answers import TaskQuery, answer_text, jitter_box, queries_for, seen_limit
from .recipe import FPS, FRAME_SIZE, JPEG_QUALITY

CROP_SIZE = 224  # crop-level images are cut out and resized like Visual Focus crops


@dataclass
class Sample:
    """One model call and its taught answer; ``group`` names what it measures (``vqa:light``, ...)."""

    kind: str  # crop | full | context (see recipe.SAMPLE_KINDS)
    group: str
    messages: list[dict]
    images: list[np.ndarray]
    target: str
    truth: str = ""  # the answer scored at evaluation (default: the target)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.truth:
            self.truth = self.target


@dataclass
class Clip:
    """The frames of one clip (after the JPEG round trip) and their ground truth."""

    index: int
    frames: list[Frame]
    annotations: list[FrameAnnotation]
    # frame index -> the frame repainted with each other speed limit (see generate_sign_variants)
    sign_variants: dict[int, list[tuple[Frame, FrameAnnotation]]] = field(default_factory=dict)


def iter_clips(
    seed: int, clips: int, frames_per_clip: int, signs: bool = False, sign_variants: bool = False
) -> Iterator[Clip]:
    """Balanced clips of the synthetic world at the demo size, one clip at a time.

    ``signs``: with speed-limit signs; ``sign_variants``: each clip also holds its frames with a posted
    sign repainted with the other limits (:attr:`Clip.sign_variants`).
    """
    current: Clip | None = None
    width, height = FRAME_SIZE
    dataset = generate_dataset(seed, clips, frames_per_clip, FPS, width, height, signs=signs)
    specs = dataset_clips(seed, clips, signs) if sign_variants else []
    for index, frame, annotation in dataset:
        if current is None or current.index != index:
            if current is not None:
                yield current
            current = Clip(index, [], [])
            if sign_variants:
                clip_seed, spec = specs[index]
                variants = generate_sign_variants(clip_seed, frames_per_clip, FPS, width, height, spec=spec)
                current.sign_variants = {
                    i: [(_jpeg_round_trip(f), a) for f, a in repainted] for i, repainted in variants
                }
        current.frames.append(_jpeg_round_trip(frame))
        current.annotations.append(annotation)
    if current is not None:
        yield current


def _jpeg_round_trip(frame: Frame) -> Frame:
    """The frame after one JPEG encode and decode (as the demo bag stores it)."""
    image = decode_compressed(encode_jpeg(frame.image, quality=JPEG_QUALITY))
    return Frame(frame.stamp_ns, image, frame.frame_id, frame.seq)


def lvlm_messages(config: SpotVlmConfig, query: TaskQuery, want_regions: bool) -> list[dict]:
    """The LVLM's chat for ``query`` as the cloud client sends it (and the backend adds to it)."""
    messages = LvlmQuery(_NoBackend(), config, query.task, query.prompt, want_regions).messages()
    return with_grounding_request(messages, grounding_instruction()) if want_regions else messages


def keyframe_image(config: SpotVlmConfig, frame: Frame) -> np.ndarray:
    """The keyframe as the LVLM receives it: JPEG-encoded by the cloud client and decoded."""
    query = LvlmQuery(_NoBackend(), config, "vqa", "", False)
    return decode_compressed(query.encode(frame))


def full_frame_samples(
    config: SpotVlmConfig,
    frame: Frame,
    annotation: FrameAnnotation,
    input_scale: tuple[float, float],
    rng: np.random.Generator,
    region_share: float = 0.5,
    queries: tuple[TaskQuery, ...] | None = None,
) -> list[Sample]:
    """LVLM samples of every task (or of ``queries``) on one full frame.

    VQA and caption ask for regions ``region_share`` of the time; ``input_scale`` maps frame pixels to
    model input pixels (box coordinates of the answers). The speed limit is taught as the frame shows it.
    """
    image = keyframe_image(config, frame)
    samples = []
    for query in queries or queries_for(annotation):
        if query.task == "grounding" and annotation.box(query.item_id) is None and rng.random() < 0.7:
            continue  # keep some "nothing there" answers, not most
        want_regions = query.task == "grounding" or bool(rng.random() < region_share)
        target = answer_text(query, annotation, want_regions=want_regions, scale=input_scale, seen=True)
        truth = answer_text(query, annotation, seen=True) if query.task != "grounding" else target
        group = query.key + ("+regions" if want_regions and query.task != "grounding" else "")
        samples.append(
            Sample("full", group, lvlm_messages(config, query, want_regions), [image], target, truth)
        )
    return samples


CROPPED_ITEMS = {"light": "light", "pedestrian": "pedestrian", "sign": "speed_limit"}  # id -> question
# margin around the box, in box sizes, drawn uniformly. Sign crops down to the scale of a full frame
# (margins to 4.5) did not carry reading over to full frames: the LVLM read fewer signs after a phase on them
CROP_MARGINS = {"light": (0.2, 1.2), "pedestrian": (0.8, 2.0), "sign": (0.8, 2.0)}


def crop_samples(
    config: SpotVlmConfig,
    frame: Frame,
    annotation: FrameAnnotation,
    input_scale: tuple[float, float],
    rng: np.random.Generator,
) -> list[Sample]:
    """Stage-1 samples: crop-level and large-object questions, and localisation of the light.

    The light (and a pedestrian, and a posted speed sign) are cut out, enlarged and asked the usual
    question; the light is located and the cars (large objects) counted on the full frame.
    """
    samples = object_crop_samples(config, frame, annotation, rng)
    image = keyframe_image(config, frame)
    for query in (TaskQuery("grounding", "light"), TaskQuery("vqa", "cars")):
        want = query.task == "grounding"
        target = answer_text(query, annotation, want_regions=want, scale=input_scale)
        samples.append(Sample("crop", query.key, lvlm_messages(config, query, want), [image], target))
    return samples


def object_crop_samples(
    config: SpotVlmConfig,
    frame: Frame,
    annotation: FrameAnnotation,
    rng: np.random.Generator,
    items: tuple[str, ...] = tuple(CROPPED_ITEMS),
) -> list[Sample]:
    """The objects of ``items`` the frame shows, each cut out (jittered, with a margin) and asked about."""
    samples = []
    for item_id in items:
        item = annotation.box(item_id)
        if item is None:
            continue
        box = jitter_box(item.box, rng, 0.15)
        margin = float(rng.uniform(*CROP_MARGINS[item_id]))
        rect = crop_rect(box, frame.width, frame.height, margin)
        crop = crop_image(frame.image, rect, CROP_SIZE)
        query = TaskQuery("vqa", CROPPED_ITEMS[item_id])
        messages = lvlm_messages(config, query, want_regions=False)
        target = seen_limit(annotation) if item_id == "sign" else answer_text(query, annotation)
        samples.append(Sample("crop", f"crop:{item_id}", messages, [crop], target))
    return samples


class _NoBackend:
    """The backend slot of an LvlmQuery that only builds messages and encodes keyframes (never called)."""

    name = "none"
