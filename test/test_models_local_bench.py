"""`spotvlm bench models` end to end on the tiny model (few frames), and its building blocks."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from spotvlm_ros.bench import models as bench
from spotvlm_ros.core.focus.tokens import visual_tokens


def test_bench_prints_the_figures_and_a_bench_line_last(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPOTVLM_CACHE_DIR", str(tmp_path))
    record = tmp_path / "docs" / "benchmarks.md"
    argv = ["--threads", "1", "--frames", "2", "--warmup", "1", "--contexts", "64,256", "--device", "cpu"]
    argv += ["--family-frames", "0"]
    assert bench.main([*argv, "--record", str(record)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("BENCH models {")
    figures = json.loads(lines[-1].split(" ", 2)[2])
    for name in (
        "prefix_reuse_speedup_ratio",
        "focus_visual_token_ratio",
        "focus_speedup_ratio",
        "context256_full_no_reuse_p95_ms",
    ):
        assert figures[name] > 0, name
    # 640x480 at the tiny model's own resolution vs core's crop view: the counts are exact
    focus = bench.focus_images(*bench.synthetic_frame(640, 480, 0), full_size=224, crop_size=224)
    assert figures["context256_full_visual_tokens"] == visual_tokens(640, 480) == 391
    assert figures["context256_focus_visual_tokens"] == sum(
        visual_tokens(i.shape[1], i.shape[0]) for i in focus
    )
    assert figures["context256_cached_prefix_tokens"] >= 256
    # in the edge pipeline the keyframe prefix comes from the cache on every frame after the first
    assert figures["pipeline_prefix_hit_fraction"] == 1.0 and figures["pipeline_same_answers"] is True
    assert 0 < figures["pipeline_cached_prefix_tokens_mean"] < figures["pipeline_prompt_tokens_mean"]
    assert figures["gpu"] is False and figures["threads"] == 1
    # per family, by its published resize rule: Qwen3-VL 32 px per token, Qwen2.5-VL 28 px
    assert figures["family_qwen3_vl_full_visual_tokens"] == 300
    assert figures["family_qwen2_5_vl_full_visual_tokens"] == 391
    assert figures["family_qwen3_vl_focus_visual_tokens"] > 0
    assert not any(
        name.endswith("prefix_reuse_speedup_ratio") and name.startswith("family_") for name in figures
    )
    # the record: its header once, then a section per run with the date, the device and the command
    text = record.read_text()
    assert text.startswith("# Benchmark record")
    (section,) = text.split("\n## ")[1:]
    assert re.match(r"`models`, \d{4}-\d\d-\d\d \d\d:\d\d UTC, CPU .*1 torch thread", section)
    assert "`spotvlm bench models --threads 1 --frames 2" in section and f"--record {record}`" in section
    rows = {line.split("`")[1]: line for line in section.splitlines() if line.startswith("| `")}
    assert set(rows) == set(figures)
    ratio = figures["focus_visual_token_ratio"]
    assert rows["focus_visual_token_ratio"] == f"| `focus_visual_token_ratio` | {ratio} | >= 2.0 | yes |"
    assert bench.main([*argv, "--frames", "1", "--record", str(record)]) == 0
    assert record.read_text().count("# Benchmark record") == 1 and record.read_text().count("\n## ") == 2


def test_history_fills_the_requested_context(tiny_model_factory) -> None:
    from spotvlm_ros.models.qwen_processor import load_processor

    processor = load_processor(str(tiny_model_factory("qwen2_5_vl")), "qwen2_5_vl")
    short, long = bench.history_messages(processor, 64), bench.history_messages(processor, 1024)
    assert len(long) > len(short) > 1
    assert bench._rendered_tokens(processor, long) >= 1024 > bench._rendered_tokens(processor, long[:-2])


def test_focus_view_is_a_small_full_view_and_one_crop_per_region() -> None:
    image, boxes = bench.synthetic_frame(1280, 720, 3)
    views = bench.focus_images(image, boxes, full_size=224, crop_size=112)
    assert max(views[0].shape[:2]) == 224
    assert [v.shape for v in views[1:]] == [(112, 112, 3)] * len(boxes)


def test_frame_size_argument() -> None:
    assert bench.parse_size("1280x720") == (1280, 720)
    for bad in ("1280", "axb", "8x8"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_size(bad)


def test_real_size_suite_runs_on_a_reduced_architecture(monkeypatch) -> None:
    """The GPU path (random reference weights, bf16) on a scaled-down size entry, on CPU."""
    from spotvlm_ros.models import reference

    small = {
        "text": {
            "hidden_size": 256,  # head_dim 128, as the published mrope sections need
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "vocab_size": 2048,
        },
        "tie_word_embeddings": True,
        "vision": {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "fullatt_block_indexes": [1],
        },
    }
    monkeypatch.setitem(reference.QWEN2_5_VL_SIZES, "small", small)
    args = argparse.Namespace(
        real_sizes=["small"], contexts=[64], real_frames=2, warmup=1, frame_size=(320, 240),
        full_size=112, crop_size=112, max_new_tokens=3,
    )  # fmt: skip
    figures = bench.real_size_figures(args, device="cpu")
    assert figures["qwen2_5_vl_small_context64_full_visual_tokens"] == visual_tokens(320, 240)
    assert figures["qwen2_5_vl_small_prefix_reuse_speedup_ratio"] > 0
    assert figures["qwen2_5_vl_small_context64_focus_reuse_p95_ms"] > 0


def test_reference_architectures_have_the_published_sizes() -> None:
    import torch

    from spotvlm_ros.models.reference import build_random_reference, qwen2_5_vl_reference_config

    for size, billions in (("3b", 3.75), ("7b", 8.29)):
        model = build_random_reference(size, "meta")  # no memory: parameter shapes only
        assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == billions
        assert model.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown Qwen2.5-VL size '1t'"):
        qwen2_5_vl_reference_config("1t")


@pytest.mark.slow
def test_family_prefix_reuse_figures(capsys) -> None:
    args = argparse.Namespace(frame_size=(320, 240), full_size=160, crop_size=160, family_frames=1)
    figures = bench.family_reuse_figures(args)
    out = capsys.readouterr().out
    assert figures["family_qwen3_vl_prefix_reuse_snapshot"] is False
    assert figures["family_qwen3_vl_prefix_reuse_speedup_ratio"] > 0
    assert figures["family_qwen3_5_prefix_reuse_snapshot"] is True
    assert figures["family_qwen3_5_prefix_reuse_speedup_ratio"] > 0
    assert "qwen3_5        snapshot speedup" in out
