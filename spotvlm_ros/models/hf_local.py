"""A local Hugging Face transformers VLM: ``AutoModelForImageTextToText`` + processor + chat template.

Works for every model whose chat template accepts images: Qwen2/2.5-VL, Qwen3-VL, Qwen3.5, Gemma 4,
InternVL and SmolVLM2 (through the image-only processor of :mod:`.qwen_processor` when torchvision is
missing), SmolVLM / Idefics3, LLaVA and others. Batch of one, greedy decoding, CPU or CUDA. The family
table (:mod:`.families`) gives the box convention (an explicit ``coord_format`` wins), chat-template
arguments and whether prefix reuse is exact; the convention in force is logged once at start. The KV
cache of the unchanged prompt prefix (system prompt and context history, up to the first image) is
reused across frames (:mod:`.prefix_cache`): cut back from the previous prompt's cache where that is
exact, else (linear-attention or sliding-window layers) computed in a pass of its own and copied, with
the reason logged once.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from jinja2 import TemplateError
from transformers import AutoConfig, AutoModelForImageTextToText, StoppingCriteriaList
from transformers.generation.utils import GenerateDecoderOnlyOutput

from .base import BackendError, ChatMessage, Generation, GenerationCancelled, StopCheck, TextCallback
from .families import ModelFamily, family_for_model_type, log_convention, resolve_convention
from .grounding import COORD_FORMATS, grounding_instruction, parse_regions
from .hf_streaming import StopWhen, TextProgress
from .prefix_cache import PrefixKvCache, PrefixSnapshot, reusable_prefix_length
from .qwen_processor import load_processor

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
LOG = logging.getLogger("spotvlm.models.hf_local")
# transformers >= 5.2x names generate's cache argument and output field ``cache`` (``past_key_values`` is
# deprecated); older releases only know ``past_key_values``
CACHE_ARG = (
    "cache"
    if "cache" in {f.name for f in dataclasses.fields(GenerateDecoderOnlyOutput)}
    else "past_key_values"
)


def fit_image(image: np.ndarray, max_side: int) -> np.ndarray:
    """Validate an RGB uint8 HxWx3 image and resize it so its longest side is at most ``max_side``."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise BackendError(f"expected an RGB uint8 HxWx3 image, got shape {shape} dtype {dtype}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise BackendError(f"empty image of shape {image.shape}")
    if max(height, width) <= max_side:
        return np.ascontiguousarray(image)
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def count_image_parts(messages: Sequence[ChatMessage]) -> int:
    """Number of ``{"type": "image"}`` parts in a chat."""
    count = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            count += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image")
    return count


def with_grounding_request(messages: Sequence[ChatMessage], instruction: str) -> list[ChatMessage]:
    """A copy of ``messages`` whose last user turn ends with ``instruction``."""
    out = copy.deepcopy(list(messages))
    for message in reversed(out):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = f"{content}\n{instruction}"
        else:
            message["content"] = [*(content or []), {"type": "text", "text": instruction}]
        return out
    raise BackendError("messages contain no user turn")


