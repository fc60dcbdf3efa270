"""Tiny offline models of today's families: Qwen3-VL (dense and MoE), Qwen3.5, Gemma 4, InternVL, SmolVLM2.

Same recipe as :mod:`.tiny`: a locally trained tokenizer with the family's special tokens, the family's
real config class with tiny dimensions, and its real image processor configured small. Processor files
are laid out like the published checkpoints: Qwen3-VL and Qwen3.5 as tokenizer + image processor (so
they load through the image-only assembly of :mod:`.qwen_processor` when torchvision is missing), the
others as tokenizer + image processor + ``processor_config.json`` naming the official processor class.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import (
    Gemma4Config,
    Gemma4ImageProcessorPil,
    GotOcr2ImageProcessorPil,
    InternVLConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2VLImageProcessorPil,
    Qwen3_5Config,
    Qwen3VLConfig,
    Qwen3VLMoeConfig,
    SmolVLMConfig,
    SmolVLMImageProcessorPil,
)

from .tiny_parts import (
    IDEFICS3_SPECIALS,
    KV_HEADS,
    QWEN_CHAT_TEMPLATE,
    QWEN_SPECIALS,
    SMOLVLM_CHAT_TEMPLATE,
    TEXT,
    TinyFamily,
    idefics_like_config,
    qwen_token_ids,
    text_config,
)

_MROPE = {
    "rope_type": "default",
    "rope_theta": 5_000_000.0,
    "mrope_section": [2, 3, 3],
    "mrope_interleaved": True,
}
_QWEN3_VISION = {
    "depth": 2,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_heads": 2,
    "out_hidden_size": TEXT["hidden_size"],
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "num_position_embeddings": 64,
}
QWEN3_MIN_PIXELS = 64 * 64
QWEN3_MAX_PIXELS = 32 * 32 * 1280

INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA4_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<|turn>{{ role }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}<|image|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<turn|>\n{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)
QWEN3_5_CHAT_TEMPLATE = QWEN_CHAT_TEMPLATE.replace(
    "<|im_start|>assistant\n{% endif %}",
    "<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% else %}<think>\n{% endif %}{% endif %}",
)
_INTERNVL_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
_GEMMA4_TOKENS = {
    "image_token": "<|image|>",
    "boi_token": "<|image>",
    "eoi_token": "<image|>",
    "audio_token": "<|audio|>",
    "boa_token": "<|audio>",
    "eoa_token": "<audio|>",
}
INTERNVL_SPECIALS = [*QWEN_SPECIALS, *_INTERNVL_TOKENS.values()]
GEMMA4_SPECIALS = ["<pad>", "<eos>", "<bos>", "<|turn>", "<turn|>", *_GEMMA4_TOKENS.values(), "<|video|>"]
SMOLVLM2_SPECIALS = [*IDEFICS3_SPECIALS, "<video>"]


def _qwen3_vl_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    return Qwen3VLConfig(
        text_config=text_config(tokenizer, rope_parameters=_MROPE, head_dim=16),
        vision_config={**_QWEN3_VISION, "deepstack_visual_indexes": [0]},
        **qwen_token_ids(tokenizer),
    )


def _qwen3_vl_moe_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    moe = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "decoder_sparse_step": 1}
    return Qwen3VLMoeConfig(
        text_config=text_config(tokenizer, rope_parameters=_MROPE, head_dim=16, **moe),
        vision_config={**_QWEN3_VISION, "deepstack_visual_indexes": [0]},
        **qwen_token_ids(tokenizer),
    )


def _qwen3_5_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    linear = {
        "layer_types": ["linear_attention", "full_attention"],
        "linear_key_head_dim": 8,
        "linear_value_head_dim": 8,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
    }
    rope = {**_MROPE, "partial_rotary_factor": 0.25}
    return Qwen3_5Config(
        text_config=text_config(tokenizer, rope_parameters=rope, head_dim=16, **linear),
        vision_config=_QWEN3_VISION,
        **qwen_token_ids(tokenizer),
    )


def _smolvlm_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    return idefics_like_config(SmolVLMConfig, tokenizer)


def _internvl_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": [56, 56],
        "patch_size": [14, 14],
    }
    return InternVLConfig(
        vision_config=vision,
        text_config={"model_type": "qwen2", **text_config(tokenizer)},
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=4,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )


def _gemma4_config(tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    ids = tokenizer.convert_tokens_to_ids
    text = {
        **text_config(tokenizer),
        "head_dim": 16,
        "global_head_dim": 16,
        "num_key_value_heads": KV_HEADS,
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 64,
        "hidden_size_per_layer_input": 8,
        "vocab_size_per_layer_input": len(tokenizer),
        "tie_word_embeddings": True,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "patch_size": 16,
        "pooling_kernel_size": 3,
        "position_embedding_size": 256,
    }
    return Gemma4Config(
        text_config=text,
        vision_config=vision,
        audio_config=None,
        image_token_id=ids("<|image|>"),
        boi_token_id=ids("<|image>"),
        eoi_token_id=ids("<image|>"),
        video_token_id=ids("<|video|>"),
        audio_token_id=ids("<|audio|>"),
        boa_token_id=ids("<|audio>"),
        eoa_token_index=ids("<audio|>"),
    )


def _save_qwen3_processor(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    """Published Qwen3-VL layout without the video processor: tokenizer, image processor, template."""
    tokenizer.save_pretrained(out_dir)
    Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, min_pixels=QWEN3_MIN_PIXELS, max_pixels=QWEN3_MAX_PIXELS
    ).save_pretrained(out_dir)


def _processor_files(
    tokenizer: PreTrainedTokenizerFast,
    image_processor: object,
    out_dir: Path,
    processor_class: str,
    **extra: object,
) -> None:
    """Tokenizer, image processor, ``processor_config.json`` and ``chat_template.jinja`` as published."""
    tokenizer.save_pretrained(out_dir)
    image_processor.save_pretrained(out_dir)  # type: ignore[attr-defined]
    config = {"processor_class": processor_class, **extra}
    (out_dir / "processor_config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "chat_template.jinja").write_text(str(tokenizer.chat_template))


def _save_smolvlm_processor(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    image_processor = SmolVLMImageProcessorPil(
        size={"longest_edge": 4 * 64}, max_image_size={"longest_edge": 64}, do_image_splitting=True
    )
    _processor_files(tokenizer, image_processor, out_dir, "SmolVLMProcessor", image_seq_len=4)


def _save_internvl_processor(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": 56, "width": 56}, crop_to_patches=True, min_patches=1, max_patches=6
    )
    _processor_files(tokenizer, image_processor, out_dir, "InternVLProcessor", image_seq_length=4)


def _save_gemma4_processor(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    image_processor = Gemma4ImageProcessorPil(max_soft_tokens=70, patch_size=16, pooling_kernel_size=3)
    _processor_files(tokenizer, image_processor, out_dir, "Gemma4Processor", image_seq_length=70)


_QWEN3 = (QWEN_SPECIALS, QWEN_CHAT_TEMPLATE, None, "<|im_end|>", "<|endoftext|>")

NEW_FAMILIES: dict[str, TinyFamily] = {
    "qwen3_vl": TinyFamily(*_QWEN3, _qwen3_vl_config, _save_qwen3_processor),
    "qwen3_vl_moe": TinyFamily(*_QWEN3, _qwen3_vl_moe_config, _save_qwen3_processor),
    "qwen3_5": TinyFamily(
        [*QWEN_SPECIALS, "<think>", "</think>"], QWEN3_5_CHAT_TEMPLATE, None, "<|im_end|>", "<|endoftext|>",
        _qwen3_5_config, _save_qwen3_processor,
    ),
    "smolvlm": TinyFamily(
        SMOLVLM2_SPECIALS, SMOLVLM_CHAT_TEMPLATE, "<|im_start|>", "<end_of_utterance>", "<|im_end|>",
        _smolvlm_config, _save_smolvlm_processor,
    ),
    "internvl": TinyFamily(
        INTERNVL_SPECIALS, INTERNVL_CHAT_TEMPLATE, None, "<|im_end|>", "<|endoftext|>",
        _internvl_config, _save_internvl_processor, _INTERNVL_TOKENS,
    ),
    "gemma4": TinyFamily(
        GEMMA4_SPECIALS, GEMMA4_CHAT_TEMPLATE, "<bos>", "<turn|>", "<pad>",
        _gemma4_config, _save_gemma4_processor, _GEMMA4_TOKENS,
    ),
}  # fmt: skip
