"""What the launch files compute (camera topics, demo models, the rviz layout) and the shipped rviz and
QoS override files against the bags the project writes. No ROS needed."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from spotvlm_ros.core.config import config_from_dict
from spotvlm_ros.core.types import EdgeAnswer, Frame, LvlmResult
from spotvlm_ros.runtime.bag_writer import OutputBag
from spotvlm_ros.runtime.launch_setup import (
    camera_parameters,
    model_parameters,
    parse_topic_list,
    rviz_config,
)
from spotvlm_ros.training.scenario import demo_models_present

NUSCENES = ["CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT"]


def image_topics(text: str) -> dict[str, str]:
    """Display name -> subscribed topic of every Image display of an rviz2 config."""
    layout = yaml.safe_load(text)
    displays = layout["Visualization Manager"]["Displays"]
    return {d["Name"]: d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}


def test_camera_topics_argument():
    assert parse_topic_list("") == []
    assert parse_topic_list("[/a/image, /b/image]") == ["/a/image", "/b/image"]
    assert parse_topic_list("/a/image, /b/image") == ["/a/image", "/b/image"]
    for bad in ("[/a, ", "[1, 2]", "[/a, '']"):
        with pytest.raises(ValueError, match="camera_topics"):
            parse_topic_list(bad)


def test_camera_parameters_make_a_valid_config():
    one = camera_parameters("/camera/image_raw", [], "compressed")
    assert one == {"camera.transport": "compressed", "camera.topic": "/camera/image_raw"}
    several = camera_parameters("/camera/image_raw", ["/a", "/b"], "raw")
    assert several == {"camera.transport": "raw", "camera.topic": "", "camera.topics": ["/a", "/b"]}
    for params in (one, several):
        nested: dict = {}
        for key, value in params.items():
            nested.setdefault("camera", {})[key.split(".")[1]] = value
        config_from_dict(nested)
    with pytest.raises(ValueError, match="image_transport"):
        camera_parameters("/c", [], "jpeg")


@pytest.mark.skipif(not demo_models_present(), reason="the trained demo models are not in this checkout")
def test_replay_uses_the_trained_demo_models_by_default(repo_root):
    params = model_parameters("demo")
    assert params["edge.backend"] == params["cloud.backend"] == "hf"
    assert params["edge.model"].endswith("demo_models/svlm") and params["cloud.model"].endswith(
        "demo_models/lvlm"
    )
    assert "edge.step_time_s" not in params  # a simulated-clock setting; the nodes measure
    assert model_parameters("params") == {}
    launch = (repo_root / "launch" / "replay.launch.py").read_text()
    assert 'DeclareLaunchArgument("models", default_value="demo"' in launch
    with pytest.raises(ValueError, match="models"):
        model_parameters("big")


def test_rviz_layout_shows_every_camera_and_its_focus_image():
    topics = [f"/{name}/image_raw" for name in NUSCENES]
    shown = image_topics(rviz_config(topics, "compressed", namespace="car1"))
    assert len(shown) == 12
    assert list(shown)[:6] == [f"Focus {name}" for name in NUSCENES]  # the focus images first
    for name in NUSCENES:
        assert shown[f"Focus {name}"] == f"/car1/spotvlm_edge/focus_image/{name}"
        assert shown[f"Camera {name}"] == f"/{name}/image_raw/compressed"  # rviz2 reads the transport here
    raw = image_topics(rviz_config(["image"], "raw", namespace="/car1"))
    assert raw == {"Focus image and answer": "/car1/spotvlm_edge/focus_image", "Camera": "/car1/image"}


def test_shipped_rviz_config_subscribes_what_the_demo_replay_plays(repo_root):
    shipped = (repo_root / "config" / "spotvlm.rviz").read_text()
    assert shipped == rviz_config(["/camera/image_raw"], "compressed")
    shown = image_topics(shipped)
    with Reader(repo_root / "rosbags" / "demo") as bag:
        played = {c.topic for c in bag.connections}
    assert shown["Camera"] in played  # the replay launch plays the demo bag's compressed topic
    assert shown["Focus image and answer"] == "/spotvlm_edge/focus_image"


def test_qos_overrides_name_topics_the_output_bags_hold(repo_root, tmp_path):
    overrides = yaml.safe_load((repo_root / "config" / "qos_overrides.yaml").read_text())
    assert overrides["/spotvlm/context"]["durability"] == "transient_local"
    with OutputBag(tmp_path / "bag", records_path=tmp_path / "records.jsonl") as bag:
        frame = Frame(1_000, np.zeros((8, 8, 3), np.uint8))
        bag.write_frame(frame)
        bag.write_answer(EdgeAnswer(1_000, "vqa", "red"), 2_000, frame)
        bag.write_context(LvlmResult("r", 1_000, "vqa", "p", "red"), 3_000)
    with Reader(tmp_path / "bag") as reader:
        held = {c.topic: c for c in reader.connections}
    assert set(overrides) <= set(held), f"{sorted(set(overrides) - set(held))} are in no bag SpotVLM writes"
    for topic, profile in overrides.items():
        recorded = held[topic].ext.offered_qos_profiles[0]
        assert recorded.durability.name.lower() == profile["durability"]
        assert recorded.depth == profile["depth"]


class QtStream:
    """Reads a QMainWindow state the way Qt's restoreState does (QDataStream, big-endian)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]

    def sequence(self) -> dict:
        marker, orientation, count = self.take(">BBi")
        assert marker == 0xFC and orientation in (1, 2)
        items = []
        for _ in range(count):
            kind = self.take(">B")
            if kind == 0xFB:
                name = self.data[self.at + 4 : self.at + 4 + self.take(">I")].decode("utf-16-be")
                self.at += len(name) * 2
                visible = self.take(">B")
                pos, size, _, _ = self.take(">iiii")
                items.append({"name": name, "visible": visible == 1, "pos": pos, "size": size})
            else:
                assert kind == 0xFC
                pos, size, _, _ = self.take(">iiii")
                items.append({"pos": pos, "size": size, **self.sequence()})
        return {"orientation": orientation, "items": items}


