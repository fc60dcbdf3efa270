"""Shared pytest fixtures and paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO_ROOT = Path(__file__).resolve().parent.parent

# Property tests: no per-example deadline (a loaded 2-core CI machine makes timing noise, not bugs);
# under CI the examples are derandomized so a run is reproducible. Locally they vary run to run.
settings.register_profile("spotvlm", deadline=None)
settings.register_profile("spotvlm-ci", deadline=None, derandomize=True)
settings.load_profile("spotvlm-ci" if os.environ.get("CI") else "spotvlm")


@pytest.fixture
def log_records():
    """The ``spotvlm`` log records of one test, whatever configured logging first (see log_capture)."""
    from log_capture import LogCapture

    capture = LogCapture()
    capture.start()
    yield capture
    capture.stop()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def openai_backends():
    """``make(base_url, timeout_s=..., **overrides) -> OpenAiHttpBackend``; all closed after the test."""
    from spotvlm_ros.core.config import ModelConfig
    from spotvlm_ros.models.openai_http import OpenAiHttpBackend

    backends = []

    def make(base_url: str, *, timeout_s: float, **overrides) -> OpenAiHttpBackend:
        backend = OpenAiHttpBackend(
            ModelConfig(backend="openai", base_url=base_url, timeout_s=timeout_s, **overrides)
        )
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        backend.close()


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory: pytest.TempPathFactory):
    """``factory(family, seed=0) -> Path``: tiny random model directories, built once per test session."""
    from spotvlm_ros.models.tiny import cached_tiny_model

    cache_dir = tmp_path_factory.mktemp("tiny_models")

    def factory(family: str, seed: int = 0) -> Path:
        return cached_tiny_model(family, seed, cache_dir=cache_dir)

    return factory


@pytest.fixture(scope="session")
def tiny_model_dir(request: pytest.FixtureRequest, tiny_model_factory) -> Path:
    """The tiny model directory of the family given by indirect parametrization (default qwen2_5_vl)."""
    return tiny_model_factory(getattr(request, "param", "qwen2_5_vl"))


@pytest.fixture(scope="session")
def llava_server(tiny_model_factory):
    """A real ``transformers serve`` of the tiny LLaVA on loopback, shared by the reliability tests."""
    from spotvlm_ros.testing.serve import TransformersServe

    with TransformersServe(tiny_model_factory("llava")) as server:
        yield server
