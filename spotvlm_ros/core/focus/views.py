"""Model-agnostic steering views: region crops beside a small full frame, drawn marks, a dimming mask.

Every view is a list of RGB images for the SVLM. Sizes are planned against a visual-token budget with
the model's own token rule (``tokens(width, height)``): the crop view keeps its crops at the target
resolution and shrinks the full frame first, then drops the least confident crops, until the total fits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..sanitize import sanitize_label
from ..types import Box, Region

__all__ = [
    "CropPlan",
    "TokenCount",
    "crop_rect",
    "dim_outside",
    "draw_marks",
    "fit_size",
    "plan_crops",
    "plan_single",
    "resize",
]

TokenCount = Callable[[int, int], int]
MIN_FULL_SIDE = 56  # the smallest full frame the crop view shrinks to (2 x a 28 px Qwen merge block)
_SIDE_STEP = 14
_COLORS = ((255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (255, 0, 255), (0, 220, 220))


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longest side is at most ``max_side`` (never enlarged)."""
    longest = max(width, height)
    if max_side <= 0 or longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to (width, height) without aliasing, fast.

    Shrinking by a factor k >= 2 first averages k x k blocks (OpenCV's integer INTER_AREA fast path,
    dropping at most k - 1 edge pixels), then interpolates the remaining factor (< 2) bilinearly.
    """
    height, width = image.shape[:2]
    if (width, height) == size:
        return image
    factor = int(min(width / size[0], height / size[1]))
    if factor >= 2:
        image = image[: height - height % factor, : width - width % factor]
        image = cv2.resize(image, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
        if image.shape[1] == size[0] and image.shape[0] == size[1]:
            return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def crop_rect(box: Box, width: int, height: int, margin: float, min_side: float = 32.0) -> Box:
    """A square around ``box`` with ``margin`` (fraction of its side per side), shifted inside the frame."""
    side = max(box.width, box.height) * (1.0 + 2.0 * margin)
    side = min(max(side, min_side), float(width), float(height))
    cx, cy = box.center
    x1 = min(max(cx - side / 2.0, 0.0), width - side)
    y1 = min(max(cy - side / 2.0, 0.0), height - side)
    return Box(x1, y1, x1 + side, y1 + side)


def crop_image(image: np.ndarray, rect: Box, size: int) -> np.ndarray:
    """The pixels of ``rect`` resized to ``size`` x ``size``."""
    x1, y1 = int(round(rect.x1)), int(round(rect.y1))
    x2, y2 = max(x1 + 1, int(round(rect.x2))), max(y1 + 1, int(round(rect.y2)))
    return resize(image[y1:y2, x1:x2], (size, size))


def _ascii(label: str) -> str:
    """The label as OpenCV's Hershey fonts can draw it."""
    return sanitize_label(label, 32).encode("ascii", "replace").decode("ascii")


def draw_marks(image: np.ndarray, regions: Sequence[Region], scale: float = 1.0) -> np.ndarray:
    """A copy of ``image`` with each region's box and label drawn (region boxes in frame pixels)."""
    out = image.copy()
    thickness = max(1, round(max(out.shape[:2]) / 240))
    font_scale = max(0.35, max(out.shape[:2]) / 1000)
    for index, region in enumerate(regions):
        color = _COLORS[index % len(_COLORS)]
        box = region.box.scale(scale, scale)
        p1 = (int(round(box.x1)), int(round(box.y1)))
        p2 = (int(round(box.x2)) - 1, int(round(box.y2)) - 1)
        cv2.rectangle(out, p1, p2, color, thickness)
        label = _ascii(region.label) or str(index + 1)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = p1[1] - 2 if p1[1] - th - base - 2 >= 0 else p1[1] + th + 2
        cv2.rectangle(out, (p1[0], ty - th - 1), (p1[0] + tw + 2, ty + base - 1), color, -1)
        cv2.putText(
            out, label, (p1[0] + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    return out


def dim_outside(
    image: np.ndarray, regions: Sequence[Region], brightness: float, scale: float = 1.0
) -> np.ndarray:
    """A copy of ``image`` dimmed to ``brightness`` outside the regions (boxes in frame pixels)."""
    out = cv2.convertScaleAbs(image, alpha=brightness)
    height, width = image.shape[:2]
    for region in regions:
        box = region.box.scale(scale, scale).clip(width, height)
        x1, y1 = int(np.floor(box.x1)), int(np.floor(box.y1))
        x2, y2 = int(np.ceil(box.x2)), int(np.ceil(box.y2))
        out[y1:y2, x1:x2] = image[y1:y2, x1:x2]
    return out


@dataclass(frozen=True, slots=True)
class CropPlan:
    """How many crops and which full-frame size fit the budget, and what they cost."""

    crops: int
    full_size: tuple[int, int]
    tokens: int
    over_budget: bool = False


def _largest_fitting(
    width: int, height: int, max_side: int, budget: int, tokens: TokenCount
) -> tuple[int, int] | None:
    """The largest (width, height) with longest side <= ``max_side`` whose tokens fit ``budget``."""
    side = max(width, height) if max_side <= 0 else min(max_side, max(width, height))
    while True:
        size = fit_size(width, height, side)
        if tokens(*size) <= budget:
            return size
        if side <= MIN_FULL_SIDE:
            return None
        side = max(MIN_FULL_SIDE, min(side - _SIDE_STEP, int(side * 0.95)))


def plan_crops(
    width: int, height: int, regions: int, crop_size: int, full_side: int, budget: int, tokens: TokenCount
) -> CropPlan:
    """Plan the crop view of a ``width`` x ``height`` frame with ``regions`` candidate crops.

    ``budget`` 0 means no budget: every crop at ``crop_size`` beside the full frame at ``full_side``.
    """
    crop_tokens = tokens(crop_size, crop_size)
    if budget <= 0:
        size = fit_size(width, height, full_side)
        return CropPlan(regions, size, tokens(*size) + regions * crop_tokens)
    for crops in range(regions, -1, -1):
        remaining = budget - crops * crop_tokens
        if remaining <= 0:
            continue
        size = _largest_fitting(width, height, full_side, remaining, tokens)
        if size is not None:
            return CropPlan(crops, size, tokens(*size) + crops * crop_tokens)
    size = fit_size(width, height, MIN_FULL_SIDE)
    return CropPlan(0, size, tokens(*size), over_budget=True)


def plan_single(
    width: int, height: int, max_side: int, budget: int, tokens: TokenCount
) -> tuple[tuple[int, int], int, bool]:
    """Size, tokens and over-budget flag of a one-image view (longest side <= ``max_side``, 0 = any)."""
    size = fit_size(width, height, max_side)
    if budget > 0 and tokens(*size) > budget:
        fitting = _largest_fitting(width, height, max_side, budget, tokens)
        if fitting is None:
            size = fit_size(width, height, MIN_FULL_SIDE)
            return size, tokens(*size), True
        size = fitting
    return size, tokens(*size), False