def read_window_state(hex_state: str) -> dict:
    stream = QtStream(bytes.fromhex(hex_state))
    assert stream.take(">ii") == (0xFF, 0)  # QMainWindow::restoreState's version marker, version 0
    assert stream.take(">B") == 0xFD
    docks = {}
    for _ in range(stream.take(">i")):
        area, width, height = stream.take(">iii")
        docks[area] = {"width": width, "height": height, **stream.sequence()}
    central = stream.take(">ii")
    assert stream.take(">iiii") == (4, 4, 8, 8) and stream.at == len(stream.data)
    return {"docks": docks, "central": central}


def test_rviz_window_gives_the_focus_images_the_room():
    topics = [f"/{name}/image_raw" for name in NUSCENES]
    layout = yaml.safe_load(rviz_config(topics, "raw"))
    geometry = layout["Window Geometry"]
    state = read_window_state(geometry["QMainWindow State"])
    left, right = state["docks"][0], state["docks"][1]
    assert state["central"][0] <= 200 < left["width"]  # the 3D view is a narrow strip
    assert left["width"] + right["width"] + state["central"][0] <= geometry["Width"]
    rows = left["items"]
    assert [[cell["name"] for cell in row["items"]] for row in rows] == [
        [f"Focus {n}" for n in NUSCENES[:3]],
        [f"Focus {n}" for n in NUSCENES[3:]],
        [f"Camera {n}" for n in NUSCENES],
    ]
    assert rows[0]["size"] == rows[1]["size"] == pytest.approx(2 * rows[2]["size"], abs=2)  # twice as tall
    assert all(cell["visible"] for row in rows for cell in row["items"])
    assert [d["name"] for d in right["items"]] == ["Displays"]
    names = {d["Name"] for d in layout["Visualization Manager"]["Displays"]}
    assert names == {cell["name"] for row in rows for cell in row["items"]}

    single = read_window_state(
        yaml.safe_load(rviz_config(["/camera/image_raw"], "raw"))["Window Geometry"]["QMainWindow State"]
    )
    focus, camera = single["docks"][0]["items"]
    assert focus["name"] == "Focus image and answer" and focus["size"] > 2 * camera["size"]
