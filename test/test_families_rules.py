"""The family table: served-name lookup, token rules against the real image processors, and why Qwen3.5
prefix reuse is refused (shown on the model, not assumed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    Gemma4ImageProcessorPil,
    GotOcr2ImageProcessorPil,
    Qwen2VLImageProcessorPil,
    SmolVLMImageProcessorPil,
)

from spotvlm_ros.core.focus.tokens import visual_tokens
from spotvlm_ros.models.families import (
    FAMILIES,
    family_by_name,
    family_for_model_type,
    family_for_served_name,
    resolve_convention,
)
from spotvlm_ros.models.grounding import COORD_FORMATS
from spotvlm_ros.models.hf_local import CACHE_ARG, HfLocalBackend

torch.set_num_threads(1)

SIZES = [(640, 480), (224, 224), (1280, 720), (300, 900), (1920, 1080)]


@pytest.mark.parametrize(
    ("served", "family"),
    [
        ("Qwen/Qwen3-VL-235B-A22B-Instruct", "qwen3_vl"),
        ("Qwen/Qwen3-VL-30B-A3B-Instruct-FP8", "qwen3_vl"),
        ("qwen3-vl-2b-instruct", "qwen3_vl"),
        ("Qwen/Qwen2.5-VL-72B-Instruct-AWQ", "qwen2_5_vl"),
        ("Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl"),
        ("Qwen/Qwen3.5-397B-A17B", "qwen3_5"),
        ("google/gemma-4-E2B-it", "gemma4"),
        ("OpenGVLab/InternVL3-1B-hf", "internvl"),
        ("HuggingFaceTB/SmolVLM2-2.2B-Instruct", "smolvlm"),
        ("zai-org/GLM-4.6V-Flash", "glm4v"),
        ("gpt-4o", "unknown"),
        ("", "unknown"),
    ],
)
def test_served_names_find_their_family(served: str, family: str) -> None:
    assert family_for_served_name(served).name == family


def test_table_is_consistent() -> None:
    types = [t for f in FAMILIES for t in f.model_types]
    assert len(types) == len(set(types))
    for family in FAMILIES:
        assert family.coord_format in COORD_FORMATS
        assert family.prefix_reuse or family.prefix_reuse_note
        for model_type in family.model_types:
            assert family_for_model_type(model_type) is family
    assert family_by_name("qwen2_5_vl").px_per_token == 28
    assert family_by_name("qwen3_vl").px_per_token == 32
    assert family_for_model_type("qwen3_vl_moe").coord_format == "qwen2_1000"
    assert family_for_model_type("qwen2_5_vl").coord_format == "qwen25_abs"
    assert resolve_convention(family_by_name("qwen3_vl"), "auto").coord_format == "qwen2_1000"
    assert resolve_convention(family_by_name("qwen3_vl"), "qwen25_abs").source == "config"


def _qwen3_processor_count(width: int, height: int) -> int:
    processor = Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, min_pixels=256 * 256, max_pixels=4096**2
    )
    return processor.get_number_of_image_patches(height, width, {}) // 4


def _gemma4_count(width: int, height: int) -> int:
    image = np.zeros((height, width, 3), np.uint8)
    return int(Gemma4ImageProcessorPil()(images=[image])["num_soft_tokens_per_image"][0])


def _smolvlm2_count(width: int, height: int) -> int:
    processor = SmolVLMImageProcessorPil(size={"longest_edge": 2048}, max_image_size={"longest_edge": 512})
    patches, _, _ = processor.get_number_of_image_patches(height, width, {})
    return max(patches, 1) * 64


def _internvl_count(width: int, height: int) -> int:
    processor = GotOcr2ImageProcessorPil(
        size={"height": 448, "width": 448}, crop_to_patches=True, max_patches=12
    )
    return processor.get_number_of_image_patches(height, width, {}) * 256


@pytest.mark.parametrize(
    ("family", "count"),
    [
        ("qwen3_vl", _qwen3_processor_count),
        ("gemma4", _gemma4_count),
        ("smolvlm", _smolvlm2_count),
        ("internvl", _internvl_count),
    ],
)
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_token_rules_match_the_real_image_processors(family, count, width: int, height: int) -> None:
    spec = family_by_name(family).tokens
    assert visual_tokens(width, height, spec=spec) == count(width, height)


def test_qwen3_vl_frame_costs_32_px_per_token() -> None:
    assert visual_tokens(640, 480, spec=family_by_name("qwen3_vl").tokens) == 300
    assert visual_tokens(640, 480, spec=family_by_name("qwen2_5_vl").tokens) == 17 * 23


def test_qwen3_5_prefix_state_cannot_be_reused_exactly(tiny_model_factory) -> None:
    """Why Qwen3.5 reuses a snapshot of its prefix: after a prompt, its linear-attention state cannot be
    cropped back to a shared prefix (the cache refuses, or a crop leaves the state and changes the logits)."""
    backend = HfLocalBackend(tiny_model_factory("qwen3_5"), max_new_tokens=2, prefix_cache=False)
    model = backend.model
    first = backend.tokenizer(
        "The traffic light is red. What is the state of the traffic light?", return_tensors="pt"
    )
    second = backend.tokenizer("The traffic light is red. Is it safe to go?", return_tensors="pt")
    shared = 6
    assert first["input_ids"][0, :shared].tolist() == second["input_ids"][0, :shared].tolist()
    try:
        with torch.inference_mode():
            fresh = model(input_ids=second["input_ids"]).logits[0, -1]
            cache = getattr(model(input_ids=first["input_ids"], use_cache=True), CACHE_ARG)
            try:  # transformers >= 5.2x refuses outright; older releases crop only the attention layers
                cache.crop(shared)
            except RuntimeError as err:
                assert "past states" in str(err)
            else:
                reused = model(input_ids=second["input_ids"][:, shared:], **{CACHE_ARG: cache}).logits[0, -1]
                # the recurrent state still holds the first prompt: the answer changes
                assert not torch.allclose(fresh, reused, atol=1e-4)
    finally:
        backend.close()


def test_gemma4_sliding_window_cache_cannot_go_back_to_a_prefix(tiny_model_factory) -> None:
    """Why Gemma 4 reuses a snapshot of its prefix: once a prompt passes its sliding window, the window
    layers' cache cannot be cut back to a shorter prefix."""
    backend = HfLocalBackend(tiny_model_factory("gemma4"), max_new_tokens=2)
    assert backend.prefix_reuse_mode == "snapshot" and "sliding-window" in backend.prefix_reuse_note
    window = backend.model.config.text_config.sliding_window
    ids = backend.tokenizer("The traffic light is red. " * 20, return_tensors="pt")["input_ids"]
    assert ids.shape[1] > window
    try:
        with torch.inference_mode():
            cache = getattr(backend.model(input_ids=ids, use_cache=True), CACHE_ARG)
            with pytest.raises(RuntimeError, match="sliding window"):
                cache.crop(window // 2)
    finally:
        backend.close()


def test_token_spec_rejects_incomplete_rules() -> None:
    from spotvlm_ros.core.focus.tokens import VisualTokenSpec

    with pytest.raises(ValueError, match="tiling"):
        VisualTokenSpec(tiling="mosaic", tile_size=8, tile_tokens=1)
    with pytest.raises(ValueError, match="tile_size"):
        VisualTokenSpec(tiling="internvl", max_tiles=4)
    with pytest.raises(ValueError, match="longest_edge"):
        VisualTokenSpec(tiling="idefics3", tile_size=512, tile_tokens=64)
    with pytest.raises(ValueError, match="pooled_tokens"):
        VisualTokenSpec(pooled_tokens=-1)


def test_qwen2_5_vl_large_frames_follow_the_published_pixel_cap() -> None:
    processor = Qwen2VLImageProcessorPil(
        patch_size=14, merge_size=2, min_pixels=56 * 56, max_pixels=12_845_056
    )
    spec = family_by_name("qwen2_5_vl").tokens
    for width, height in ((1920, 1080), (3840, 2160), (640, 480)):
        expected = processor.get_number_of_image_patches(height, width, {}) // 4
        assert visual_tokens(width, height, spec=spec) == expected
