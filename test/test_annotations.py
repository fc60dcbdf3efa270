"""The ground-truth JSONL sidecar format."""

from __future__ import annotations

import pytest

from spotvlm_ros.core.annotations import (
    AnnotationError,
    FrameAnnotation,
    GroundingItem,
    VqaItem,
    load_annotations,
    save_annotations,
)
from spotvlm_ros.core.types import Box


def _ann(stamp: int) -> FrameAnnotation:
    return FrameAnnotation(
        stamp,
        (
            VqaItem("light", "What is the state of the traffic light?", "red"),
            VqaItem("cars", "How many cars?", "2"),
        ),
        "a road",
        (GroundingItem("light", "the traffic light", "traffic light", Box(1, 2, 3, 5)),),
    )


def test_roundtrip_and_lookup(tmp_path):
    save_annotations(tmp_path / "annotations.jsonl", [_ann(300), _ann(100), FrameAnnotation(200)])
    index = load_annotations(tmp_path)
    assert len(index) == 3
    assert index.get(100) == _ann(100)
    assert index.get(150) is None
    assert index.get(290, tolerance_ns=20) == _ann(300)
    assert index.get(240, tolerance_ns=50) == FrameAnnotation(200)
    assert index.question_ids() == ["cars", "light"]
    ann = index.get(300)
    assert ann.answer("light") == "red" and ann.answer("nope") is None
    assert ann.box("light").box == Box(1, 2, 3, 5)
    assert ann.sequence == ""  # one recording unless a line says otherwise


def test_the_sequence_of_a_frame_survives_the_roundtrip(tmp_path):
    tagged = FrameAnnotation(100, sequence="drive-03")
    save_annotations(tmp_path / "annotations.jsonl", [tagged, FrameAnnotation(200)])
    assert '"sequence": "drive-03"' in (tmp_path / "annotations.jsonl").read_text()
    index = load_annotations(tmp_path)
    assert index.get(100).sequence == "drive-03" and index.get(200).sequence == ""


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"stamp_ns": -5}', "stamp_ns"),
        ('{"stamp_ns": 1.5}', "stamp_ns"),
        ('{"vqa": []}', "stamp_ns"),
        ('{"stamp_ns": 1, "grounding": [{"id": "a", "query": "q", "box": [1, 2, 3]}]}', "4 numbers"),
        ('{"stamp_ns": 1, "grounding": [{"id": "a", "query": "q", "box": [5, 5, 1, 1]}]}', "invalid box"),
        ("not json", "Expecting value"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "a.jsonl"
    path.write_text('{"stamp_ns": 1}\n' + line + "\n")
    with pytest.raises(AnnotationError, match=rf"a\.jsonl:2: .*{message}"):
        load_annotations(path)
