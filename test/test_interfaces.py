"""spotvlm_msgs: every interface parses with rosbags and round-trips through CDR."""

from __future__ import annotations

import pytest
from rosbags.typesys import get_types_from_msg

from spotvlm_ros.core import messages as M
from spotvlm_ros.core.types import Box, EdgeAnswer, LvlmResult, Region
from spotvlm_ros.runtime.typestore import (
    VISION_MSGS_DIR,
    build_message,
    find_interface_dir,
    interface_files,
    message_to_dict,
    split_action,
    spotvlm_typestore,
)

REGIONS = (Region(Box(10.0, 20.0, 110.5, 90.25), "traffic light", 0.875), Region(Box(0, 0, 5, 5), "car", 0.5))


def test_interface_files_are_the_source_tree_ones(repo_root):
    assert find_interface_dir() == repo_root / "spotvlm_msgs"
    names = {p.name for p in interface_files()}
    assert names == {"LvlmContext.msg", "EdgeAnswer.msg", "QueryLVLM.action"}


@pytest.mark.parametrize("path", interface_files(), ids=lambda p: p.name)
def test_every_interface_parses_with_rosbags(path):
    if path.suffix == ".msg":
        types = get_types_from_msg(path.read_text(), f"spotvlm_msgs/msg/{path.stem}")
        assert f"spotvlm_msgs/msg/{path.stem}" in types
    else:
        parts = split_action(path.read_text())
        for part, text in parts.items():
            name = f"spotvlm_msgs/action/{path.stem}_{part}"
            assert name in get_types_from_msg(text, name)


def test_every_field_is_documented():
    """Each field sits in a block (lines between blanks) that starts with a comment."""
    for path in interface_files():
        documented = False
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if not stripped or stripped == "---":
                documented = False
            elif stripped.startswith("#"):
                documented = True
            else:
                assert documented, f"{path.name}: field '{stripped}' has no comment above it"


def test_vision_msgs_definitions_parse():
    for path in VISION_MSGS_DIR.glob("*.msg"):
        assert get_types_from_msg(path.read_text(), f"vision_msgs/msg/{path.stem}")


def test_split_action_rejects_wrong_part_count():
    with pytest.raises(ValueError, match="3 parts"):
        split_action("int32 a\n---\nint32 b\n")


def _roundtrip(typename: str, data: dict) -> dict:
    store = spotvlm_typestore()
    raw = store.serialize_cdr(build_message(store, typename, data), typename)
    return message_to_dict(store.deserialize_cdr(raw, typename))


def test_lvlm_context_roundtrip_cdr():
    result = LvlmResult(
        request_id="bridge-7",
        stamp_ns=1_700_000_000_123_456_789,
        task="grounding",
        prompt="Where is the traffic light?",
        text='[{"bbox_2d": [10, 20, 110, 90], "label": "traffic light"}]',
        regions=REGIONS,
        image_size=(640, 480),
        summary="traffic light top left",
        model="Qwen/Qwen2.5-VL-72B-Instruct",
        round_trip_s=1.75,
        frame_id="front_camera",
    )
    back = M.lvlm_result_from_msg(_roundtrip("spotvlm_msgs/msg/LvlmContext", M.lvlm_result_to_msg(result)))
    assert back == result


def test_edge_answer_roundtrip_cdr():
    answer = EdgeAnswer(
        stamp_ns=42_000_000_001,
        task="vqa",
        text="red",
        frame_id="cam",
        regions=REGIONS[:1],
        context_id="bridge-3",
        context_age_s=2.5,
        context_status="used",
        focus_regions=REGIONS,
        focus_mode="crop",
        inference_s=0.031,
        prompt_tokens=321,
        image_tokens=128,
        skipped_frames=2,
    )
    back = M.edge_answer_from_msg(_roundtrip("spotvlm_msgs/msg/EdgeAnswer", M.edge_answer_to_msg(answer)))
    assert back == answer


def test_action_parts_roundtrip_cdr():
    jpeg = bytes(range(256)) * 3
    goal = M.query_goal(
        jpeg,
        5_000_000_000,
        "cam",
        task="vqa",
        prompt="state?",
        want_regions=True,
        request_id="q1",
        max_new_tokens=64,
    )
    back = _roundtrip("spotvlm_msgs/action/QueryLVLM_Goal", goal)
    assert back["image"]["data"] == jpeg
    assert M.header_stamp_ns(back["image"]["header"]) == 5_000_000_000
    assert (
        back["task"],
        back["prompt"],
        back["want_regions"],
        back["request_id"],
        back["max_new_tokens"],
    ) == (
        "vqa",
        "state?",
        True,
        "q1",
        64,
    )
    ctx = M.lvlm_result_to_msg(LvlmResult("q1", 5_000_000_000, "vqa", "state?", "green", image_size=(64, 48)))
    result = _roundtrip(
        "spotvlm_msgs/action/QueryLVLM_Result", {"context": ctx, "success": False, "error": "timeout"}
    )
    assert (result["success"], result["error"]) == (False, "timeout")
    assert M.lvlm_result_from_msg(result["context"]).text == "green"
    feedback = _roundtrip("spotvlm_msgs/action/QueryLVLM_Feedback", {"partial_text": "gre"})
    assert feedback["partial_text"] == "gre"


def test_build_message_rejects_unknown_field():
    with pytest.raises(KeyError, match="no field"):
        build_message(spotvlm_typestore(), "spotvlm_msgs/action/QueryLVLM_Feedback", {"partial": "x"})
