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

from .tiny_families import NEW_FAMILIES
from .tiny_parts import (
    IDEFICS3_SPECIALS,
    LLAVA_CHAT_TEMPLATE,
    LLAVA_SPECIALS,
    QWEN_CHAT_TEMPLATE,
    QWEN_SPECIALS,
    SMOLVLM_CHAT_TEMPLATE,
    TEXT,
    TinyFamily,
    idefics_like_config,
    qwen_token_ids,
    text_config,
)
from .tiny_tokenizer import train_tokenizer

BUILD_VERSION = 1  # bump when a tiny model's layout changes, so cached copies are rebuilt


def _qwen2_5_vl_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    rope = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]}
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": TEXT["hidden_size"],
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1],
    }
    return Qwen2_5_VLConfig(
        text_config=text_config(tokenizer, rope_parameters=rope),
        vision_config=vision,
        **qwen_token_ids(tokenizer),
    )


def _qwen2_vl_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    rope = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]}
    vision = {
        "depth": 2,
        "embed_dim": 32,
        "hidden_size": TEXT["hidden_size"],
        "mlp_ratio": 2,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    return Qwen2VLConfig(
        text_config=text_config(tokenizer, rope_parameters=rope),
        vision_config=vision,
        **qwen_token_ids(tokenizer),
    )


def _idefics3_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    return idefics_like_config(Idefics3Config, tokenizer)


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
        text_config={"model_type": "llama", **text_config(tokenizer)},
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


_FAMILIES: dict[str, TinyFamily] = {
    "qwen2_5_vl": TinyFamily(
        QWEN_SPECIALS, QWEN_CHAT_TEMPLATE, None, "<|im_end|>", "<|endoftext|>",
        _qwen2_5_vl_config, _save_qwen_processor,
    ),
    "qwen2_vl": TinyFamily(
        QWEN_SPECIALS, QWEN_CHAT_TEMPLATE, None, "<|im_end|>", "<|endoftext|>",
        _qwen2_vl_config, _save_qwen_processor,
    ),
    "idefics3": TinyFamily(
        IDEFICS3_SPECIALS, SMOLVLM_CHAT_TEMPLATE, "<|im_start|>", "<end_of_utterance>", "<|im_end|>",
        _idefics3_config, _save_idefics3_processor,
    ),
    "llava": TinyFamily(
        LLAVA_SPECIALS, LLAVA_CHAT_TEMPLATE, "<s>", "</s>", "<pad>",
        _llava_config, _save_llava_processor,
    ),
    **NEW_FAMILIES,
}  # fmt: skip
TINY_FAMILIES = tuple(_FAMILIES)


def tiny_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """The locally trained tokenizer of ``family`` (special tokens and chat template included)."""
    spec = _family(family)
    return train_tokenizer(
        spec.specials,
        spec.chat_template,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        extra_special_tokens=spec.extra_tokens,
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


def _family(family: str) -> TinyFamily:
    try:
        return _FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown tiny model family {family!r}; known: {', '.join(TINY_FAMILIES)}") from None
