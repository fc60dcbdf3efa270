"""Samples as model inputs: token ids with the answer span, cached model-input images, padded batches.

A sample's prompt is rendered by the model's own chat template and processor (image placeholders
expanded by the processor); the answer tokens and the end-of-turn token follow, and only they are
trained on. Images are cached at the exact size the processor resizes them to (uint8), so a batch only
normalises and patchifies them with the real image processor: the pixel values are those inference sees.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .modeling import to_model_input
from .samples import Sample

IGNORE_INDEX = -100
_CACHE_SIZE = 4096  # prompt texts whose token ids are kept


@dataclass
class Encoded:
    """One sample as token ids: the first ``prompt_len`` ids are the prompt, the rest the answer."""

    input_ids: np.ndarray  # int32
    prompt_len: int
    image_keys: list[int]
    kind: str
    group: str


class ImageStore:
    """Model-input images of a data set in one flat uint8 array (memory-mapped once saved).

    An image added twice (the same frame asked several questions) is stored once.
    """

    def __init__(self) -> None:
        self._digests: dict[bytes, int] = {}
        self._pending: list[np.ndarray] = []
        self.offsets: list[int] = []
        self.shapes: list[tuple[int, int, int]] = []
        self._flat: np.ndarray | None = None
        self._size = 0

    def add(self, image: np.ndarray) -> int:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        digest = hashlib.blake2b(image.data, digest_size=16, person=repr(image.shape).encode()[:16]).digest()
        if digest in self._digests:
            return self._digests[digest]
        self._digests[digest] = len(self.shapes)
        self._pending.append(image.reshape(-1))
        self.offsets.append(self._size)
        self.shapes.append(tuple(image.shape))  # type: ignore[arg-type]
        self._size += image.size
        return len(self.shapes) - 1

    def get(self, key: int) -> np.ndarray:
        if self._pending or self._flat is None:
            self._consolidate()
        assert self._flat is not None
        shape = self.shapes[key]
        start = self.offsets[key]
        return np.asarray(self._flat[start : start + int(np.prod(shape))]).reshape(shape)

    def __len__(self) -> int:
        return len(self.shapes)

    def _consolidate(self) -> None:
        parts = ([np.asarray(self._flat)] if self._flat is not None else []) + self._pending
        self._flat = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        self._pending = []

    def save(self, path: Path) -> None:
        self._consolidate()
        assert self._flat is not None
        np.save(path.with_suffix(".npy"), self._flat)
        path.with_suffix(".idx").write_bytes(pickle.dumps((self.offsets, self.shapes)))

    @classmethod
    def load(cls, path: Path) -> ImageStore:
        store = cls()
        store.offsets, store.shapes = pickle.loads(path.with_suffix(".idx").read_bytes())
        store._flat = np.load(path.with_suffix(".npy"), mmap_mode="r")
        store._size = int(store._flat.shape[0])
        return store


class Encoder:
    """Turns samples into :class:`Encoded` items with the model's processor."""

    def __init__(self, processor: Any, image_max_side: int):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_max_side = image_max_side
        self.end_id = int(self.tokenizer.convert_tokens_to_ids("<|im_end|>"))
        self._prompts: dict[tuple, list[int]] = {}
        self._resized: tuple[np.ndarray, np.ndarray] | None = None  # (source, model input) of the last image

    def _model_input(self, image: np.ndarray) -> np.ndarray:
        """The model-input image (the questions of one frame share their source array: resized once)."""
        if self._resized is not None and self._resized[0] is image:
            return self._resized[1]
        resized = to_model_input(image, self.processor, self.image_max_side)
        self._resized = (image, resized)
        return resized

    def prompt_text(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, sample: Sample, store: ImageStore) -> Encoded:
        images = [self._model_input(image) for image in sample.images]
        text = self.prompt_text(sample.messages)
        key = (text, tuple(image.shape for image in images))
        prompt = self._prompts.get(key)
        if prompt is None:  # the ids depend on the text and the image sizes only, not on the pixels
            prompt = list(self.processor(text=[text], images=images or None)["input_ids"][0])
            if len(self._prompts) >= _CACHE_SIZE:
                self._prompts.clear()
            self._prompts[key] = prompt
        answer = self.tokenizer(sample.target, add_special_tokens=False)["input_ids"] + [self.end_id]
        ids = np.asarray(list(prompt) + list(answer), dtype=np.int32)
        keys = [store.add(image) for image in images]
        return Encoded(ids, len(prompt), keys, sample.kind, sample.group)


def collate(batch: Sequence[Encoded], store: ImageStore, processor: Any) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask, answer-only labels, and the images' pixel values."""
    pad = int(processor.tokenizer.pad_token_id)
    length = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), length), pad, dtype=torch.long)
    labels = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    images = []
    for row, item in enumerate(batch):
        n = len(item.input_ids)
        tokens = torch.from_numpy(item.input_ids.astype(np.int64))
        ids[row, :n] = tokens
        mask[row, :n] = 1
        labels[row, item.prompt_len : n] = tokens[item.prompt_len :]
        images += [store.get(key) for key in item.image_keys]
    # Qwen2.5-VL places image tokens in 3D (mrope) by these types, as the processor marks them at inference
    image_token = int(processor.tokenizer.convert_tokens_to_ids(processor.image_token))
    out = {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "mm_token_type_ids": (ids == image_token).long() * mask,
    }
    if images:
        pixels = processor.image_processor(images=images, return_tensors="pt")
        out["pixel_values"] = pixels["pixel_values"]
        out["image_grid_thw"] = pixels["image_grid_thw"]
    return out
