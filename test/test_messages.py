"""Domain types <-> ROS message layouts (dicts) without ROS."""

from __future__ import annotations

import math

import pytest

from spotvlm_ros.core import messages as M
from spotvlm_ros.core.types import Box, EdgeAnswer, LvlmResult, Region


def test_header_splits_nanoseconds():
    h = M.header(12_345_678_901, "cam")
    assert h == {"stamp": {"sec": 12, "nanosec": 345_678_901}, "frame_id": "cam"}
    assert M.header_stamp_ns(h) == 12_345_678_901
    with pytest.raises(ValueError):
        M.header(-1, "cam")


def test_region_detection_layout():
    det = M.region_to_detection(Region(Box(10, 20, 50, 100), "car", 0.7), 5, "cam", "0")
    assert det["bbox"]["center"]["position"] == {"x": 30.0, "y": 60.0}
    assert (det["bbox"]["size_x"], det["bbox"]["size_y"]) == (40.0, 80.0)
    assert det["results"][0]["hypothesis"] == {"class_id": "car", "score": 0.7}
    assert M.detection_to_region(det) == Region(Box(10, 20, 50, 100), "car", 0.7)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -3.0])
def test_detection_with_bad_box_is_rejected(bad):
    det = M.region_to_detection(Region(Box(0, 0, 4, 4)), 0, "cam")
    det["bbox"]["size_x"] = bad
    with pytest.raises(ValueError, match="invalid detection box"):
        M.detection_to_region(det)


def test_domain_roundtrips():
    result = LvlmResult(
        "r", 7, "vqa", "p", "t", (Region(Box(1, 2, 3, 4), "x", 0.5),), (8, 6), "s", "m", 0.1, "f"
    )
    assert M.lvlm_result_from_msg(M.lvlm_result_to_msg(result)) == result
    answer = EdgeAnswer(9, "caption", "a road", "f", context_id="r", context_age_s=0.3, context_status="used")
    assert M.edge_answer_from_msg(M.edge_answer_to_msg(answer)) == answer


def test_box_geometry():
    box = Box(0, 0, 10, 20)
    assert box.area == 200 and box.center == (5, 10)
    assert box.iou(Box(0, 0, 10, 20)) == 1.0 and box.iou(Box(20, 20, 30, 30)) == 0.0
    assert box.iou(Box(5, 0, 15, 20)) == pytest.approx(1 / 3)
    assert Box(-5, -5, 700, 500).clip(640, 480) == Box(0, 0, 640, 480)
    assert box.grow(2.0) == Box(-5, -10, 15, 30)
    assert not Box(0, 0, math.nan, 3).is_valid() and not Box(5, 5, 5, 9).is_valid()
