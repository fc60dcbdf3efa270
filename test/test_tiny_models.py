"""Tiny offline models: built from a locally trained tokenizer, saved, loaded back with from_pretrained."""

from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer
from transformers.utils import is_torchvision_available

from spotvlm_ros.models.qwen_processor import (
    Qwen2_5_VLImageOnlyProcessor,
    Qwen2VLImageOnlyProcessor,
    load_processor,
)
from spotvlm_ros.models.tiny import (
    TINY_FAMILIES,
    build_tiny_model,
    cached_tiny_model,
    tiny_config,
    tiny_tokenizer,
)
from spotvlm_ros.models.tiny_tokenizer import driving_corpus

torch.set_num_threads(1)

REQUIRED = {"qwen2_5_vl", "qwen2_vl", "idefics3", "llava"}
FAMILY_TOKENS = {
    "qwen2_5_vl": ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"],
    "qwen2_vl": ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|box_start|>"],
    "idefics3": [
        "<fake_token_around_image>",
        "<image>",
        "<global-img>",
        "<end_of_utterance>",
        "<row_6_col_6>",
    ],
    "llava": ["<image>", "<s>", "</s>", "<pad>"],
}


def test_required_families_are_built() -> None:
    assert set(TINY_FAMILIES) >= REQUIRED


def test_corpus_words_are_single_tokens_and_round_trip() -> None:
    tokenizer = tiny_tokenizer("qwen2_5_vl")
    for word in (" red", " green", " yellow", " car", " pedestrian", " traffic", " light"):
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
    text = 'The traffic light is red. [{"bbox_2d": [12, 34, 560, 78], "label": "car"}] 0.5 ünïcode'
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert any("bbox_2d" in line for line in driving_corpus())


@pytest.mark.parametrize("family", sorted(FAMILY_TOKENS))
def test_special_tokens_are_single_tokens_with_a_chat_template(family: str) -> None:
    tokenizer = tiny_tokenizer(family)
    for token in FAMILY_TOKENS[family]:
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert ids == [tokenizer.convert_tokens_to_ids(token)], token
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "What is it?" in rendered
    image_token = "<|image_pad|>" if family.startswith("qwen") else "<image>"
    assert rendered.count(image_token) == 1


def test_configs_use_the_tokenizer_ids() -> None:
    tokenizer = tiny_tokenizer("qwen2_5_vl")
    config = tiny_config("qwen2_5_vl", tokenizer)
    assert config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config.text_config.vocab_size == len(tokenizer)
    assert config.text_config.hidden_size <= 64


def test_build_save_reload_all_families_in_seconds(tmp_path) -> None:
    start = time.perf_counter()
    for family in TINY_FAMILIES:
        path = build_tiny_model(family, tmp_path / family)
        config = AutoConfig.from_pretrained(path)
        assert config.model_type == family
        model = AutoModelForImageTextToText.from_pretrained(path)
        assert sum(p.numel() for p in model.parameters()) < 2_000_000
        processor = load_processor(str(path), config.model_type)
        assert processor.chat_template
        assert AutoTokenizer.from_pretrained(path).eos_token_id == model.generation_config.eos_token_id
    assert time.perf_counter() - start < 60.0  # seconds even on a loaded 2-core machine


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava"])
def test_same_seed_same_weights_other_seed_other_weights(tmp_path, family: str) -> None:
    first = load_file(build_tiny_model(family, tmp_path / "a", seed=3) / "model.safetensors")
    again = load_file(build_tiny_model(family, tmp_path / "b", seed=3) / "model.safetensors")
    other = load_file(build_tiny_model(family, tmp_path / "c", seed=4) / "model.safetensors")
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_qwen_checkpoints_look_like_the_published_ones(tiny_model_factory) -> None:
    for family in ("qwen2_5_vl", "qwen2_vl"):
        path = tiny_model_factory(family)
        preprocessor = json.loads((path / "preprocessor_config.json").read_text())
        assert preprocessor["image_processor_type"] == "Qwen2VLImageProcessor"
        assert preprocessor["patch_size"] == 14 and preprocessor["merge_size"] == 2
        assert not (path / "video_preprocessor_config.json").exists()


@pytest.mark.skipif(is_torchvision_available(), reason="only without torchvision")
@pytest.mark.parametrize(
    ("family", "expected"),
    [("qwen2_5_vl", Qwen2_5_VLImageOnlyProcessor), ("qwen2_vl", Qwen2VLImageOnlyProcessor)],
)
def test_qwen_needs_the_image_only_processor_without_torchvision(
    tiny_model_factory, family, expected
) -> None:
    path = tiny_model_factory(family)
    with pytest.raises(ImportError, match="[Tt]orchvision"):
        AutoProcessor.from_pretrained(path)
    processor = load_processor(str(path), family)
    assert type(processor) is expected
    assert not hasattr(processor, "video_processor")
    assert processor.image_processor.merge_size == 2


@pytest.mark.parametrize("family", ["idefics3", "llava"])
def test_other_families_load_through_autoprocessor(tiny_model_factory, family: str) -> None:
    processor = load_processor(str(tiny_model_factory(family)), family)
    assert type(processor) is type(AutoProcessor.from_pretrained(tiny_model_factory(family)))


def test_cache_builds_once_and_reuses(tmp_path) -> None:
    path = cached_tiny_model("llava", seed=2, cache_dir=tmp_path)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert cached_tiny_model("llava", seed=2, cache_dir=tmp_path) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no staging leftovers
    assert cached_tiny_model("llava", seed=5, cache_dir=tmp_path) != path


def test_unknown_family_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown tiny model family 'gpt5'.*qwen2_5_vl"):
        build_tiny_model("gpt5", tmp_path)
    with pytest.raises(ValueError, match="unknown tiny model family"):
        cached_tiny_model("gpt5", cache_dir=tmp_path)
