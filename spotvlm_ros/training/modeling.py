"""Build, save and load the demo models: a real Qwen2.5-VL config at demo size, its processor and tokenizer.

A saved directory is laid out like a published Qwen2.5-VL checkpoint (``model.safetensors``,
``config.json``, ``generation_config.json``, tokenizer files, ``preprocessor_config.json``), so
:class:`~spotvlm_ros.models.hf_local.HfLocalBackend` and ``create_backend`` (backend ``hf``) load it
through the normal ``from_pretrained`` path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2VLImageProcessorPil,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from ..models.hf_local import fit_image
from ..models.qwen_processor import Qwen2_5_VLImageOnlyProcessor, load_processor
from .recipe import ModelSpec

PATCH_SIZE = 14
MERGE_SIZE = 2
MIN_PIXELS = 56 * 56


def _mrope_section(head_dim: int) -> list[int]:
    """Qwen2.5-VL's split of the rotary half-dimension into time, height and width (1/4, 3/8, 3/8)."""
    half = head_dim // 2
    time_part = half // 4
    height = (half - time_part) // 2
    return [time_part, height, half - time_part - height]


def model_config(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLConfig:
    """The Qwen2.5-VL config of ``spec`` whose special token ids match ``tokenizer``."""
    ids = tokenizer.convert_tokens_to_ids
    text = {
        "hidden_size": spec.hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 4096,
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10_000.0,
            "mrope_section": _mrope_section(spec.hidden // spec.heads),
        },
    }
    vision = {
        "depth": spec.vision_layers,
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_intermediate,
        "num_heads": spec.heads,
        "out_hidden_size": spec.hidden,
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": MERGE_SIZE,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": list(range(spec.vision_layers)),  # small inputs: full attention
    }
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )


def build_processor(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLImageOnlyProcessor:
    """The image-only Qwen2.5-VL processor resizing every image to at most ``spec``'s input pixels."""
    image_processor = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=spec.max_pixels)
    return Qwen2_5_VLImageOnlyProcessor(image_processor, tokenizer, chat_template=tokenizer.chat_template)


def build_model(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast, seed: int) -> Any:
    """A randomly initialised model of ``spec`` (float32) with greedy generation settings."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(model_config(spec, tokenizer), dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    return model


def save_model_dir(model: Any, processor: Any, out_dir: Path) -> Path:
    """Save weights (safetensors), config, generation config, tokenizer and image processor."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.tokenizer.save_pretrained(out_dir)
    processor.image_processor.save_pretrained(out_dir)
    return out_dir


def load_model_dir(path: Path) -> tuple[Any, Any]:
    """(model, processor) of a saved directory, through ``from_pretrained``."""
    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch.float32)
    return model, load_processor(str(path), str(model.config.model_type))


def model_input_size(processor: Any, width: int, height: int) -> tuple[int, int]:
    """(width, height) the processor resizes a ``width`` x ``height`` image to."""
    size = processor.image_processor.size
    rows, cols = smart_resize(
        height,
        width,
        PATCH_SIZE * MERGE_SIZE,
        min_pixels=size["shortest_edge"],
        max_pixels=size["longest_edge"],
    )
    return cols, rows


def to_model_input(image: np.ndarray, processor: Any, image_max_side: int) -> np.ndarray:
    """``image`` as the model sees it: the backend's fit to ``image_max_side``, then the processor's resize.

    The processor resizes with PIL bicubic; an image already at its target size passes through
    unchanged, so caching this array and processing it later gives the very same pixel values.
    """
    fitted = fit_image(image, image_max_side)
    width, height = model_input_size(processor, fitted.shape[1], fitted.shape[0])
    if (width, height) == (fitted.shape[1], fitted.shape[0]):
        return np.ascontiguousarray(fitted)
    return np.asarray(Image.fromarray(fitted).resize((width, height), Image.BICUBIC))