class HfLocalBackend:
    """A VLM running in this process with transformers; see the module docstring."""

    def __init__(
        self,
        model_path: str | Path,
        device: str = "cpu",
        dtype: str = "float32",
        *,
        max_new_tokens: int = 32,
        image_max_side: int = 448,
        prefix_cache: bool = True,
        coord_format: str = "auto",
        name: str = "",
    ) -> None:
        model_path = str(model_path)
        target = _check_device(device)
        try:
            config = AutoConfig.from_pretrained(model_path)
            processor = load_processor(model_path, str(config.model_type))
            model_dtype: Any = "auto" if dtype == "auto" else DTYPES[dtype]
            model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=model_dtype).to(target)
        except (OSError, ValueError, KeyError, ImportError, TypeError, RuntimeError) as err:
            raise BackendError(f"cannot load a vision-language model from {model_path!r}: {err}") from err
        self._setup(
            model,
            processor,
            name=name or f"hf:{model_path}",
            max_new_tokens=max_new_tokens,
            image_max_side=image_max_side,
            prefix_cache=prefix_cache,
            coord_format=coord_format,
        )

    @classmethod
    def from_parts(
        cls,
        model: Any,
        processor: Any,
        *,
        name: str,
        max_new_tokens: int = 32,
        image_max_side: int = 448,
        prefix_cache: bool = True,
        coord_format: str = "auto",
    ) -> HfLocalBackend:
        """A backend around a built model (on its device) and processor, e.g. random real-size weights."""
        backend = cls.__new__(cls)
        backend._setup(
            model,
            processor,
            name=name,
            max_new_tokens=max_new_tokens,
            image_max_side=image_max_side,
            prefix_cache=prefix_cache,
            coord_format=coord_format,
        )
        return backend

    def _setup(
        self,
        model: Any,
        processor: Any,
        *,
        name: str,
        max_new_tokens: int,
        image_max_side: int,
        prefix_cache: bool,
        coord_format: str = "auto",
    ) -> None:
        if coord_format not in COORD_FORMATS:
            raise BackendError(
                f"{name}: unknown coord_format {coord_format!r}; expected one of {COORD_FORMATS}"
            )
        self.name = name
        self.model = model.eval()
        self.processor = processor
        self.device = model.device
        self.model_type = str(model.config.model_type)
        self.max_new_tokens = max_new_tokens
        self.image_max_side = image_max_side
        if not getattr(processor, "chat_template", None):
            raise BackendError(f"{name}: the model has no chat template")
        self.tokenizer = processor.tokenizer
        self.image_token_id = _image_token_id(processor)
        self.family: ModelFamily = family_for_model_type(self.model_type)
        self.convention = resolve_convention(self.family, coord_format)
        self.coord_format = self.convention.coord_format
        log_convention(self.convention, name)
        template = str(processor.chat_template)
        self._template_kwargs = {k: v for k, v in self.family.template_kwargs if k in template}
        self.prefix_reuse_note = _no_crop_reason(self.family, model.config)
        if prefix_cache and self.prefix_reuse_note:
            LOG.info(
                "%s: prefix KV reuse by snapshot (a prefix pass of its own): %s", name, self.prefix_reuse_note
            )
        self._generation_config = _greedy_config(model.generation_config)
        self._lock = threading.Lock()  # one generate at a time (the prefix cache is stateful)
        self._text_lock = threading.Lock()  # fast tokenizers must not be used from two threads at once
        self._prefix: PrefixKvCache | PrefixSnapshot | None = None
        if prefix_cache:
            self._prefix = PrefixSnapshot(self._prefill) if self.prefix_reuse_note else PrefixKvCache()
        self._image_token_cache: dict[tuple[int, int], int] = {}

    @property
    def prefix_reuse(self) -> bool:
        """Whether the KV cache of an unchanged prompt prefix is reused (always exactly)."""
        return self._prefix is not None

    @property
    def prefix_reuse_mode(self) -> str:
        """``crop`` (a prompt's cache cut back), ``snapshot`` (the prefix run alone) or ``off``."""
        if self._prefix is None:
            return "off"
        return "snapshot" if isinstance(self._prefix, PrefixSnapshot) else "crop"

    @property
    def closed(self) -> bool:
        return getattr(self, "model", None) is None

    def generate(
        self,
        messages: Sequence[ChatMessage],
        images: Sequence[np.ndarray],
        *,
        max_new_tokens: int | None = None,
        want_regions: bool = False,
        on_text: TextCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> Generation:
        """Answer the last user turn (greedy); regions in pixels of ``images[0]`` when wanted.

        ``on_text`` gets the decoded answer every few tokens (from inside ``generate``, on this thread);
        ``should_stop`` is polled after every token and ends generation with GenerationCancelled.
        """
        if count_image_parts(messages) != len(images):
            raise BackendError(
                f"{count_image_parts(messages)} image part(s) in the messages "
                f"but {len(images)} image(s) given"
            )
        fitted = [fit_image(image, self.image_max_side) for image in images]
        if want_regions:
            messages = with_grounding_request(messages, grounding_instruction(coord_format=self.coord_format))
        with self._lock:
            if self.closed:
                raise BackendError(f"{self.name} is closed")
            if should_stop is not None and should_stop():
                raise GenerationCancelled(f"{self.name}: stopped before generating")
            start = time.perf_counter()
            inputs = self._encode(messages, fitted)
            ids = inputs["input_ids"][0].tolist()
            new_ids, cached = self._generate(
                inputs, ids, max_new_tokens or self.max_new_tokens, on_text, should_stop
            )
            text = self._decode(new_ids)
            seconds = time.perf_counter() - start
        regions, region_error = (), ""
        if want_regions:
            if images:
                parsed = parse_regions(
                    text,
                    (images[0].shape[1], images[0].shape[0]),
                    model_input_size(inputs, self.processor, fitted[0]),
                    self.coord_format,
                )
                regions, region_error = parsed.regions, parsed.reason
            else:
                region_error = "no image to ground regions in"
        return Generation(
            text=text,
            regions=regions,
            prompt_tokens=len(ids),
            image_tokens=ids.count(self.image_token_id),
            seconds=seconds,
            region_error=region_error,
            cached_prefix_tokens=cached,
        )

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs in this model's prompt."""
        with self._text_lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def image_tokens(self, width: int, height: int) -> int:
        """Visual tokens of an image of this size after the image_max_side fit and the model's resize."""
        key = (int(width), int(height))
        if key not in self._image_token_cache:
            blank = fit_image(np.zeros((key[1], key[0], 3), np.uint8), self.image_max_side)
            with self._text_lock:
                encoded = self.processor(
                    text=[self.processor.image_token], images=[blank], return_tensors="pt"
                )
            self._image_token_cache[key] = int((encoded["input_ids"][0] == self.image_token_id).sum())
        return self._image_token_cache[key]

    def close(self) -> None:
        """Free the model and its cached prefix (and the CUDA cache when on a GPU)."""
        with self._lock:
            if self.closed:
                return
            if self._prefix is not None:
                self._prefix.clear()
            self.model = None  # type: ignore[assignment]
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _encode(self, messages: Sequence[ChatMessage], images: list[np.ndarray]) -> dict[str, torch.Tensor]:
        try:
            with self._text_lock:
                text = self.processor.apply_chat_template(
                    list(messages), add_generation_prompt=True, tokenize=False, **self._template_kwargs
                )
                inputs = self.processor(text=[text], images=images or None, return_tensors="pt")
        except (ValueError, TypeError, KeyError, IndexError, TemplateError) as err:
            raise BackendError(f"{self.name}: cannot build the model input: {err}") from err
        out = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.model.dtype)
            out[key] = value
        return out

    def _generate(
        self,
        inputs: dict[str, Any],
        ids: list[int],
        max_new_tokens: int,
        on_text: TextCallback | None,
        should_stop: StopCheck | None,
    ) -> tuple[list[int], int]:
        """Greedy generation with prefix-KV reuse: the new token ids and the prompt tokens served cached.

        A stop keeps the prefix cache: the whole prompt was computed before the first token.
        """
        image_positions = [i for i, token in enumerate(ids) if token == self.image_token_id]
        reusable = reusable_prefix_length(ids, image_positions)
        with torch.inference_mode():
            cache, cached = (None, 0) if self._prefix is None else self._prefix.take(ids, reusable)
        config = copy.copy(self._generation_config)
        config.max_new_tokens = max_new_tokens
        extra: dict[str, Any] = {}
        stop = progress = None
        if should_stop is not None:
            stop = StopWhen(should_stop)
            extra["stopping_criteria"] = StoppingCriteriaList([stop])
        if on_text is not None:
            progress = TextProgress(self._decode, on_text)
            extra["streamer"] = progress
        _forget_rope_deltas(self.model)
        try:
            with torch.inference_mode():
                output = self.model.generate(
                    **inputs, **{CACHE_ARG: cache}, generation_config=config, **extra
                )
        except (RuntimeError, ValueError, IndexError) as err:
            if self._prefix is not None:
                self._prefix.clear()
            raise BackendError(f"{self.name}: generation failed: {err}") from err
        if self._prefix is not None:
            self._prefix.keep(getattr(output, CACHE_ARG), ids, reusable)
        new_ids = output.sequences[0, len(ids) :].tolist()
        if stop is not None and stop.fired:
            raise GenerationCancelled(f"{self.name}: stopped after {len(new_ids)} new token(s)")
        return new_ids, cached

    def _prefill(self, ids: Sequence[int]) -> Any:
        """The cache of the model run on ``ids`` alone (a text prefix)."""
        _forget_rope_deltas(self.model)
        with torch.inference_mode():
            output = self.model(input_ids=torch.tensor([list(ids)], device=self.device), use_cache=True)
        return getattr(output, CACHE_ARG)

    def _decode(self, new_ids: list[int]) -> str:
        with self._text_lock:
            return self.tokenizer.decode(new_ids, skip_special_tokens=True).strip()


