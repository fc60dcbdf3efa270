import math

import pytest

from spotvlm_ros.core.metrics import (
    age_stats,
    bleu,
    exact_match,
    grounding_iou,
    iou_accuracy,
    latency_stats,
    normalize_answer,
    percentile,
    pick_region,
    rouge_l,
)
from spotvlm_ros.core.types import Box, Region


def test_normalized_exact_match():
    assert normalize_answer("  The Light is RED. ") == "light is red"
    assert exact_match("Red!", "red") == 1.0
    assert exact_match("two", "2") == 1.0
    assert exact_match("green", "red") == 0.0
    assert exact_match("", "red") == 0.0


def test_percentile_matches_linear_interpolation():
    values = [0.1, 0.4, 0.2, 0.3]
    assert percentile(values, 50) == pytest.approx(0.25)
    assert percentile(values, 0) == 0.1 and percentile(values, 100) == 0.4
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_latency_stats_counts_deadline_misses():
    stats = latency_stats([0.1, 0.2, 0.6, 1.0], deadline_s=0.5)
    assert stats.deadline_misses == 2 and stats.deadline_miss_rate == 0.5
    assert stats.max_s == 1.0 and stats.mean_s == pytest.approx(0.475)
    assert stats.to_json()["count"] == 4


def test_caption_metrics_from_libraries():
    assert rouge_l(["a red light ahead"], ["a red light ahead"]) == pytest.approx(1.0)
    assert 0.0 < rouge_l(["the light is red"], ["a red light"]) < 1.0
    assert bleu(["the car stops at the red light"], ["the car stops at the red light"]) == pytest.approx(
        100.0
    )
    assert bleu(["green"], ["the car stops at the red light"]) < 10.0
    with pytest.raises(ValueError):
        rouge_l(["a"], [])
    assert math.isnan(bleu([], []))


def test_grounding_picks_matching_label_and_scores_iou():
    gold = Box(10, 10, 20, 20)
    regions = (Region(Box(100, 100, 110, 110), "car"), Region(Box(10, 10, 20, 22), "traffic light"))
    assert pick_region(regions, "traffic light").label == "traffic light"
    assert grounding_iou(regions, "traffic light", gold) == pytest.approx(100 / 120)
    assert grounding_iou(regions, "bus", gold) == 0.0  # falls back to the first region, disjoint
    assert grounding_iou((), "car", gold) == 0.0
    assert iou_accuracy([0.9, 0.5, 0.1, 0.0]) == 0.5


def test_age_stats_ignore_frames_without_context():
    stats = age_stats([-1.0, 0.5, 1.5, -1.0])
    assert stats.with_context == 2 and stats.coverage == 0.5
    assert stats.mean_s == pytest.approx(1.0)
    assert math.isnan(age_stats([-1.0]).mean_s)
