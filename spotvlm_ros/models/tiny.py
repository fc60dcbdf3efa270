"""Tiny randomly initialised VLMs of every supported family, built offline in about a second.

Each model gets a tokenizer trained locally (:mod:`.tiny_tokenizer`) with its family's special tokens and
chat template, the family's real image processor (configured small) and a real model config with tiny
dimensions. :func:`build_tiny_model` saves everything the way a Hugging Face checkpoint is laid out, so
the model is loaded back through the real ``from_pretrained`` path by :class:`.hf_local.HfLocalBackend`.
Qwen2/2.5-VL directories look like the published checkpoints (no video processor config), which is
why they load through :mod:`.qwen_processor` when torchvision is missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForImageTextToText,
    CLIPImageProcessorPil,
    GenerationConfig,
    Idefics3Config,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlavaConfig,
    LlavaProcessor,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2VLConfig,
    Qwen2VLImageProcessorPil,
)

from .tiny_tokenizer import train_tokenizer

TINY_FAMILIES = ("qwen2_5_vl", "qwen2_vl", "idefics3", "llava")
BUILD_VERSION = 1  # bump when a tiny model's layout changes, so cached copies are rebuilt

_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
_KV_HEADS = 2

QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant."
    "<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}"
    "{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
_IDEFICS3_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    *[f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)],
]
_LLAVA_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]


@dataclass(frozen=True)
class _Family:
    """How to build one family: tokenizer specials, chat template, config and processor files."""

    specials: list[str]
    chat_template: str
    bos: str | None
    eos: str
    pad: str
    make_config: Callable[[PreTrainedTokenizerFast], PretrainedConfig]
    save_processor: Callable[[PreTrainedTokenizerFast, Path], None]


def _text_config(tokenizer: PreTrainedTokenizerFast, **extra: object) -> dict:
    return {
        **_TEXT,
        "num_key_value_heads": _KV_HEADS,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 8192,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
        **extra,
    }


def _qwen_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }


def _qwen2_5_vl_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    rope = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]}
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": _TEXT["hidden_size"],
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1],
    }
    return Qwen2_5_VLConfig(
        text_config=_text_config(tokenizer, rope_parameters=rope),
        vision_config=vision,
        **_qwen_token_ids(tokenizer),
    )


def _qwen2_vl_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    rope = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]}
    vision = {
        "depth": 2,
        "embed_dim": 32,
        "hidden_size": _TEXT["hidden_size"],
        "mlp_ratio": 2,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    return Qwen2VLConfig(
        text_config=_text_config(tokenizer, rope_parameters=rope),
        vision_config=vision,
        **_qwen_token_ids(tokenizer),
    )


def _idefics3_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 64,
        "patch_size": 16,
    }
    return Idefics3Config(
        text_config={"model_type": "llama", **_text_config(tokenizer)},
        vision_config=vision,
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )


def _llava_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    vision = {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 56,
        "patch_size": 14,
        "projection_dim": 32,
    }
    return LlavaConfig(
        text_config={"model_type": "llama", **_text_config(tokenizer)},
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=16,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )


def _save_qwen_processor(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    """Lay the processor out like the published Qwen2/2.5-VL checkpoints: tokenizer + image processor."""
    tokenizer.save_pretrained(out_dir)
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=28 * 28 * 1280).save_pretrained(out_dir)


def _save_idefics3_processor(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 4 * 64}, max_image_size={"longest_edge": 64}, do_image_splitting=True
    )
    processor = Idefics3Processor(
        image_processor, tokenizer, image_seq_len=4, chat_template=SMOLVLM_CHAT_TEMPLATE
    )
    processor.save_pretrained(out_dir)


def _save_llava_processor(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    processor = LlavaProcessor(
        image_processor,
        tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)


_FAMILIES: dict[str, _Family] = {
    "qwen2_5_vl": _Family(
        _QWEN_SPECIALS, QWEN_CHAT_TEMPLATE, None, "<|im_end|>", "<|endoftext|>",
        _qwen2_5_vl_config, _save_qwen_processor,
    ),
    "qwen2_vl": _Family(
        _QWEN_SPECIALS, QWEN_CHAT_TEMPLATE, None, "<|im_end|>", "<|endoftext|>",
        _qwen2_vl_config, _save_qwen_processor,
    ),
    "idefics3": _Family(
        _IDEFICS3_SPECIALS, SMOLVLM_CHAT_TEMPLATE, "<|im_start|>", "<end_of_utterance>", "<|im_end|>",
        _idefics3_config, _save_idefics3_processor,
    ),
    "llava": _Family(
        _LLAVA_SPECIALS, LLAVA_CHAT_TEMPLATE, "<s>", "</s>", "<pad>",
        _llava_config, _save_llava_processor,
    ),
}  # fmt: skip


def tiny_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """The locally trained tokenizer of ``family`` (special tokens and chat template included)."""
    spec = _family(family)
    return train_tokenizer(
        spec.specials, spec.chat_template, bos_token=spec.bos, eos_token=spec.eos, pad_token=spec.pad
    )


def tiny_config(family: str, tokenizer: PreTrainedTokenizerFast | None = None) -> PretrainedConfig:
    """The tiny model config of ``family`` whose special token ids match ``tokenizer``."""
    return _family(family).make_config(tokenizer or tiny_tokenizer(family))


def build_tiny_model(family: str, out_dir: Path, seed: int = 0) -> Path:
    """Build a tiny random model of ``family`` under the seed and save it (weights, config, processor)."""
    spec = _family(family)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(family)
    config = spec.make_config(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out_dir)
    spec.save_processor(tokenizer, out_dir)
    return out_dir


def default_cache_dir() -> Path:
    """Where tiny models are cached: ``$SPOTVLM_CACHE_DIR`` or ``~/.cache/spotvlm``, then ``tiny/``."""
    root = os.environ.get("SPOTVLM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spotvlm"
    )
    return Path(root) / "tiny"


def cached_tiny_model(family: str, seed: int = 0, cache_dir: Path | None = None) -> Path:
    """The directory of the tiny ``family`` model under ``seed``, built once and reused afterwards.

    Building goes to a temporary sibling directory that is renamed into place, so concurrent processes
    never see a half-written model.
    """
    _family(family)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / f"{family}-{seed}-v{BUILD_VERSION}"
    if (target / "config.json").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{family}-", dir=cache_dir))
    try:
        build_tiny_model(family, staging, seed)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _family(family: str) -> _Family:
    try:
        return _FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown tiny model family {family!r}; known: {', '.join(TINY_FAMILIES)}") from None
