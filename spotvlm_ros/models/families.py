"""What SpotVLM knows about each vision-language model family, in one table (pure Python, no torch).

Per family (keyed by the checkpoint's ``config.model_type``):

- ``coord_format``: how its boxes are written (see :data:`.grounding.COORD_FORMATS`). Qwen2.5-VL writes
  pixels of the image it was fed (after its own resize); Qwen2-VL, Qwen3-VL, Qwen3.5, InternVL and
  GLM-4.xV a 0-1000 grid relative to the image; Gemma 4 ``box_2d`` as ``[y1, x1, y2, x2]`` on a 0-1000
  grid; Florence-2 and PaliGemma their location tokens. Families not trained to ground get ``auto``.
- ``tokens``: the published processor's resize rule and visual-token count
  (:class:`~..core.focus.tokens.VisualTokenSpec`): Qwen2/2.5-VL 14 px patches merged 2x2 (28 px per
  token), Qwen3-VL and Qwen3.5 16 px patches merged 2x2 (32 px per token), Gemma 4 a pooled budget of
  280 tokens, SmolVLM2 and InternVL tiles. The hf backend counts through the real processor; the
  OpenAI-compatible backend, which has no processor, uses this rule.
- ``image_only_processor``: the transformers processor class to assemble without its video processor
  when torchvision is missing (:mod:`.processors`); empty when ``AutoProcessor`` needs no torchvision.
- ``template_kwargs``: extra ``apply_chat_template`` arguments (Qwen3.5 thinks unless told not to).
- ``prefix_reuse``: whether the cache a prompt leaves behind can be cut back to its prefix and reused
  exactly (:class:`.prefix_cache.PrefixKvCache`); ``prefix_reuse_note`` says why not when it cannot. The
  hf backend then runs the prefix in a pass of its own and reuses copies of that cache
  (:class:`.prefix_cache.PrefixSnapshot`), which is exact too.
- ``served_names``: lower-case fragments of served model names (``Qwen/Qwen3-VL-235B-A22B-Instruct``)
  that identify the family behind an OpenAI-compatible endpoint.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from ..core.focus.tokens import VisualTokenSpec

LOG = logging.getLogger("spotvlm.models.families")

COORD_NOTES = {
    "qwen25_abs": "pixels of the image as the model saw it (after its own resize)",
    "absolute": "pixels of the image as the model saw it (after its own resize)",
    "qwen2_1000": "x1, y1, x2, y2 on a 0-1000 grid relative to the image",
    "gemini_yxyx_1000": "y1, x1, y2, x2 on a 0-1000 grid relative to the image",
    "florence_1000": "<loc_N> location tokens, 1000 bins",
    "paligemma_1024": "<locNNNN> location tokens, y1 x1 y2 x2 on a 1024 grid",
    "normalized": "x1, y1, x2, y2 as fractions 0-1 of the image",
    "auto": "not trained to ground: fractions 0-1 if all four are, else pixels of the model input",
}


@dataclass(frozen=True)
class ModelFamily:
    """One model family: see the module docstring for the fields."""

    name: str
    title: str
    model_types: tuple[str, ...]
    coord_format: str
    tokens: VisualTokenSpec
    served_names: tuple[str, ...] = ()
    image_only_processor: str = ""
    template_kwargs: tuple[tuple[str, Any], ...] = ()
    template_note: str = ""
    prefix_reuse: bool = True
    prefix_reuse_note: str = ""
    streaming: bool = True
    tiny: bool = False  # a tiny offline model of this family is built and tested (models/tiny.py)
    examples: tuple[str, ...] = field(default=())

    @property
    def coord_note(self) -> str:
        """The coordinate convention in words."""
        return COORD_NOTES.get(self.coord_format, self.coord_format)

    @property
    def px_per_token(self) -> int:
        """Pixels per visual token along one side for dynamic-resolution families (0 for others)."""
        spec = self.tokens
        if spec.fixed_tokens or spec.pooled_tokens or spec.tiling:
            return 0
        return spec.factor

    def describe(self) -> str:
        """One line: family, coordinate convention, token rule and prefix reuse."""
        reuse = "on" if self.prefix_reuse else f"off ({self.prefix_reuse_note})"
        return (
            f"{self.title} [{self.name}]: boxes {self.coord_format} ({self.coord_note}); prefix reuse {reuse}"
        )


_QWEN_MIN = 56 * 56
_QWEN_MAX = 12_845_056  # published Qwen2/2.5-VL preprocessor_config.json (16384 tokens)
_LINEAR_NOTE = (
    "its Gated DeltaNet linear-attention layers keep a recurrent state of everything seen, which cannot "
    "be cropped back to the prefix, so a reused prefix would carry the previous answer into the next one"
)

FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        name="qwen3_vl",
        title="Qwen3-VL",
        model_types=("qwen3_vl", "qwen3_vl_moe"),
        coord_format="qwen2_1000",
        tokens=VisualTokenSpec(patch_size=16, merge_size=2, min_pixels=256 * 256, max_pixels=4096 * 4096),
        served_names=("qwen3-vl", "qwen3vl", "qwen3_vl"),
        image_only_processor="Qwen3VLProcessor",
        tiny=True,
        examples=("Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-235B-A22B-Instruct"),
    ),
    ModelFamily(
        name="qwen3_5",
        title="Qwen3.5",
        model_types=("qwen3_5", "qwen3_5_moe"),
        coord_format="qwen2_1000",
        tokens=VisualTokenSpec(patch_size=16, merge_size=2, min_pixels=256 * 256, max_pixels=4096 * 4096),
        served_names=("qwen3.5", "qwen3_5", "qwen3-5"),
        image_only_processor="Qwen3VLProcessor",
        template_kwargs=(("enable_thinking", False),),
        template_note="thinks before answering unless the template gets enable_thinking=False",
        prefix_reuse=False,
        prefix_reuse_note=_LINEAR_NOTE,
        tiny=True,
        examples=("Qwen/Qwen3.5-9B", "Qwen/Qwen3.5-397B-A17B"),
    ),
    ModelFamily(
        name="qwen2_5_vl",
        title="Qwen2.5-VL",
        model_types=("qwen2_5_vl",),
        coord_format="qwen25_abs",
        tokens=VisualTokenSpec(patch_size=14, merge_size=2, min_pixels=_QWEN_MIN, max_pixels=_QWEN_MAX),
        served_names=("qwen2.5-vl", "qwen2_5-vl", "qwen2_5_vl", "qwen2.5vl"),
        image_only_processor="Qwen2_5_VLProcessor",
        tiny=True,
        examples=("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-72B-Instruct"),
    ),
    ModelFamily(
        name="qwen2_vl",
        title="Qwen2-VL",
        model_types=("qwen2_vl",),
        coord_format="qwen2_1000",
        tokens=VisualTokenSpec(patch_size=14, merge_size=2, min_pixels=_QWEN_MIN, max_pixels=_QWEN_MAX),
        served_names=("qwen2-vl", "qwen2_vl", "qwen2vl"),
        image_only_processor="Qwen2VLProcessor",
        tiny=True,
        examples=("Qwen/Qwen2-VL-2B-Instruct",),
    ),
    ModelFamily(
        name="gemma4",
        title="Gemma 4",
        model_types=("gemma4",),
        coord_format="gemini_yxyx_1000",
        tokens=VisualTokenSpec(patch_size=16, merge_size=3, pooled_tokens=280),
        served_names=("gemma-4", "gemma4", "gemma_4"),
        image_only_processor="Gemma4Processor",
        template_note="images are scaled up or down to a fixed token budget (70-1120, default 280)",
        prefix_reuse=False,
        prefix_reuse_note=(
            "its sliding-window layers keep only the last window of tokens: once a prompt passes the window, "
            "the cache cannot be cut back to a shorter prefix"
        ),
        tiny=True,
        examples=("google/gemma-4-E2B-it", "google/gemma-4-31B-it"),
    ),
    ModelFamily(
        name="internvl",
        title="InternVL (-hf)",
        model_types=("internvl",),
        coord_format="qwen2_1000",
        tokens=VisualTokenSpec(tiling="internvl", tile_size=448, tile_tokens=256, max_tiles=12),
        served_names=("internvl",),
        image_only_processor="InternVLProcessor",
        tiny=True,
        examples=("OpenGVLab/InternVL3-1B-hf", "OpenGVLab/InternVL3_5-8B-HF"),
    ),
    ModelFamily(
        name="smolvlm",
        title="SmolVLM2",
        model_types=("smolvlm",),
        coord_format="auto",
        tokens=VisualTokenSpec(tiling="idefics3", tile_size=512, tile_tokens=64, longest_edge=2048),
        served_names=("smolvlm2", "smolvlm"),
        image_only_processor="SmolVLMProcessor",
        template_note="image splitting scales every image up to 2048 px: small focus views cost many tiles",
        tiny=True,
        examples=("HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "HuggingFaceTB/SmolVLM2-2.2B-Instruct"),
    ),
    ModelFamily(
        name="idefics3",
        title="SmolVLM / Idefics3",
        model_types=("idefics3",),
        coord_format="auto",
        tokens=VisualTokenSpec(tiling="idefics3", tile_size=512, tile_tokens=64, longest_edge=2048),
        served_names=("idefics3",),
        tiny=True,
        examples=("HuggingFaceTB/SmolVLM-256M-Instruct",),
    ),
    ModelFamily(
        name="llava",
        title="LLaVA",
        model_types=("llava",),
        coord_format="auto",
        tokens=VisualTokenSpec.fixed_grid(576, 336),
        served_names=("llava",),
        tiny=True,
        examples=("llava-hf/llava-1.5-7b-hf",),
    ),
    ModelFamily(
        name="glm4v",
        title="GLM-4.xV",
        model_types=("glm4v", "glm4v_moe", "glm46v"),
        coord_format="qwen2_1000",
        tokens=VisualTokenSpec(patch_size=14, merge_size=2, min_pixels=112 * 112, max_pixels=28 * 28 * 15000),
        served_names=("glm-4.5v", "glm-4.6v", "glm-4.1v", "glm4v", "glm-4v"),
        examples=("zai-org/GLM-4.6V-Flash",),
    ),
    ModelFamily(
        name="florence2",
        title="Florence-2",
        model_types=("florence2",),
        coord_format="florence_1000",
        tokens=VisualTokenSpec.fixed_grid(577, 768),
        served_names=("florence-2", "florence2"),
        prefix_reuse=False,
        prefix_reuse_note="an encoder-decoder: the image goes through the encoder, there is no text prefix",
        examples=("microsoft/Florence-2-base",),
    ),
    ModelFamily(
        name="paligemma",
        title="PaliGemma",
        model_types=("paligemma",),
        coord_format="paligemma_1024",
        tokens=VisualTokenSpec.fixed_grid(256, 224),
        served_names=("paligemma",),
        prefix_reuse=False,
        prefix_reuse_note="the image comes first in its prompt, so no text prefix precedes it",
        examples=("google/paligemma2-3b-mix-224",),
    ),
)

UNKNOWN = ModelFamily(
    name="unknown",
    title="unknown family",
    model_types=(),
    coord_format="auto",
    tokens=VisualTokenSpec(),
)

_BY_TYPE = {model_type: family for family in FAMILIES for model_type in family.model_types}
_BY_NAME = {family.name: family for family in FAMILIES}


def family_for_model_type(model_type: str) -> ModelFamily:
    """The family of a checkpoint's ``config.model_type`` (:data:`UNKNOWN` when not in the table)."""
    return _BY_TYPE.get(str(model_type), UNKNOWN)


