"""Visual Focus: LVLM regions carried to the current frame steer what the SVLM sees.

:meth:`VisualFocus.prepare` runs per frame: the context's regions (keyframe pixels) are scaled to the
frame, propagated from the keyframe image, filtered by confidence, and turned into the configured view:

* ``crop``: the full frame downscaled to ``full_size`` first, then up to ``max_regions`` square crops
  at ``crop_size``; under ``visual_token_budget`` the full frame shrinks first, then crops are dropped;
* ``mark``: boxes and labels drawn on the frame; ``mask``: the frame dimmed outside the regions;
* ``off`` (the ablation, also used whenever there are no regions): the plain frame.

A frame of several cameras (``Frame.cameras``) is handled by :mod:`.group_view`: regions are carried
per camera and the view shows every camera (``focus.multi_camera``: own images or a mosaic).

Single-image views are downscaled to the model's ``max_side`` (and to the budget). Visual tokens are
counted with the model's rule (:mod:`.tokens`); :meth:`VisualFocus.view_costs` prices every view of
the current regions and :func:`cheapest_view` picks the cheapest one that keeps region detail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from ..sanitize import sanitize_label
from ..types import Box, Frame, LvlmResult, Region
from .cameras import MosaicLayout, regions_to_cameras
from .group_view import CameraSetFocus
from .propagation import PropagatedRegion, RegionPropagator
from .tokens import VisualTokenSpec, model_input_size, visual_tokens
from .views import CropPlan, crop_image, crop_rect, dim_outside, draw_marks, plan_crops, plan_single, resize

if TYPE_CHECKING:
    from ..config import FocusConfig

__all__ = ["FocusView", "ViewCost", "VisualFocus", "cheapest_view"]

VIEW_MODES = ("crop", "mark", "mask")


@dataclass(frozen=True, slots=True)
class FocusView:
    """The images the SVLM gets for one frame and how they were made.

    ``images[0]`` is the (downscaled, maybe marked or masked) full frame, ``images[1:]`` the crops
    of ``crop_boxes`` (frame pixels). ``scale`` is images[0] pixels per frame pixel. ``note`` is a
    sentence for the prompt that says what the images are.

    Several cameras: ``cameras`` lists (frame id, width, height) in image order; the camera images
    (or, with ``layout``, their mosaic, ``scale`` then being images[0] pixels per layout pixel) come
    before the crops, and ``regions`` carry their camera.
    """

    images: list[np.ndarray]
    regions: tuple[Region, ...]
    mode: str
    image_tokens: int
    crop_boxes: tuple[Box, ...] = ()
    scale: float = 1.0
    note: str = ""
    over_budget: bool = False
    cameras: tuple[tuple[str, int, int], ...] = ()
    layout: MosaicLayout | None = None

    def to_frame(self, box: Box) -> Box:
        """A box in images[0] pixels mapped back to frame pixels."""
        return box.scale(1.0 / self.scale, 1.0 / self.scale)

    def regions_to_frame(self, regions: Sequence[Region]) -> tuple[Region, ...]:
        """Regions a model returned in images[0] pixels, in the pixels of their camera.

        One camera: scaled back to the frame. Several: the mosaic tile under each box, or the camera
        its label names (else the first camera), with ``frame_id`` set.
        """
        if not self.cameras:
            if self.scale == 1.0:
                return tuple(regions)
            return tuple(replace(r, box=self.to_frame(r.box)) for r in regions)
        if self.layout is not None:
            return self.layout.to_cameras(regions, self.scale)
        _, width, height = self.cameras[0]
        shown = (round(width * self.scale), round(height * self.scale))
        return regions_to_cameras(regions, self.cameras, shown)


@dataclass(frozen=True, slots=True)
class ViewCost:
    """What a view of the current regions costs and how much region detail it keeps."""

    mode: str
    image_tokens: int
    region_scale: float  # model-input pixels per frame pixel on the worst-served region
    images: int


def _labels(regions: Sequence[Region]) -> str:
    return ", ".join(f"'{r.label}'" if r.label else f"region {i + 1}" for i, r in enumerate(regions))


class VisualFocus:
    """Per-frame Visual Focus for one edge model (keeps the tracking state of the current context).

    ``spec`` (or ``patch_size``/``merge_size``) describes the model's visual tokens; a backend's own
    ``image_tokens(width, height)`` may be given as ``count_image_tokens`` instead. Not thread-safe.
    """

    def __init__(
        self,
        config: FocusConfig,
        patch_size: int = 14,
        merge_size: int = 2,
        *,
        spec: VisualTokenSpec | None = None,
        count_image_tokens: Callable[[int, int], int] | None = None,
    ):
        self.config = config
        self.spec = spec or VisualTokenSpec(patch_size=patch_size, merge_size=merge_size)
        self.count = count_image_tokens or partial(_spec_tokens, self.spec)
        self.propagator = RegionPropagator(
            config.propagation,
            max_side=config.flow_max_side,
            growth_per_s=config.growth_per_s,
            half_life_s=config.confidence_half_life_s,
        )
        self._plans: dict[tuple, object] = {}
        self._scaled: tuple[tuple, tuple[Region, ...]] | None = None
        self._cameras = CameraSetFocus(self)

    def prepare(self, frame: Frame, context: LvlmResult | None, keyframe: Frame | None) -> FocusView:
        """The SVLM view of ``frame`` given the context in use (None = none) and its keyframe image."""
        return self.render(frame, self.propagate(frame, context, keyframe))

    def propagate(
        self, frame: Frame, context: LvlmResult | None, keyframe: Frame | None
    ) -> tuple[PropagatedRegion, ...]:
        """The context's regions carried to ``frame``, most confident first, at most ``max_regions``."""
        if frame.cameras:
            return self._cameras.propagate(frame, context, keyframe)
        config = self.config
        if config.mode == "off" or context is None or not context.regions or config.max_regions == 0:
            return ()
        regions = self._frame_regions(context, frame)
        if keyframe is not None and keyframe.stamp_ns != context.stamp_ns:
            keyframe = None  # not the image the regions were found on
        carried = self.propagator.propagate(
            regions, keyframe, frame, context.stamp_ns, key=context.request_id
        )
        kept = [p for p in carried if p.confidence >= config.min_confidence]
        kept.sort(key=lambda p: -p.confidence)
        return tuple(kept[: config.max_regions])

    def render(self, frame: Frame, carried: Sequence[PropagatedRegion], mode: str | None = None) -> FocusView:
        """The view of ``frame`` with the carried regions (``mode`` overrides the configured one)."""
        regions = tuple(p.region for p in carried)
        mode = mode or self.config.mode
        if mode not in VIEW_MODES + ("off",):
            raise ValueError(f"focus mode must be one of {VIEW_MODES + ('off',)}, got {mode!r}")
        if frame.cameras:
            return self._cameras.render(frame, regions, mode)
        if not regions or mode == "off":
            return self._single(frame, (), "off")
        if mode == "crop":
            return self._crop(frame, regions)
        return self._single(frame, regions, mode)

    def view_costs(self, width: int, height: int, regions: Sequence[Region]) -> dict[str, ViewCost]:
        """Visual tokens and region detail of every view of ``regions`` on a ``width`` x ``height`` frame."""
        config = self.config
        (w, h), tokens, _ = self._single_plan(width, height)
        single_scale = model_input_size(w, h, self.spec)[0] / width
        costs = {"off": ViewCost("off", tokens, single_scale, 1)}
        for mode in ("mark", "mask"):
            costs[mode] = ViewCost(mode, tokens, single_scale, 1)
        plan = self._crop_plan(width, height, len(regions))
        full_scale = model_input_size(*plan.full_size, self.spec)[0] / width
        crop_input = model_input_size(config.crop_size, config.crop_size, self.spec)[0]
        scales = [
            crop_input / crop_rect(r.box, width, height, config.crop_margin).width
            if i < plan.crops
            else full_scale
            for i, r in enumerate(regions)
        ]
        costs["crop"] = ViewCost("crop", plan.tokens, min(scales, default=full_scale), 1 + plan.crops)
        return costs

    def _frame_regions(self, context: LvlmResult, frame: Frame) -> tuple[Region, ...]:
        """Context regions in frame pixels with sanitized labels (cached per context and frame size)."""
        key = (
            context.request_id,
            context.stamp_ns,
            context.regions,
            context.image_size,
            frame.image.shape[:2],
        )
        if self._scaled is not None and self._scaled[0] == key:
            return self._scaled[1]
        width, height = context.image_size
        sx = frame.width / width if width > 0 else 1.0
        sy = frame.height / height if height > 0 else 1.0
        regions = tuple(
            Region(r.box.scale(sx, sy), sanitize_label(r.label), float(min(1.0, max(0.0, r.score))))
            for r in context.regions
            if r.box.is_valid(1.0)
        )
        self._scaled = (key, regions)
        return regions

    def _single_plan(self, width: int, height: int) -> tuple[tuple[int, int], int, bool]:
        key = ("single", width, height)
        if key not in self._plans:
            budget = self.config.visual_token_budget
            self._plans[key] = plan_single(width, height, self.spec.max_side, budget, self.count)
        return self._plans[key]

    def _crop_plan(self, width: int, height: int, regions: int) -> CropPlan:
        key = ("crop", width, height, regions)
        if key not in self._plans:
            config = self.config
            self._plans[key] = plan_crops(
                width,
                height,
                regions,
                config.crop_size,
                config.full_size,
                config.visual_token_budget,
                self.count,
            )
        return self._plans[key]

    def _single(self, frame: Frame, regions: tuple[Region, ...], mode: str) -> FocusView:
        size, tokens, over = self._single_plan(frame.width, frame.height)
        image = resize(frame.image, size)
        scale = size[0] / frame.width
        note = ""
        if mode == "mark":
            image = draw_marks(image, regions, scale)
            note = f"Boxes drawn on the image mark the regions of interest: {_labels(regions)}."
        elif mode == "mask":
            image = dim_outside(image, regions, self.config.mask_brightness, scale)
            note = f"The regions of interest are bright, the rest is dimmed: {_labels(regions)}."
        return FocusView([image], regions, mode, tokens, scale=scale, note=note, over_budget=over)

    def _crop(self, frame: Frame, regions: tuple[Region, ...]) -> FocusView:
        config = self.config
        plan = self._crop_plan(frame.width, frame.height, len(regions))
        full = resize(frame.image, plan.full_size)
        rects = tuple(
            crop_rect(r.box, frame.width, frame.height, config.crop_margin) for r in regions[: plan.crops]
        )
        crops = [crop_image(frame.image, rect, config.crop_size) for rect in rects]
        note = "Image 1 is the whole camera view."
        if len(crops) == 1:
            note += f" Image 2 is a close-up of {_labels(regions[:1])}."
        elif crops:
            note += f" Images 2-{len(crops) + 1} are close-ups of: {_labels(regions[: plan.crops])}."
        return FocusView(
            [full, *crops],
            regions,
            "crop",
            plan.tokens,
            crop_boxes=rects,
            scale=plan.full_size[0] / frame.width,
            note=note,
            over_budget=plan.over_budget,
        )


def _spec_tokens(spec: VisualTokenSpec, width: int, height: int) -> int:
    return visual_tokens(width, height, spec=spec)


def cheapest_view(costs: dict[str, ViewCost], min_region_scale: float = 1.0) -> str:
    """The cheapest view among crop, mark and mask that keeps the region detail asked for.

    A view qualifies when every region keeps ``min_region_scale`` model-input pixels per frame pixel;
    when none does, the one with the most region detail wins.
    """
    views = [costs[m] for m in VIEW_MODES]
    keeping = [c for c in views if c.region_scale >= min_region_scale]
    if keeping:
        return min(keeping, key=lambda c: (c.image_tokens, VIEW_MODES.index(c.mode))).mode
    return max(views, key=lambda c: (c.region_scale, -c.image_tokens)).mode
