"""`spotvlm bench models` end to end on the tiny model (few frames), and its building blocks."""

from __future__ import annotations

import argparse
import json

import pytest

from spotvlm_ros.bench import models as bench
from spotvlm_ros.core.focus.tokens import visual_tokens


def test_bench_prints_the_figures_and_a_bench_line_last(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPOTVLM_CACHE_DIR", str(tmp_path))
    argv = ["--threads", "1", "--frames", "2", "--warmup", "1", "--contexts", "64,256", "--device", "cpu"]
    assert bench.main(argv) == 0
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
    assert figures["gpu"] is False and figures["threads"] == 1


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