def _forget_rope_deltas(model: Any) -> None:
    """Drop the M-RoPE offsets Qwen-VL models keep from their last prompt.

    With a reused prefix cache, generate would otherwise apply the previous prompt's offsets to a prompt
    without images (a text-only turn after one with images), and answer differently than without reuse.
    """
    inner = getattr(model, "model", None)
    if inner is not None and getattr(inner, "rope_deltas", None) is not None:
        inner.rope_deltas = None


def _no_crop_reason(family: ModelFamily, config: Any) -> str:
    """Why the cache a prompt leaves behind cannot be cut back to its prefix ("" when it can)."""
    if not family.prefix_reuse:
        return family.prefix_reuse_note
    text = getattr(config, "text_config", None) or config
    layer_types = set(getattr(text, "layer_types", None) or ())
    if layer_types & {"linear_attention", "mamba", "conv"}:
        kinds = ", ".join(sorted(layer_types))
        return f"its {kinds} layers keep a recurrent state that cannot be cropped back to the prefix"
    if "sliding_attention" in layer_types:
        return "its sliding-window layers drop tokens past the window: the cache cannot go back to the prefix"
    return ""


def _check_device(device: str) -> torch.device:
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise BackendError(f"invalid torch device {device!r}: {err}") from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} requested but CUDA is not available")
    return parsed


def _image_token_id(processor: Any) -> int:
    token_id = getattr(processor, "image_token_id", None)
    if token_id is None:
        token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    return int(token_id)


def _greedy_config(base: Any) -> Any:
    config = copy.deepcopy(base)
    config.update(
        do_sample=False, temperature=None, top_p=None, top_k=None, num_beams=1, return_dict_in_generate=True
    )
    return config


def model_input_size(inputs: dict[str, Any], processor: Any, fitted: np.ndarray) -> tuple[int, int]:
    """(width, height) of the first image as the model saw it (Qwen-VL: its patch grid; else as fed)."""
    grid = inputs.get("image_grid_thw")
    patch = getattr(getattr(processor, "image_processor", None), "patch_size", None)
    if grid is not None and patch:
        _, rows, cols = (int(v) for v in grid[0])
        return cols * int(patch), rows * int(patch)
    return fitted.shape[1], fitted.shape[0]
