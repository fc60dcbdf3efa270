"""The example configs in config/examples/ load through the config schema and name known model families."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.focus.tokens import visual_tokens
from spotvlm_ros.models.families import family_for_served_name

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "config" / "examples").glob("*.yaml"))


def test_the_promised_examples_exist() -> None:
    names = {path.stem for path in EXAMPLES}
    assert {"qwen3vl_edge_vllm_cloud", "jetson_orin"} <= names
    assert names & {"smolvlm2_edge", "gemma4_e2b_edge"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_loads_and_names_known_families(path: Path) -> None:
    config = load_config(path)
    for role in (config.edge, config.cloud):
        assert role.backend in ("hf", "openai")
        assert family_for_served_name(role.model).name != "unknown", role.model
        if role.backend == "openai":
            assert role.base_url.startswith("http")


def test_jetson_focus_view_fits_its_token_budget() -> None:
    config = load_config(next(p for p in EXAMPLES if p.stem == "jetson_orin"))
    spec = family_for_served_name(config.edge.model).tokens
    full = visual_tokens(config.focus.full_size, config.focus.full_size * 3 // 4, spec=spec)
    crops = config.focus.max_regions * visual_tokens(
        config.focus.crop_size, config.focus.crop_size, spec=spec
    )
    assert config.edge.dtype in ("float16", "bfloat16")
    assert full + crops <= config.focus.visual_token_budget
