"""Visual token counting: the Qwen2/2.5-VL smart_resize rule, fixed-grid models, backend downscale."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

from spotvlm_ros.core.focus import VisualTokenSpec, model_input_size, smart_resize, visual_tokens


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(min_value=1, max_value=4000),
    height=st.integers(min_value=1, max_value=4000),
    min_pixels=st.sampled_from([56 * 56, 128 * 28 * 28, 256 * 28 * 28]),
    max_pixels=st.sampled_from([28 * 28 * 1280, 512 * 28 * 28, 16384 * 28 * 28]),
)
def test_smart_resize_matches_transformers(width, height, min_pixels, max_pixels):
    if max(width, height) / min(width, height) > 200:
        with pytest.raises(ValueError):
            smart_resize(height, width, 28, min_pixels, max_pixels)
        return
    assert smart_resize(height, width, 28, min_pixels, max_pixels) == hf_smart_resize(
        height, width, 28, min_pixels, max_pixels
    )


@pytest.mark.parametrize(
    ("size", "tokens"),
    [
        ((448, 336), 16 * 12),  # multiples of 28: (448/14 * 336/14) / 4
        ((224, 224), 64),
        ((224, 168), 48),
        ((640, 480), (644 // 14) * (476 // 14) // 4),  # rounded to 644 x 476
        ((28, 28), 4),  # below min_pixels: scaled up to 56 x 56
        ((4000, 3000), (1148 // 14) * (840 // 14) // 4),  # above max_pixels: scaled down
    ],
)
def test_qwen_token_counts(size, tokens):
    assert visual_tokens(*size) == tokens


@pytest.mark.parametrize("size", [(640, 480), (224, 168), (37, 300), (1000, 1000)])
def test_token_count_equals_the_real_qwen2_vl_image_processor(size):
    processor = Qwen2VLImageProcessorPil()
    out = processor(images=[np.zeros((size[1], size[0], 3), np.uint8)], return_tensors="np")
    grid = out["image_grid_thw"][0]
    assert visual_tokens(*size) == int(np.prod(grid)) // processor.merge_size**2


def test_patch_and_merge_size_change_the_count():
    assert visual_tokens(448, 448, patch_size=16, merge_size=2) == (448 // 16) ** 2 // 4
    assert visual_tokens(448, 448, patch_size=14, merge_size=1) == 32 * 32


def test_fixed_grid_models_cost_the_same_for_every_size():
    spec = VisualTokenSpec.fixed_grid(576, 336)  # LLaVA-1.5
    assert {visual_tokens(w, h, spec=spec) for w, h in [(32, 32), (640, 480), (4000, 100)]} == {576}
    assert visual_tokens(640, 480, fixed_tokens=64) == 64
    assert model_input_size(640, 480, spec) == (336, 252)


def test_backend_max_side_is_applied_first():
    spec = VisualTokenSpec(max_side=448)
    assert visual_tokens(896, 672, spec=spec) == visual_tokens(448, 336)
    assert model_input_size(896, 672, spec) == (448, 336)
    assert visual_tokens(320, 240, spec=spec) == visual_tokens(320, 240)


@pytest.mark.parametrize("size", [(0, 10), (10, -1)])
def test_bad_sizes_raise(size):
    with pytest.raises(ValueError):
        visual_tokens(*size)


def test_bad_specs_raise():
    with pytest.raises(ValueError):
        VisualTokenSpec(patch_size=0)
    with pytest.raises(ValueError):
        VisualTokenSpec.fixed_grid(0, 336)
