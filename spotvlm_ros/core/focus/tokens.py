"""Visual token counting: what an image of a given size costs a given vision-language model.

Two families of image encoders are covered:

* dynamic resolution (Qwen2-VL, Qwen2.5-VL): the image is resized by ``smart_resize`` to multiples of
  ``patch_size * merge_size`` with its pixel count kept in ``[min_pixels, max_pixels]``, then every
  ``merge_size x merge_size`` block of ``patch_size`` patches becomes one token;
* fixed grid (LLaVA, SmolVLM/Idefics3 without image splitting, PaliGemma): every image is resized to
  one square input and costs the same ``fixed_tokens``, whatever its size.

``max_side`` models a backend that first downscales images to a longest side (``image_max_side``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["VisualTokenSpec", "model_input_size", "smart_resize", "visual_tokens"]

QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 1280


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """(height, width) a Qwen2/2.5-VL processor resizes an image to (same rule as transformers)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {width}x{height}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True, slots=True)
class VisualTokenSpec:
    """How a model turns an image into tokens (defaults: Qwen2.5-VL)."""

    patch_size: int = 14
    merge_size: int = 2
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS
    fixed_tokens: int = 0  # > 0: a fixed-grid model, every image costs this many tokens
    fixed_size: int = 0  # the square input side of a fixed-grid model (for region detail)
    max_side: int = 0  # the backend first downscales images to this longest side; 0 = never

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.merge_size < 1:
            raise ValueError(
                f"patch_size and merge_size must be >= 1, got {self.patch_size}, {self.merge_size}"
            )
        if self.fixed_tokens < 0 or self.fixed_size < 0 or self.max_side < 0:
            raise ValueError("fixed_tokens, fixed_size and max_side must be >= 0")

    @classmethod
    def fixed_grid(cls, tokens: int, size: int, max_side: int = 0) -> VisualTokenSpec:
        """A fixed-grid model, e.g. ``fixed_grid(576, 336)`` for LLaVA-1.5, ``(64, 512)`` for SmolVLM."""
        if tokens < 1 or size < 1:
            raise ValueError(f"a fixed-grid model needs tokens >= 1 and size >= 1, got {tokens}, {size}")
        return cls(fixed_tokens=tokens, fixed_size=size, max_side=max_side)

    @property
    def factor(self) -> int:
        """Side granularity of the dynamic resize (patch_size * merge_size)."""
        return self.patch_size * self.merge_size


def _backend_resize(width: int, height: int, max_side: int) -> tuple[int, int]:
    longest = max(width, height)
    if max_side <= 0 or longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def model_input_size(width: int, height: int, spec: VisualTokenSpec = VisualTokenSpec()) -> tuple[int, int]:
    """(width, height) the vision encoder sees for an image of this size (fixed grid: padded square)."""
    width, height = _backend_resize(width, height, spec.max_side)
    if spec.fixed_tokens:
        scale = spec.fixed_size / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    h_bar, w_bar = smart_resize(height, width, spec.factor, spec.min_pixels, spec.max_pixels)
    return w_bar, h_bar


def visual_tokens(
    width: int,
    height: int,
    patch_size: int = 14,
    merge_size: int = 2,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
    fixed_tokens: int = 0,
    max_side: int = 0,
    spec: VisualTokenSpec | None = None,
) -> int:
    """Visual tokens an image of ``width`` x ``height`` costs (``spec`` overrides the other arguments)."""
    spec = spec or VisualTokenSpec(patch_size, merge_size, min_pixels, max_pixels, fixed_tokens, 0, max_side)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if spec.fixed_tokens:
        return spec.fixed_tokens
    width, height = _backend_resize(width, height, spec.max_side)
    h_bar, w_bar = smart_resize(height, width, spec.factor, spec.min_pixels, spec.max_pixels)
    return (h_bar // spec.patch_size) * (w_bar // spec.patch_size) // (spec.merge_size**2)
