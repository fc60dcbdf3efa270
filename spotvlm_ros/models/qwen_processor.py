"""Processors for any checkpoint, with an image-only assembly when a video processor cannot be built.

``AutoProcessor`` builds the processors of Qwen2/2.5-VL, Qwen3-VL, Qwen3.5, Gemma 4, InternVL and SmolVLM2
together with their video processor, and that one needs torchvision. SpotVLM only feeds images, so when
torchvision cannot be imported the processor is assembled from the checkpoint's own tokenizer, image
processor (the PIL backend, same resize rule) and chat template, in a subclass of the official processor
class that has no video processor (nor, for Gemma 4, audio feature extractor). Everything else
(placeholder expansion, ``mm_token_type_ids``, the model inputs) is the official code. Which class each
``model_type`` uses comes from :mod:`.families`. When torchvision is importable, ``AutoProcessor`` is used
as it is.
"""

from __future__ import annotations

import inspect
import json
from functools import cache
from typing import Any

import transformers
from transformers import (
    AutoImageProcessor,
    AutoProcessor,
    AutoTokenizer,
    ProcessorMixin,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)
from transformers.utils import cached_file, is_torchvision_available

from .families import family_for_model_type

_MEDIA_PARTS = ("video_processor", "feature_extractor")  # parts an image-only processor leaves out


class _ImageOnly:
    """Drops the ``video_processor`` argument (a processor's parts are read from this signature)."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template)  # type: ignore[call-arg]


class Qwen2VLImageOnlyProcessor(_ImageOnly, Qwen2VLProcessor):
    """Qwen2-VL processor for images only (no video processor, hence no torchvision)."""


class Qwen2_5_VLImageOnlyProcessor(_ImageOnly, Qwen2_5_VLProcessor):  # noqa: N801 (transformers naming)
    """Qwen2.5-VL processor for images only (no video processor, hence no torchvision)."""


class _WithoutMedia(ProcessorMixin):
    """Drops the video / audio parts an official ``__init__`` hands on as ``None``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        parts = self.get_attributes()
        for name in _MEDIA_PARTS:
            if name not in parts and kwargs.get(name, 0) is None:
                del kwargs[name]
        super().__init__(*args[: len(parts)], **kwargs)


@cache
def image_only_class(base: type[ProcessorMixin]) -> type[ProcessorMixin]:
    """A subclass of the processor class ``base`` whose parts are its image processor and tokenizer only."""
    media = [name for name in _MEDIA_PARTS if name in inspect.signature(base.__init__).parameters]

    def __init__(self: Any, image_processor: Any = None, tokenizer: Any = None, **kwargs: Any) -> None:  # noqa: N807
        base.__init__(
            self, image_processor=image_processor, tokenizer=tokenizer, **dict.fromkeys(media), **kwargs
        )

    doc = f"{base.__name__} for images only (no video processor, hence no torchvision)."
    # SmolVLM's own apply_chat_template only adds video sampling defaults, read from its video processor
    members = {
        "__init__": __init__,
        "__doc__": doc,
        "apply_chat_template": ProcessorMixin.apply_chat_template,
    }
    return type(f"{base.__name__}ImageOnly", (base, _WithoutMedia), members)


IMAGE_ONLY_PROCESSORS: dict[str, type[ProcessorMixin]] = {
    "qwen2_vl": Qwen2VLImageOnlyProcessor,
    "qwen2_5_vl": Qwen2_5_VLImageOnlyProcessor,
}


def image_only_processor_class(model_type: str) -> type[ProcessorMixin] | None:
    """The image-only processor class of ``model_type`` (None when its family needs none)."""
    if model_type in IMAGE_ONLY_PROCESSORS:
        return IMAGE_ONLY_PROCESSORS[model_type]
    name = family_for_model_type(model_type).image_only_processor
    return image_only_class(getattr(transformers, name)) if name else None


def needs_image_only_processor(model_type: str) -> bool:
    """True when the official processor of ``model_type`` needs torchvision and it is missing."""
    return image_only_processor_class(model_type) is not None and not is_torchvision_available()


def load_processor(model_path: str, model_type: str, **kwargs: Any) -> ProcessorMixin:
    """Load the processor of the checkpoint at ``model_path`` (a local directory or a Hub id)."""
    if needs_image_only_processor(model_type):
        return load_image_only_processor(model_path, model_type, **kwargs)
    return AutoProcessor.from_pretrained(model_path, **kwargs)


def load_image_only_processor(model_path: str, model_type: str, **kwargs: Any) -> ProcessorMixin:
    """The image-only processor from the checkpoint's tokenizer, image processor and chat template."""
    processor_class = image_only_processor_class(model_type)
    if processor_class is None:
        raise ValueError(f"no image-only processor for model type {model_type!r}")
    if model_type not in IMAGE_ONLY_PROCESSORS:
        tokenizer = AutoTokenizer.from_pretrained(model_path, **kwargs)
        image_processor = pil_image_processor(model_path, **kwargs)
        chat_template = _processor_chat_template(model_path, **kwargs) or tokenizer.chat_template
        settings = _processor_settings(model_path, processor_class.__mro__[1], **kwargs)
        return processor_class(image_processor, tokenizer, chat_template=chat_template, **settings)
    tokenizer = AutoTokenizer.from_pretrained(model_path, **kwargs)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(model_path, **kwargs)
    chat_template = _processor_chat_template(model_path, **kwargs) or tokenizer.chat_template
    return processor_class(image_processor, tokenizer, chat_template=chat_template)


def pil_image_processor(model_path: str, **kwargs: Any) -> Any:
    """The checkpoint's image processor with the PIL backend (its torchvision one needs torchvision)."""
    path = cached_file(
        model_path,
        "preprocessor_config.json",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **_lookup(kwargs),
    )
    name = ""
    if path is not None:
        with open(path, encoding="utf-8") as handle:
            name = str(json.load(handle).get("image_processor_type") or "")
    base = name.removesuffix("Fast").removesuffix("Pil")
    image_processor_class = getattr(transformers, f"{base}Pil", None) if base else None
    if image_processor_class is None:
        return AutoImageProcessor.from_pretrained(model_path, **kwargs)
    return image_processor_class.from_pretrained(model_path, **kwargs)


def _processor_settings(model_path: str, base: type, **kwargs: Any) -> dict[str, Any]:
    """Settings from ``processor_config.json`` (e.g. ``image_seq_len``) that ``base`` accepts."""
    path = cached_file(
        model_path,
        "processor_config.json",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **_lookup(kwargs),
    )
    if path is None:
        return {}
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    accepted = set(inspect.signature(base.__init__).parameters) - {"self", "chat_template", *_MEDIA_PARTS}
    accepted -= {"image_processor", "tokenizer", "args", "kwargs"}
    return {key: value for key, value in config.items() if key in accepted}


def _lookup(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in ("revision", "cache_dir", "token", "local_files_only")}


def _processor_chat_template(model_path: str, **kwargs: Any) -> str | None:
    """The processor's own chat template (``chat_template.jinja``, else ``chat_template.json``), if any."""
    lookup = _lookup(kwargs)
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
