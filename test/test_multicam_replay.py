"""Replay of bags with several cameras (written here with the project's writer), and one camera unchanged."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from spotvlm_ros.core.camera_groups import group_frame
from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.latency import parse_latency_profile
from spotvlm_ros.core.messages import detection_array_to_regions
from spotvlm_ros.core.types import Box, Frame, Region
from spotvlm_ros.models.base import Generation
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.baselines import BlockingCloudAnswerer
from spotvlm_ros.runtime.camera_set import CameraSetBag, write_camera_set_bag
from spotvlm_ros.runtime.clock import SimulatedClock
from spotvlm_ros.runtime.cloud import DelaySampler, LvlmQuery
from spotvlm_ros.runtime.make_bag import make_synthetic_bag, synthetic_frames
from spotvlm_ros.runtime.replay import replay_bag
from spotvlm_ros.runtime.typestore import message_to_dict, spotvlm_typestore

MS = 1_000_000
NUSCENES = ["CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT"]


class GroundingDouble(ZeroCostBackend):
    """Test double of a grounding LVLM (no real one runs here): fixed boxes, and the images it was shown."""

    def __init__(self, regions: tuple[Region, ...] = (), name: str = "grounding-double") -> None:
        super().__init__(name)
        self.regions = regions
        self.shown: list[list[tuple[int, ...]]] = []

    def generate(self, messages, images, **kwargs) -> Generation:
        self.shown.append([image.shape for image in images])
        return replace(super().generate(messages, images, **kwargs), regions=self.regions)


def camera_bag(path: Path, names: list[str], frames: int = 10, jitter_ms: int = 3) -> dict[str, str]:
    """A bag of ``names`` cameras (synthetic world, each camera its own view), stamps jittered per camera.

    Returns topic -> camera name.
    """
    source = list(synthetic_frames(frames, width=160, height=120))
    cameras = {}
    for index, name in enumerate(names):
        sign = 1 if index % 2 else -1
        cameras[f"/{name}/image_raw/compressed"] = [
            replace(
                frame,
                frame_id=name,
                image=np.ascontiguousarray(np.roll(frame.image, 20 * index, axis=1)),
                stamp_ns=frame.stamp_ns + sign * jitter_ms * MS * (index > 0),
            )
            for frame, _ in source
        ]
    write_camera_set_bag(path, cameras, annotations=[a for _, a in source])
    return {topic: name for topic, name in zip(cameras, names, strict=True)}


def settings(topics, **extra):
    return load_config(
        overrides={
            "camera.topics": list(topics),
            "edge.backend": "zero",
            "cloud.backend": "zero",
            "edge.step_time_s": 0.05,
            "latency.profile": "constant:delay=0.25",
            "focus.propagation": "static",
            **extra,
        }
    )


def bag_messages(path: Path) -> dict[str, list]:
    store = spotvlm_typestore()
    out: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append((raw, conn.msgtype))
    return {t: [(bytes(r), store.deserialize_cdr(r, m)) for r, m in items] for t, items in out.items()}


def test_two_cameras_replay_as_groups_with_regions_in_their_camera(tmp_path):
    topics = camera_bag(tmp_path / "in", ["left", "right"])
    lvlm = GroundingDouble(
        (Region(Box(100, 40, 140, 80), "right: car", 0.9), Region(Box(5, 5, 40, 30), "sign"))
    )
    edge = GroundingDouble(name="svlm-double")
    summary = replay_bag(
        tmp_path / "in", settings(topics), out_dir=tmp_path / "out", edge_backend=edge, cloud_backend=lvlm
    )
    assert summary.counts["answered"] == 10 and summary.read["groups"] == 10
    assert summary.read["unmatched"] == {} and summary.topic == ", ".join(topics)
    assert all(len(shown) == 2 for shown in lvlm.shown)  # every keyframe: both cameras
    assert any(len(shown) == 4 for shown in edge.shown)  # both cameras and a crop of each region
    written = bag_messages(tmp_path / "out" / "bag")
    original = bag_messages(tmp_path / "in")
    for topic in topics:  # each camera copied byte for byte onto its own topic
        assert [raw for raw, _ in written[topic]] == [raw for raw, _ in original[topic]]
    for name in topics.values():
        images = written[f"/spotvlm/focus_image/{name}"]
        assert len(images) == 10 and {msg.header.frame_id for _, msg in images} == {name}
    context = written["/spotvlm/context"][0][1]
    assert list(context.camera_frame_ids) == ["left", "right"] and list(context.camera_widths) == [160, 160]
    regions = detection_array_to_regions(message_to_dict(context.regions))
    assert [(r.frame_id, r.label) for r in regions] == [("right", "car"), ("", "sign")]
    used = [msg for _, msg in written["/spotvlm/detections"] if msg.detections]
    assert used, "no answer used the LVLM's regions"
    cameras = {d.header.frame_id for msg in used for d in msg.detections}
    assert cameras == {"left", "right"} and all(msg.header.frame_id == "left" for msg in used)
    records = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "answer" for r in records) == 10


def test_six_cameras_in_a_mosaic(tmp_path):
    topics = camera_bag(tmp_path / "in", NUSCENES, frames=6, jitter_ms=20)
    edge = GroundingDouble(name="svlm-double")
    config = settings(topics, **{"focus.multi_camera": "mosaic", "focus.mode": "off"})
    summary = replay_bag(tmp_path / "in", config, edge_backend=edge, cloud_backend=GroundingDouble())
    assert summary.counts["answered"] == 6 and summary.read["groups"] == 6
    assert {len(shown) for shown in edge.shown} == {1}  # one mosaic
    assert edge.shown[0][0][:2] == (80, 160)  # 3x2 tiles of 160x120, drawn no larger than one camera


def test_slop_exceeded_answers_nothing_and_says_why(tmp_path):
    topics = camera_bag(tmp_path / "in", ["left", "right"], frames=5, jitter_ms=30)
    summary = replay_bag(tmp_path / "in", settings(topics, **{"camera.sync_slop_s": 0.02}))
    assert summary.counts["answered"] == 0 and summary.read["groups"] == 0
    assert summary.read["unmatched"] == {"/left/image_raw/compressed": 5, "/right/image_raw/compressed": 5}
    assert summary.read["messages"] == 10


def test_camera_set_rejects_a_missing_topic(tmp_path):
    camera_bag(tmp_path / "in", ["left", "right"], frames=2)
    with pytest.raises(Exception, match="no image topic '/nope'"):
        CameraSetBag(tmp_path / "in", ["/left/image_raw/compressed", "/nope"], 0.05)


@pytest.mark.parametrize("backend", ["zero", "tiny"])
def test_one_camera_in_topics_replays_exactly_as_camera_topic(tmp_path, backend):
    make_synthetic_bag(tmp_path / "in", frames=8, width=96, height=72, transport="compressed")
    topic = "/camera/image_raw/compressed"
    common = {
        "edge.backend": backend,
        "cloud.backend": backend,
        "edge.step_time_s": 0.1,
        "edge.max_new_tokens": 4,
        "cloud.max_new_tokens": 6,
        "edge.image_max_side": 64,
        "cloud.image_max_side": 64,
        "focus.full_size": 64,
        "focus.crop_size": 32,
        "latency.profile": "constant:delay=0.2",
    }
    outputs = []
    for name, camera in (("topic", {"camera.topic": topic}), ("topics", {"camera.topics": [topic]})):
        summary = replay_bag(
            tmp_path / "in", load_config(overrides={**common, **camera}), out_dir=tmp_path / name
        )
        records = (tmp_path / name / "records.jsonl").read_text()
        outputs.append((summary.to_json(include_wall_time=False) | {"outputs": {}}, records))
        bag = bag_messages(tmp_path / name / "bag")
        assert set(bag) >= {topic, "/spotvlm/focus_image", "/spotvlm/answer"}
        assert not any(t.startswith("/spotvlm/focus_image/") for t in bag)
    assert outputs[0] == outputs[1]
    assert outputs[0][0]["counts"]["answered"] == 8 and "groups" not in outputs[0][0]["read"]


def test_the_blocking_cloud_baseline_sends_every_camera():
    config = load_config(overrides={"cloud.backend": "zero"})
    lvlm = GroundingDouble((Region(Box(10, 10, 20, 20), "back: car"),))
    clock = SimulatedClock(0)
    delay = DelaySampler(clock, parse_latency_profile("constant:delay=0.5", seed=0))
    answerer = BlockingCloudAnswerer(LvlmQuery(lvlm, config, "vqa", "p", True), delay, clock)
    front = Frame(MS, np.zeros((48, 64, 3), np.uint8), "front")
    back = Frame(MS + 1, np.full((24, 32, 3), 90, np.uint8), "back")
    step = answerer.answer(group_frame([front, back]))
    assert lvlm.shown == [[(48, 64, 3), (24, 32, 3)]]
    assert answerer.use.bytes_sent > 0 and step.latency_s == 0.5
    single = answerer.answer(front)
    assert lvlm.shown[-1] == [(48, 64, 3)] and single.answer.frame_id == "front"
