"""The LVLM keyframe of several cameras on the wire: QueryLVLM goals with every camera, the server's
answer with regions in their camera, the bridge's goal, and messages grouped like the nodes do."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from spotvlm_ros.core.camera_groups import group_frame
from spotvlm_ros.core.config import config_from_dict
from spotvlm_ros.core.messages import (
    lvlm_result_from_msg,
    lvlm_result_to_msg,
    query_goal,
    regions_to_detection_array,
)
from spotvlm_ros.core.types import Box, Frame, LvlmResult, Region
from spotvlm_ros.models.base import Generation
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.bridge import BridgeLogic, SendGoal
from spotvlm_ros.runtime.image_codec import ImageDecodeError, encode_jpeg, rgb_to_image_msg
from spotvlm_ros.runtime.lvlm_service import SUCCEEDED, LvlmService, goal_view
from spotvlm_ros.runtime.ros_msgs import camera_topics, frame_group_from_msgs
from spotvlm_ros.runtime.typestore import build_message, spotvlm_typestore

GOAL = "spotvlm_msgs/action/QueryLVLM_Goal"
NS = 1_000_000_000


class GroundingDouble(ZeroCostBackend):
    """Test double of a grounding LVLM (no real one runs here): fixed boxes, the images it was shown."""

    def __init__(self, regions: tuple[Region, ...]) -> None:
        super().__init__("grounding-double")
        self.regions = regions
        self.shown: list[list[tuple[int, ...]]] = []
        self.prompts: list[str] = []

    def generate(self, messages, images, **kwargs) -> Generation:
        self.shown.append([image.shape for image in images])
        self.prompts.append(messages[-1]["content"][-1]["text"])
        return replace(super().generate(messages, images, **kwargs), regions=self.regions)


def image(width: int, height: int, value: int) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


def two_camera_goal(**kw) -> dict:
    return query_goal(
        encode_jpeg(image(160, 120, 40)),
        5 * NS,
        "front",
        task="grounding",
        prompt="Where are the cars?",
        want_regions=True,
        request_id="bridge-1",
        more_images=[(encode_jpeg(image(80, 60, 200)), 5 * NS + 3, "back")],
        **kw,
    )


def on_the_wire(goal: dict):
    """The goal serialized as the real message type and read back (a rosbags message object)."""
    store = spotvlm_typestore()
    raw = store.serialize_cdr(build_message(store, GOAL, goal), GOAL)
    return store.deserialize_cdr(raw, GOAL)


@pytest.mark.parametrize("mode", ["images", "mosaic"])
def test_a_goal_of_two_cameras_is_answered_with_regions_in_their_camera(mode):
    if mode == "images":  # boxes about the first image, the label naming the camera moves one
        regions = (Region(Box(40, 30, 80, 60), "back: car", 0.9), Region(Box(0, 0, 16, 12), "sign"))
    else:  # a 2x1 mosaic of 160x120 tiles drawn at cloud.image_max_side 160: 0.5 px per camera px
        regions = (Region(Box(90, 10, 100, 20), "car", 0.9), Region(Box(0, 0, 8, 6), "sign"))
    config = config_from_dict({"focus": {"multi_camera": mode}, "cloud": {"image_max_side": 160}})
    backend = GroundingDouble(regions)
    service = LvlmService(backend, config)
    view = goal_view(on_the_wire(two_camera_goal()))
    assert [i["header"]["frame_id"] for i in [view["image"], *view["more_images"]]] == ["front", "back"]
    assert service.admit(view) == ""
    outcome = service.run(view)
    assert outcome.status == SUCCEEDED, outcome.error
    context = lvlm_result_from_msg(outcome.result["context"])
    assert context.frame_id == "front" and context.camera_sizes == (("front", 160, 120), ("back", 80, 60))
    car, sign = context.regions
    assert (car.frame_id, car.label, sign.frame_id) == ("back", "car", "")  # "" = the reference camera
    if mode == "images":
        assert backend.shown == [[(120, 160, 3), (60, 80, 3)]]
        assert car.box == Box(20, 15, 40, 30)  # first-image pixels scaled to the 80x60 back camera
        assert "Images 1-2 are the cameras front, back" in backend.prompts[0]
    else:
        assert backend.shown == [[(60, 160, 3)]]
        assert car.box == Box(10, 10, 20, 20)  # 0.5 shown px per mosaic px, the 80x60 camera x2 in its tile
        assert "mosaic of the cameras front, back" in backend.prompts[0]
    assert sign.box == Box(0, 0, 16, 12)


def test_a_one_camera_goal_stays_valid_with_or_without_the_new_field():
    backend = GroundingDouble((Region(Box(1, 2, 30, 40), "car"),))
    service = LvlmService(backend, config_from_dict({}))
    single = query_goal(
        encode_jpeg(image(64, 48, 90)), NS, "cam", task="vqa", prompt="p", want_regions=True, request_id="r"
    )
    assert single["more_images"] == []
    legacy = {k: v for k, v in single.items() if k != "more_images"}  # a goal from an older bridge
    for goal in (goal_view(on_the_wire(single)), legacy):
        assert service.check(goal) == ""
        outcome = service.run(goal)
        context = lvlm_result_from_msg(outcome.result["context"])
        assert context.camera_sizes == () and context.regions == (Region(Box(1, 2, 30, 40), "car"),)
    assert backend.shown == [[(48, 64, 3)]] * 2 and "cameras" not in backend.prompts[0]


def test_bad_camera_sets_are_refused_with_the_camera_named():
    service = LvlmService(GroundingDouble(()), config_from_dict({"server": {"max_image_bytes": 2048}}))
    goal = two_camera_goal()
    goal["more_images"][0]["header"]["frame_id"] = "front"
    assert "distinct header.frame_id" in service.check(goal)
    goal = two_camera_goal()
    goal["more_images"][0]["data"] = b"\xff" * 4096
    assert service.check(goal) == "image 1 ('back'): image of 4096 bytes exceeds server.max_image_bytes=2048"
    goal["more_images"] = [dict(goal["image"])] * 16
    assert "at most 16 cameras" in service.check(goal)


def test_lvlm_context_and_detections_carry_each_camera():
    result = LvlmResult(
        "r",
        7,
        "vqa",
        "p",
        "t",
        regions=(Region(Box(0, 0, 4, 4), "a"), Region(Box(1, 1, 5, 5), "b", 0.5, "back")),
        image_size=(160, 120),
        frame_id="front",
        camera_sizes=(("front", 160, 120), ("back", 80, 60)),
    )
    msg = lvlm_result_to_msg(result)
    assert msg["camera_frame_ids"] == ["front", "back"] and msg["camera_heights"] == [120, 60]
    assert [d["header"]["frame_id"] for d in msg["regions"]["detections"]] == ["front", "back"]
    assert lvlm_result_from_msg(msg) == result
    assert result.size_of("back") == (80, 60) and result.size_of("side") == (160, 120)
    broken = dict(msg, camera_widths=[160])
    with pytest.raises(ValueError, match="differ in length"):
        lvlm_result_from_msg(broken)
    one = regions_to_detection_array((Region(Box(0, 0, 2, 2)),), 7, "cam")
    assert one["detections"][0]["header"]["frame_id"] == "cam"


def test_the_bridge_sends_every_camera_of_a_group():
    bridge = BridgeLogic(config_from_dict({"keyframes": {"max_image_side": 64}}))
    bridge.tick(NS, server_up=True)
    group = group_frame(
        [Frame(2 * NS, image(160, 120, 30), "front"), Frame(2 * NS + 5, image(80, 60, 90), "back")]
    )
    (send,) = bridge.on_frame(group, 2 * NS)
    assert isinstance(send, SendGoal)
    goal = send.goal
    assert goal["image"]["header"]["frame_id"] == "front"
    (more,) = goal["more_images"]
    assert more["header"] == {"stamp": {"sec": 2, "nanosec": 5}, "frame_id": "back"}
    assert send.jpeg_bytes == len(goal["image"]["data"]) + len(more["data"])
    on_the_wire(goal)  # a valid QueryLVLM goal
    single = BridgeLogic(config_from_dict({}))
    single.tick(NS, server_up=True)
    (send,) = single.on_frame(Frame(2 * NS, image(32, 24, 1), "cam"), 2 * NS)
    assert send.goal["more_images"] == []


def ros_image(stamp_ns: int, frame_id: str, value: int):
    fields = rgb_to_image_msg(image(16, 12, value), stamp_ns, frame_id)
    stamp = SimpleNamespace(**fields["header"]["stamp"])
    header = SimpleNamespace(stamp=stamp, frame_id=frame_id)
    return SimpleNamespace(**{**fields, "header": header, "data": fields["data"].tobytes()})


def test_messages_of_one_instant_become_one_frame_group():
    group = frame_group_from_msgs([ros_image(NS, "front", 10), ros_image(NS + 4, "back", 20)], seq=3)
    assert [v.frame_id for v in group.cameras] == ["front", "back"] and group.seq == 3
    assert (
        group.stamp_ns == NS and group.cameras[1].stamp_ns == NS + 4 and group.cameras[1].image[0, 0, 0] == 20
    )
    single = frame_group_from_msgs([ros_image(NS, "cam", 5)], seq=1)
    assert single.cameras == () and single.frame_id == "cam"
    broken = ros_image(NS, "back", 1)
    broken.data = b"\x00"
    with pytest.raises(ImageDecodeError, match="camera 'back'"):
        frame_group_from_msgs([ros_image(NS, "front", 1), broken])
    with pytest.raises(ValueError, match="own frame_id"):
        frame_group_from_msgs([ros_image(NS, "cam", 1), ros_image(NS, "cam", 2)])


def test_node_topics_per_camera_follow_the_transport():
    camera = config_from_dict(
        {"camera": {"topics": ["/a/image_raw", "/b/image_raw"], "transport": "compressed"}}
    )
    assert camera_topics(camera.camera) == ["/a/image_raw/compressed", "/b/image_raw/compressed"]
    assert camera_topics(config_from_dict({}).camera) == ["image"]