def family_by_name(name: str) -> ModelFamily:
    """The family called ``name`` (a key of the table, e.g. ``qwen3_vl``); raises KeyError."""
    return _BY_NAME[name]


def family_for_served_name(served_name: str) -> ModelFamily:
    """The family behind a served model name such as ``Qwen/Qwen3-VL-235B-A22B-Instruct``.

    Matches the longest known fragment in the lower-cased name (so ``qwen2.5-vl`` wins over ``qwen2-vl``
    would, and a ``-FP8`` or ``-AWQ`` suffix changes nothing); :data:`UNKNOWN` when none matches.
    """
    lowered = re.sub(r"\s+", "", served_name.lower())
    best, best_len = UNKNOWN, 0
    for family in FAMILIES:
        for fragment in family.served_names:
            if fragment in lowered and len(fragment) > best_len:
                best, best_len = family, len(fragment)
    return best


@dataclass(frozen=True)
class Convention:
    """The box convention a backend uses, and where it came from."""

    family: ModelFamily
    coord_format: str
    source: str  # "config" (explicit coord_format) or "family"

    def describe(self, backend_name: str) -> str:
        """One log line naming the backend, the family and the convention in force."""
        note = COORD_NOTES.get(self.coord_format, self.coord_format)
        origin = "set in config" if self.source == "config" else f"default of {self.family.title}"
        return f"{backend_name}: boxes read as {self.coord_format} ({note}); {origin}"


def resolve_convention(family: ModelFamily, configured: str = "auto") -> Convention:
    """The coordinate format in force: an explicit ``configured`` one wins over the family default."""
    if configured and configured != "auto":
        return Convention(family, configured, "config")
    return Convention(family, family.coord_format, "family")


def log_convention(convention: Convention, backend_name: str) -> None:
    """Log the convention in force once, at backend start."""
    LOG.info(convention.describe(backend_name))
