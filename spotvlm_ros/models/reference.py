"""Real-size Qwen2.5-VL architectures with random weights, for GPU latency benchmarks without downloads.

The configs are those of the published Qwen2.5-VL-3B-Instruct and -7B-Instruct checkpoints; the
tokenizer is the tiny one (its ids index the real-size embedding), the image processor has the real
resize rule (patch 14, merge 2, 3136 to 12845056 pixels). Latency depends on the architecture and the
token counts only, so the figures stand for the real models'.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForImageTextToText, Qwen2_5_VLConfig, Qwen2VLImageProcessorPil

from .qwen_processor import Qwen2_5_VLImageOnlyProcessor
from .tiny import QWEN_CHAT_TEMPLATE, tiny_tokenizer

_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
}
_ROPE = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]}
QWEN2_5_VL_SIZES: dict[str, dict[str, Any]] = {
    "3b": {
        "text": {
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "vocab_size": 151936,
        },
        "tie_word_embeddings": True,
    },
    "7b": {
        "text": {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "vocab_size": 152064,
        },
        "tie_word_embeddings": False,
    },
}


def qwen2_5_vl_reference_config(size: str) -> Qwen2_5_VLConfig:
    """The architecture of Qwen2.5-VL-``size`` (a key of QWEN2_5_VL_SIZES), token ids of the tiny tokenizer.

    A size entry holds its text config, ``tie_word_embeddings`` and optionally vision overrides.
    """
    try:
        spec = QWEN2_5_VL_SIZES[size]
    except KeyError:
        raise ValueError(f"unknown Qwen2.5-VL size {size!r}; known: {', '.join(QWEN2_5_VL_SIZES)}") from None
    tokenizer = tiny_tokenizer("qwen2_5_vl")
    ids = tokenizer.convert_tokens_to_ids
    text = {
        **spec["text"],
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "rope_parameters": dict(_ROPE),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config={**_VISION, **spec.get("vision", {}), "out_hidden_size": spec["text"]["hidden_size"]},
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=spec["tie_word_embeddings"],
    )


def reference_processor() -> Qwen2_5_VLImageOnlyProcessor:
    """Image-only Qwen2.5-VL processor with the published resize rule and the tiny tokenizer."""
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=14 * 14 * 4 * 16384)
    return Qwen2_5_VLImageOnlyProcessor(
        image_processor, tiny_tokenizer("qwen2_5_vl"), chat_template=QWEN_CHAT_TEMPLATE
    )


def build_random_reference(size: str, device: str | torch.device, dtype: torch.dtype = torch.bfloat16) -> Any:
    """Qwen2.5-VL-``size`` with random weights, created directly on ``device`` (no CPU copy)."""
    config = qwen2_5_vl_reference_config(size)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    return model.eval()
