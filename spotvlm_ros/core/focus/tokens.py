"""Visual token counting: what an image of a given size costs a given vision-language model.

The rules of the image processors in transformers, re-stated without importing them:

* dynamic resolution (Qwen2-VL, Qwen2.5-VL with 14 px patches, Qwen3-VL and Qwen3.5 with 16 px patches):
  the image is resized by ``smart_resize`` to multiples of ``patch_size * merge_size`` with its pixel
  count kept in ``[min_pixels, max_pixels]``, then every ``merge_size x merge_size`` block of
  ``patch_size`` patches becomes one token;
* fixed grid (LLaVA, SmolVLM/Idefics3 without image splitting, PaliGemma): every image is resized to
  one square input and costs the same ``fixed_tokens``, whatever its size;
* pooled budget (Gemma 4): the image is scaled (up or down, aspect kept) to the largest size of at most
  ``pooled_tokens * merge_size**2`` patches with sides divisible by ``patch_size * merge_size``; every
  ``merge_size x merge_size`` patches are pooled into one token;
* tiles (``tiling="idefics3"``: SmolVLM, SmolVLM2, Idefics3; ``tiling="internvl"``: InternVL): the image
  is cut into ``tile_size`` tiles plus one global view, each costing ``tile_tokens``.

``max_side`` models a backend that first downscales images to a longest side (``image_max_side``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "VisualTokenSpec",
    "idefics3_tiles",
    "internvl_tiles",
    "model_input_size",
    "pooled_resize",
    "smart_resize",
    "visual_tokens",
]

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
    pooled_tokens: int = 0  # > 0: a pooled-budget model (Gemma 4) of at most this many tokens per image
    tiling: str = ""  # "idefics3" or "internvl": a tiled model (see the module docstring)
    tile_size: int = 0  # side of one tile (px)
    tile_tokens: int = 0  # tokens of one tile (and of the global view)
    max_tiles: int = 0  # internvl: tiles at most (the global view not counted)
    longest_edge: int = 0  # idefics3: the image is first scaled to this longest side

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.merge_size < 1:
            raise ValueError(
                f"patch_size and merge_size must be >= 1, got {self.patch_size}, {self.merge_size}"
            )
        if min(self.fixed_tokens, self.fixed_size, self.max_side, self.pooled_tokens) < 0:
            raise ValueError("fixed_tokens, fixed_size, max_side and pooled_tokens must be >= 0")
        if self.tiling not in ("", "idefics3", "internvl"):
            raise ValueError(f"tiling must be '', 'idefics3' or 'internvl', got {self.tiling!r}")
        if self.tiling and min(self.tile_size, self.tile_tokens) < 1:
            raise ValueError("a tiled model needs tile_size >= 1 and tile_tokens >= 1")
        if self.tiling == "idefics3" and self.longest_edge < 1:
            raise ValueError("an idefics3-tiled model needs longest_edge >= 1")
        if self.tiling == "internvl" and self.max_tiles < 1:
            raise ValueError("an internvl-tiled model needs max_tiles >= 1")

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
    if spec.pooled_tokens:
        h_bar, w_bar = pooled_resize(height, width, spec.patch_size, spec.merge_size, spec.pooled_tokens)
        return w_bar, h_bar
    if spec.tiling:
        return width, height
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
    if spec.pooled_tokens:
        h_bar, w_bar = pooled_resize(height, width, spec.patch_size, spec.merge_size, spec.pooled_tokens)
        return (h_bar // spec.patch_size) * (w_bar // spec.patch_size) // (spec.merge_size**2)
    if spec.tiling == "idefics3":
        return idefics3_tiles(height, width, spec.longest_edge, spec.tile_size) * spec.tile_tokens
    if spec.tiling == "internvl":
        return internvl_tiles(height, width, spec.tile_size, spec.max_tiles) * spec.tile_tokens
    h_bar, w_bar = smart_resize(height, width, spec.factor, spec.min_pixels, spec.max_pixels)
    return (h_bar // spec.patch_size) * (w_bar // spec.patch_size) // (spec.merge_size**2)


def pooled_resize(height: int, width: int, patch_size: int, pooling: int, max_tokens: int) -> tuple[int, int]:
    """(height, width) a Gemma 4 image processor resizes an image to (same rule as transformers)."""
    max_patches = max_tokens * pooling**2
    target_px = max_patches * patch_size**2
    factor = math.sqrt(target_px / (height * width))
    side = pooling * patch_size
    h_bar = math.floor(factor * height / side) * side
    w_bar = math.floor(factor * width / side) * side
    if h_bar == 0 and w_bar == 0:
        raise ValueError(f"image {width}x{height} is too thin for {side} px blocks")
    longest = (max_patches // pooling**2) * side
    if h_bar == 0:
        h_bar, w_bar = side, min(math.floor(width / height) * side, longest)
    elif w_bar == 0:
        h_bar, w_bar = min(math.floor(height / width) * side, longest), side
    return h_bar, w_bar


def idefics3_tiles(height: int, width: int, longest_edge: int, tile_size: int) -> int:
    """Views (tiles + the global one, or 1) of an Idefics3 / SmolVLM processor with image splitting."""
    if width >= height:
        height, width = int(longest_edge / (width / height)), longest_edge
        height += height % 2
    else:
        height, width = longest_edge, int(longest_edge * (width / height))
        width += width % 2
    height, width = max(height, 1), max(width, 1)
    rows, cols = math.ceil(height / tile_size), math.ceil(width / tile_size)
    return rows * cols + 1 if rows > 1 or cols > 1 else 1


def internvl_tiles(height: int, width: int, tile_size: int, max_tiles: int) -> int:
    """Views (tiles + a thumbnail, or 1) of an InternVL (GOT-OCR2) processor that crops to patches."""
    grids = sorted(
        ((w, h) for w in range(1, max_tiles + 1) for h in range(1, max_tiles + 1) if w * h <= max_tiles),
        key=lambda grid: grid[0] * grid[1],
    )
    aspect, area = width / height, width * height
    best, best_diff = (1, 1), float("inf")
    for grid in grids:
        diff = abs(aspect - grid[0] / grid[1])
        if diff < best_diff:
            best, best_diff = grid, diff
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * grid[0] * grid[1]:
            best = grid
    tiles = best[0] * best[1]
    return tiles + 1 if tiles > 1 else 1
