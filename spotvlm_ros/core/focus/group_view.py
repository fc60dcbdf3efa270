"""Visual Focus on a frame of several cameras: regions carried per camera, one view of the whole set.

Regions are propagated in the camera they were found in (one tracker per camera, from that camera's
keyframe image). The view (``focus.multi_camera``):

* ``images``: every camera downscaled as its own image, then the crops;
* ``mosaic``: the cameras tiled in one image (:mod:`.cameras`; at most one camera's size, or
  ``focus.full_size`` beside crops), then the crops.

Crops come from the full-resolution image of the camera each region is in. Under
``focus.visual_token_budget`` the budget covers all cameras: the camera images shrink first (an equal
share each), then crops are dropped. Marks and masks are drawn on the camera each region is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..sanitize import sanitize_label
from ..types import Box, Frame, LvlmResult, Region
from .cameras import MosaicLayout, boxes_in, camera_note, compose_mosaic, mosaic_layout
from .propagation import PropagatedRegion, RegionPropagator
from .views import (
    MIN_FULL_SIDE,
    crop_image,
    crop_rect,
    dim_outside,
    draw_marks,
    fit_size,
    plan_crops,
    plan_single,
)
from .views import resize as resize_image

if TYPE_CHECKING:
    from .visual_focus import FocusView, VisualFocus

__all__ = ["CameraSetFocus"]

Sizes = tuple[tuple[str, int, int], ...]


def _sizes(frame: Frame) -> Sizes:
    return tuple((v.frame_id, v.width, v.height) for v in frame.views)


def _labels(regions: Sequence[Region]) -> str:
    return ", ".join(
        (f"'{r.label}' ({r.frame_id})" if r.label else f"region {i + 1} ({r.frame_id})")
        for i, r in enumerate(regions)
    )


class CameraSetFocus:
    """The multi-camera side of one :class:`VisualFocus` (shares its config and token rule)."""

    def __init__(self, focus: VisualFocus) -> None:
        self.focus = focus
        self._propagators: dict[str, RegionPropagator] = {}
        self._plans: dict[tuple, object] = {}

    # ---- regions ---------------------------------------------------------------------------------
    def propagate(
        self, frame: Frame, context: LvlmResult | None, keyframe: Frame | None
    ) -> tuple[PropagatedRegion, ...]:
        """The context's regions carried to each camera of ``frame``, most confident first."""
        config = self.focus.config
        if config.mode == "off" or context is None or not context.regions or config.max_regions == 0:
            return ()
        if keyframe is not None and keyframe.stamp_ns != context.stamp_ns:
            keyframe = None
        key_views = {v.frame_id: v for v in keyframe.views} if keyframe is not None else {}
        kept: list[PropagatedRegion] = []
        for view in frame.views:
            regions = self._camera_regions(context, view)
            if not regions:
                continue
            propagator = self._propagators.get(view.frame_id)
            if propagator is None:
                propagator = self._propagators[view.frame_id] = self._new_propagator()
            carried = propagator.propagate(
                regions, key_views.get(view.frame_id), view, context.stamp_ns, key=context.request_id
            )
            kept.extend(
                replace(p, region=replace(p.region, frame_id=view.frame_id))
                for p in carried
                if p.confidence >= config.min_confidence
            )
        kept.sort(key=lambda p: -p.confidence)
        return tuple(kept[: config.max_regions])

    def _new_propagator(self) -> RegionPropagator:
        config = self.focus.config
        return RegionPropagator(
            config.propagation,
            max_side=config.flow_max_side,
            growth_per_s=config.growth_per_s,
            half_life_s=config.confidence_half_life_s,
        )

    @staticmethod
    def _camera_regions(context: LvlmResult, view: Frame) -> tuple[Region, ...]:
        """The context regions in camera ``view`` (keyframe pixels scaled to its size), labels sanitized."""
        width, height = context.size_of(view.frame_id)
        sx = view.width / width if width > 0 else 1.0
        sy = view.height / height if height > 0 else 1.0
        return tuple(
            Region(r.box.scale(sx, sy), sanitize_label(r.label), float(min(1.0, max(0.0, r.score))))
            for r in boxes_in(context.regions, view.frame_id, context.frame_id)
            if r.box.is_valid(1.0)
        )

    # ---- views -----------------------------------------------------------------------------------
    def render(self, frame: Frame, regions: tuple[Region, ...], mode: str) -> FocusView:
        """The view of every camera of ``frame`` with ``regions`` (camera pixels, each with its camera)."""
        if self.focus.config.multi_camera == "mosaic":
            return self._mosaic(frame, regions, mode)
        return self._images(frame, regions, mode)

    def _per_camera(
        self, sizes: Sizes, max_side: int, budget: int
    ) -> tuple[list[tuple[int, int]], int, bool]:
        """Each camera's image size under an equal share of ``budget`` (0 = none): sizes, tokens, over."""
        key = ("cameras", sizes, max_side, budget)
        if key not in self._plans:
            share = budget // len(sizes) if budget > 0 else 0
            if budget > 0 and share <= 0:
                share = 1  # more cameras than budget: every camera at the smallest size, over budget
            planned = [plan_single(w, h, max_side, share, self.focus.count) for _, w, h in sizes]
            self._plans[key] = (
                [size for size, _, _ in planned],
                sum(tokens for _, tokens, _ in planned),
                any(over for _, _, over in planned),
            )
        return self._plans[key]

    def _images_plan(
        self, sizes: Sizes, crops: int, crop_mode: bool
    ) -> tuple[list[tuple[int, int]], int, int, bool]:
        """Camera image sizes, crops kept, total tokens and over-budget flag of the images view."""
        focus, config = self.focus, self.focus.config
        budget = config.visual_token_budget
        if not crop_mode:
            cams, tokens, over = self._per_camera(sizes, focus.spec.max_side, budget)
            return cams, 0, tokens, over
        crop_tokens = focus.count(config.crop_size, config.crop_size)
        if budget <= 0:
            cams, tokens, _ = self._per_camera(sizes, config.full_size, 0)
            return cams, crops, tokens + crops * crop_tokens, False
        for kept in range(crops, -1, -1):
            remaining = budget - kept * crop_tokens
            if remaining <= 0:
                continue
            cams, tokens, over = self._per_camera(sizes, config.full_size, remaining)
            if not over:
                return cams, kept, tokens + kept * crop_tokens, False
        cams = [fit_size(w, h, MIN_FULL_SIDE) for _, w, h in sizes]
        return cams, 0, sum(focus.count(*s) for s in cams), True

    def _crops(
        self, frame: Frame, regions: tuple[Region, ...], count: int
    ) -> tuple[list[np.ndarray], tuple[Box, ...]]:
        config = self.focus.config
        views = {v.frame_id: v for v in frame.views}
        images, rects = [], []
        for region in regions[:count]:
            view = views[region.camera(frame.frame_id)]
            rect = crop_rect(region.box, view.width, view.height, config.crop_margin)
            images.append(crop_image(view.image, rect, config.crop_size))
            rects.append(rect)
        return images, tuple(rects)

    def _crop_note(self, regions: tuple[Region, ...], count: int, first: int) -> str:
        if count == 1:
            return f" Image {first} is a close-up of {_labels(regions[:1])}."
        if count > 1:
            return f" Images {first}-{first + count - 1} are close-ups of: {_labels(regions[:count])}."
        return ""

    def _images(self, frame: Frame, regions: tuple[Region, ...], mode: str) -> FocusView:
        from .visual_focus import FocusView

        config = self.focus.config
        sizes = _sizes(frame)
        crop_mode = mode == "crop" and bool(regions)
        cams, crops, tokens, over = self._images_plan(sizes, len(regions), crop_mode)
        images = []
        for view, size in zip(frame.views, cams, strict=True):
            image = resize_image(view.image, size)
            scale = size[0] / view.width
            mine = boxes_in(regions, view.frame_id, frame.frame_id)
            if mode == "mark" and mine:
                image = draw_marks(image, mine, scale)
            elif mode == "mask" and mine:
                image = dim_outside(image, mine, config.mask_brightness, scale)
            images.append(image)
        crop_images, rects = self._crops(frame, regions, crops) if crop_mode else ([], ())
        note = camera_note([s[0] for s in sizes], "images")
        note += self._mode_note(mode, regions)
        note += self._crop_note(regions, crops, len(images) + 1) if crop_mode else ""
        return FocusView(
            [*images, *crop_images],
            regions,
            mode if regions else "off",
            tokens,
            crop_boxes=rects,
            scale=cams[0][0] / frame.views[0].width,
            note=note,
            over_budget=over,
            cameras=sizes,
        )

    def _mosaic_plan(
        self, layout: MosaicLayout, crops: int, crop_mode: bool
    ) -> tuple[tuple[int, int], int, int, bool]:
        focus, config = self.focus, self.focus.config
        width, height = layout.size
        key = ("mosaic", layout.size, crops, crop_mode)
        if key not in self._plans:
            if crop_mode:
                plan = plan_crops(
                    width,
                    height,
                    crops,
                    config.crop_size,
                    config.full_size,
                    config.visual_token_budget,
                    focus.count,
                )
                self._plans[key] = (plan.full_size, plan.crops, plan.tokens, plan.over_budget)
            else:
                # a mosaic is never drawn larger than one camera (the model's own limit when it has one)
                side = focus.spec.max_side or max(max(t.width, t.height) for t in layout.tiles)
                size, tokens, over = plan_single(width, height, side, config.visual_token_budget, focus.count)
                self._plans[key] = (size, 0, tokens, over)
        return self._plans[key]

    def _mosaic(self, frame: Frame, regions: tuple[Region, ...], mode: str) -> FocusView:
        from .visual_focus import FocusView

        config = self.focus.config
        sizes = _sizes(frame)
        layout = mosaic_layout(sizes)
        crop_mode = mode == "crop" and bool(regions)
        size, crops, tokens, over = self._mosaic_plan(layout, len(regions), crop_mode)
        image = compose_mosaic([v.image for v in frame.views], layout, size)
        scale = size[0] / layout.size[0]
        placed = tuple(m for r in regions if (m := layout.to_mosaic(r, r.camera(frame.frame_id))) is not None)
        if mode == "mark" and placed:
            image = draw_marks(image, placed, scale)
        elif mode == "mask" and placed:
            image = dim_outside(image, placed, config.mask_brightness, scale)
        crop_images, rects = self._crops(frame, regions, crops) if crop_mode else ([], ())
        note = camera_note([s[0] for s in sizes], "mosaic") + self._mode_note(mode, regions)
        note += self._crop_note(regions, crops, 2) if crop_mode else ""
        return FocusView(
            [image, *crop_images],
            regions,
            mode if regions else "off",
            tokens,
            crop_boxes=rects,
            scale=scale,
            note=note,
            over_budget=over,
            cameras=sizes,
            layout=layout,
        )

    @staticmethod
    def _mode_note(mode: str, regions: tuple[Region, ...]) -> str:
        if not regions:
            return ""
        if mode == "mark":
            return f" Boxes drawn on the images mark the regions of interest: {_labels(regions)}."
        if mode == "mask":
            return f" The regions of interest are bright, the rest is dimmed: {_labels(regions)}."
        return ""
