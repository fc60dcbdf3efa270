"""create_backend for the local kinds (tiny, hf, zero) and the zero-cost backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spotvlm_ros.core.config import ModelConfig
from spotvlm_ros.core.focus.tokens import visual_tokens
from spotvlm_ros.models.base import BackendError, VlmBackend
from spotvlm_ros.models.factory import create_backend
from spotvlm_ros.models.hf_local import HfLocalBackend
from spotvlm_ros.models.tiny import default_cache_dir
from spotvlm_ros.models.zero import DEFAULT_ANSWER, ZeroCostBackend

torch.set_num_threads(1)

IMAGE = np.zeros((480, 640, 3), np.uint8)


def chat(answer: str | None = None, n_images: int = 1) -> list[dict]:
    messages: list[dict] = [{"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]}]
    if answer is not None:
        messages += [
            {"role": "user", "content": [{"type": "text", "text": "(1.0 s ago) Light?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "green"}]},
            {"role": "user", "content": [{"type": "text", "text": "(0.5 s ago) Light?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]
    return [
        *messages,
        {"role": "user", "content": [*[{"type": "image"}] * n_images, {"type": "text", "text": "Light?"}]},
    ]


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTVLM_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPOTVLM_CACHE_DIR", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a" / "tiny"
    monkeypatch.delenv("SPOTVLM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "spotvlm" / "tiny"


def test_tiny_default_is_qwen2_5_vl_built_once_into_the_cache(cache_env) -> None:
    config = ModelConfig(backend="tiny", max_new_tokens=5, image_max_side=224)
    edge = create_backend(config)
    try:
        assert isinstance(edge, HfLocalBackend) and isinstance(edge, VlmBackend)
        assert edge.name == "tiny:qwen2_5_vl-0" and edge.model_type == "qwen2_5_vl"
        assert edge.max_new_tokens == 5 and edge.image_max_side == 224
        assert (cache_env / "tiny").is_dir()
        result = edge.generate(chat("red"), [IMAGE])
        assert result.image_tokens == visual_tokens(640, 480, max_side=224)  # core's count agrees
    finally:
        edge.close()
    cloud = create_backend(config, role="cloud")
    try:
        assert cloud.name == "tiny:qwen2_5_vl-1"  # its own weights: answers differ from the edge's
        edge_weights = sorted(p.name for p in (cache_env / "tiny").iterdir())
        assert edge_weights == ["qwen2_5_vl-0-v1", "qwen2_5_vl-1-v1"]
    finally:
        cloud.close()


def test_tiny_family_from_model_field_and_prefix_flag(cache_env) -> None:
    backend = create_backend(ModelConfig(backend="tiny", model="llava", prefix_cache=False))
    try:
        assert backend.model_type == "llava" and backend._prefix is None
    finally:
        backend.close()


def test_tiny_unknown_family_is_a_backend_error(cache_env) -> None:
    with pytest.raises(BackendError, match="edge.model = 'gpt5': unknown tiny family"):
        create_backend(ModelConfig(backend="tiny", model="gpt5"))


def test_hf_needs_a_model_and_loads_a_local_directory(tiny_model_factory) -> None:
    with pytest.raises(BackendError, match="cloud.model must name"):
        create_backend(ModelConfig(backend="hf"), role="cloud")
    path = str(tiny_model_factory("idefics3"))
    backend = create_backend(ModelConfig(backend="hf", model=path, dtype="bfloat16"))
    try:
        assert backend.name == f"hf:{path}" and backend.model.dtype == torch.bfloat16
    finally:
        backend.close()
    with pytest.raises(BackendError, match="cannot load"):
        create_backend(ModelConfig(backend="hf", model="/nonexistent/model/dir"))


def test_zero_and_bad_role() -> None:
    assert isinstance(create_backend(ModelConfig(backend="zero")), ZeroCostBackend)
    with pytest.raises(ValueError, match="unknown backend role 'robot'"):
        create_backend(ModelConfig(backend="zero"), role="robot")


def test_openai_is_built_lazily_by_its_module() -> None:
    module = pytest.importorskip("spotvlm_ros.models.openai_http")
    config = ModelConfig(backend="openai", model="m", base_url="http://127.0.0.1:9/v1")
    backend = create_backend(config, role="cloud")
    try:
        assert isinstance(backend, module.OpenAiHttpBackend)
    finally:
        backend.close()


def test_zero_echoes_the_newest_context_answer() -> None:
    backend = ZeroCostBackend()
    assert isinstance(backend, VlmBackend)
    assert backend.generate(chat("red light, car on the left"), [IMAGE]).text == "red light, car on the left"
    assert backend.generate(chat(None), [IMAGE]).text == DEFAULT_ANSWER
    assert backend.generate(chat("red light, car on the left"), [IMAGE], max_new_tokens=2).text == "red light"
    string_turns = [{"role": "assistant", "content": "yellow"}, {"role": "user", "content": "Light?"}]
    assert backend.generate(string_turns, []).text == "yellow"


def test_zero_counts_tokens_and_costs_nothing() -> None:
    backend = ZeroCostBackend()
    assert backend.count_tokens("The light is red.") == 5
    assert backend.image_tokens(640, 480) == visual_tokens(640, 480) > 0
    result = backend.generate(chat("red", n_images=2), [IMAGE, IMAGE[:224, :224]])
    assert result.image_tokens == visual_tokens(640, 480) + visual_tokens(224, 224)
    assert result.prompt_tokens > result.image_tokens
    assert result.seconds < 0.05
    grounded = backend.generate(chat("red"), [IMAGE], want_regions=True)
    assert grounded.regions == () and "does not ground" in grounded.region_error
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.generate(chat("red"), [IMAGE])
