"""Processors for any checkpoint, with an image-only path for Qwen2/2.5-VL when torchvision is missing.

``AutoProcessor`` builds a Qwen2/2.5-VL processor together with its video processor, and that one needs
torchvision. SpotVLM only feeds images, so when torchvision cannot be imported the processor is assembled
from the checkpoint's own tokenizer, image processor (the PIL backend, same resize rule) and chat template,
in a subclass of the official processor class that simply has no video processor. Everything else
(placeholder expansion, ``mm_token_type_ids``, the model inputs) is the official code. When torchvision
is importable, ``AutoProcessor`` is used as it is.
"""

from __future__ import annotations

import json
from typing import Any

from transformers import (
    AutoProcessor,
    AutoTokenizer,
    ProcessorMixin,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)
from transformers.utils import cached_file, is_torchvision_available


class _ImageOnly:
    """Drops the ``video_processor`` argument (a processor's parts are read from this signature)."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template)  # type: ignore[call-arg]


class Qwen2VLImageOnlyProcessor(_ImageOnly, Qwen2VLProcessor):
    """Qwen2-VL processor for images only (no video processor, hence no torchvision)."""


class Qwen2_5_VLImageOnlyProcessor(_ImageOnly, Qwen2_5_VLProcessor):  # noqa: N801 (transformers naming)
    """Qwen2.5-VL processor for images only (no video processor, hence no torchvision)."""


IMAGE_ONLY_PROCESSORS: dict[str, type[ProcessorMixin]] = {
    "qwen2_vl": Qwen2VLImageOnlyProcessor,
    "qwen2_5_vl": Qwen2_5_VLImageOnlyProcessor,
}


def needs_image_only_processor(model_type: str) -> bool:
    """True when ``model_type``'s official processor cannot be built here (Qwen-VL without torchvision)."""
    return model_type in IMAGE_ONLY_PROCESSORS and not is_torchvision_available()


def load_processor(model_path: str, model_type: str, **kwargs: Any) -> ProcessorMixin:
    """Load the processor of the checkpoint at ``model_path`` (a local directory or a Hub id)."""
    if needs_image_only_processor(model_type):
        return load_image_only_processor(model_path, model_type, **kwargs)
    return AutoProcessor.from_pretrained(model_path, **kwargs)


def load_image_only_processor(model_path: str, model_type: str, **kwargs: Any) -> ProcessorMixin:
    """The image-only Qwen-VL processor from the checkpoint's tokenizer, image processor and template."""
    try:
        processor_class = IMAGE_ONLY_PROCESSORS[model_type]
    except KeyError:
        raise ValueError(f"no image-only processor for model type {model_type!r}") from None
    tokenizer = AutoTokenizer.from_pretrained(model_path, **kwargs)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(model_path, **kwargs)
    chat_template = _processor_chat_template(model_path, **kwargs) or tokenizer.chat_template
    return processor_class(image_processor, tokenizer, chat_template=chat_template)


def _processor_chat_template(model_path: str, **kwargs: Any) -> str | None:
    """The processor's own chat template (``chat_template.jinja``, else ``chat_template.json``), if any."""
    lookup = {k: v for k, v in kwargs.items() if k in ("revision", "cache_dir", "token", "local_files_only")}
    for name in ("chat_template.jinja", "chat_template.json"):
        path = cached_file(
            model_path,
            name,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **lookup,
        )
        if path is None:
            continue
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if name.endswith(".json"):
            template = json.loads(text).get("chat_template")
            return template if isinstance(template, str) else None
        return text
    return None
