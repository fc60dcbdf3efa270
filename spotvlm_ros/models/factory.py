"""Build the VLM backend a :class:`~spotvlm_ros.core.config.ModelConfig` names.

- ``tiny``: the tiny random model of family ``model`` (default ``qwen2_5_vl``), built once into the cache
  (:func:`.tiny.cached_tiny_model`) and loaded with :class:`.hf_local.HfLocalBackend`. The edge uses
  seed 0, the cloud seed 1, so the two tiny models answer differently, as real SVLM and LVLM do.
- ``hf``: a local transformers model, ``model`` being a Hub id or a local directory.
- ``openai``: an OpenAI-compatible HTTP endpoint (vLLM, SGLang, ``transformers serve``).
- ``zero``: :class:`.zero.ZeroCostBackend`, instant answers without a model.
"""

from __future__ import annotations

from ..core.config import ModelConfig
from .base import BackendError, VlmBackend

ROLES = ("edge", "cloud")
DEFAULT_TINY_FAMILY = "qwen2_5_vl"
TINY_SEEDS = {"edge": 0, "cloud": 1}


def create_backend(config: ModelConfig, role: str = "edge") -> VlmBackend:
    """The backend for ``config`` in ``role`` (edge or cloud); raises BackendError when it cannot be built."""
    if role not in ROLES:
        raise ValueError(f"unknown backend role {role!r}; expected one of {ROLES}")
    if config.backend == "zero":
        from .zero import ZeroCostBackend

        return ZeroCostBackend(name=f"zero:{role}")
    if config.backend == "openai":
        from .openai_http import OpenAiHttpBackend

        return OpenAiHttpBackend(config)
    if config.backend == "tiny":
        return _tiny_backend(config, role)
    if config.backend == "hf":
        if not config.model:
            raise BackendError(f"{role}.model must name a Hugging Face model id or directory for backend hf")
        return _hf_backend(config, config.model, name=f"hf:{config.model}")
    raise BackendError(f"unknown backend {config.backend!r}")


def _tiny_backend(config: ModelConfig, role: str) -> VlmBackend:
    from .tiny import TINY_FAMILIES, cached_tiny_model

    family = config.model or DEFAULT_TINY_FAMILY
    if family not in TINY_FAMILIES:
        raise BackendError(
            f"{role}.model = {family!r}: unknown tiny family; known: {', '.join(TINY_FAMILIES)}"
        )
    seed = TINY_SEEDS[role]
    try:
        path = cached_tiny_model(family, seed)
    except OSError as err:
        raise BackendError(f"cannot build the tiny {family} model: {err}") from err
    return _hf_backend(config, str(path), name=f"tiny:{family}-{seed}")


def _hf_backend(config: ModelConfig, model_path: str, name: str) -> VlmBackend:
    from .hf_local import HfLocalBackend

    return HfLocalBackend(
        model_path,
        device=config.device,
        dtype=config.dtype,
        max_new_tokens=config.max_new_tokens,
        image_max_side=config.image_max_side,
        prefix_cache=config.prefix_cache,
        coord_format=config.coord_format,
        name=name,
    )
