"""``spotvlm import-drivelm`` on the real DriveLM-nuScenes sample: the bag read back with rosbags and mcap."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from drivelm_support import camera_stamps, load, sample_dir, split_scene, write_json
from mcap.reader import make_reader
from rosbags.rosbag2 import Reader

from spotvlm_ros.cli import main
from spotvlm_ros.core.annotations import load_annotations
from spotvlm_ros.datasets.drivelm import CAMERAS, GROUPS, group_counts
from spotvlm_ros.runtime.import_drivelm import camera_topic
from spotvlm_ros.runtime.typestore import spotvlm_typestore


@pytest.fixture(scope="module")
def sample_bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("drivelm") / "bag"
    sample = sample_dir()
    assert (
        main(
            ["import-drivelm", str(sample / "train_sample.json"), "--images", str(sample), "--out", str(out)]
        )
        == 0
    )
    return out


def _messages(bag: Path) -> dict[str, list[tuple[int, object]]]:
    store = spotvlm_typestore()
    out: dict[str, list[tuple[int, object]]] = {}
    with Reader(bag) as reader:
        for conn, log_ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((log_ns, store.deserialize_cdr(raw, conn.msgtype)))
    return out


def test_rosbags_reads_six_cameras_of_five_frames_with_file_stamps(sample_bag: Path) -> None:
    data = load()
    with Reader(sample_bag) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == {
            camera_topic(c): "sensor_msgs/msg/CompressedImage" for c in CAMERAS
        }
    assert [p.suffix for p in sample_bag.glob("*.mcap")] == [".mcap"]
    messages = _messages(sample_bag)
    for camera in CAMERAS:
        got = messages[camera_topic(camera)]
        stamps = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for _, m in got]
        assert stamps == camera_stamps(data, camera)
        assert [log for log, _ in got] == stamps  # log time = capture time
        assert {m.header.frame_id for _, m in got} == {camera}
        assert {m.format for _, m in got} == {"jpeg"}


def test_jpeg_bytes_are_copied_not_reencoded(sample_bag: Path) -> None:
    files = {p.name.split("__")[-1]: p for p in (sample_dir() / "nuscenes" / "samples").rglob("*.jpg")}
    messages = _messages(sample_bag)
    compared = 0
    for camera in CAMERAS:
        for _, msg in messages[camera_topic(camera)]:
            stamp_us = (msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec) // 1000
            original = files[f"{stamp_us}.jpg"]
            assert camera in original.name
            assert bytes(msg.data) == original.read_bytes()
            compared += 1
    assert compared == 30


def test_mcap_reader_sees_the_same_channels_and_messages(sample_bag: Path) -> None:
    (mcap_file,) = sample_bag.glob("*.mcap")
    with mcap_file.open("rb") as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        channels = {c.id: c for c in summary.channels.values()}
        schemas = {s.id: s.name for s in summary.schemas.values()}
        assert sorted(c.topic for c in channels.values()) == sorted(camera_topic(c) for c in CAMERAS)
        assert {schemas[c.schema_id] for c in channels.values()} == {"sensor_msgs/msg/CompressedImage"}
        assert {c.message_encoding for c in channels.values()} == {"cdr"}
        counts = Counter(channels[m.channel_id].topic for _, _, m in reader.iter_messages())
    assert counts == {camera_topic(c): 5 for c in CAMERAS}


def test_ground_truth_per_key_frame(sample_bag: Path) -> None:
    data = load()
    truth = load_annotations(sample_bag)
    assert sorted(truth.items) == camera_stamps(data, "CAM_FRONT")
    per_group = Counter(q.group for a in truth.items.values() for q in a.vqa)
    assert dict(per_group) == group_counts(data)
    assert sum(per_group.values()) == 479
    ((scene_token, scene),) = data.items()
    for annotation in truth.items.values():
        assert annotation.sequence == scene_token
        assert annotation.caption == scene["scene_description"]
        assert dict(annotation.cameras)["CAM_FRONT"] == annotation.stamp_ns
        assert set(dict(annotation.cameras)) == set(CAMERAS)
        assert {q.group for q in annotation.vqa} == set(GROUPS)


def test_every_resolved_box_lies_inside_its_image(sample_bag: Path) -> None:
    messages = _messages(sample_bag)
    sizes = {}
    for camera in CAMERAS:
        for _, msg in messages[camera_topic(camera)]:
            image = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            sizes[(camera, stamp)] = (image.shape[1], image.shape[0])
    truth = load_annotations(sample_bag)
    boxes = 0
    for annotation in truth.items.values():
        stamps = dict(annotation.cameras)
        refs = [o for q in annotation.vqa for o in q.objects]
        assert refs, "the sample's answers refer to objects"
        for camera, box in [(o.camera, o.box) for o in refs] + [
            (g.camera, g.box) for g in annotation.grounding
        ]:
            width, height = sizes[(camera, stamps[camera])]
            assert box is not None and 0 <= box.x1 < box.x2 <= width and 0 <= box.y1 < box.y2 <= height
            boxes += 1
        for ref in refs:  # the tag's centre lies in the box it resolves to
            assert ref.box.x1 <= ref.center[0] <= ref.box.x2 and ref.box.y1 <= ref.center[1] <= ref.box.y2
    assert boxes > 100


def test_object_references_and_grounding_of_a_key_frame(sample_bag: Path) -> None:
    data = load()
    (scene,) = data.values()
    sample, entry = next(iter(scene["key_frames"].items()))
    stamp = int(Path(entry["image_paths"]["CAM_FRONT"]).stem.split("__")[-1]) * 1000
    annotation = load_annotations(sample_bag).items[stamp]
    infos = entry["key_object_infos"]
    grounding = {g.id: g for g in annotation.grounding}
    assert len(grounding) == len(infos)
    for tag, info in infos.items():
        object_id = tag[1:].split(",")[0]
        item = grounding[f"{sample}-{object_id}"]
        assert item.query == info["Visual_description"] and item.label == info["Category"]
        assert (
            list(item.box.as_tuple()) == pytest.approx(info["2d_bbox"]) and item.camera == tag.split(",")[1]
        )
    first = annotation.vqa[[q.id for q in annotation.vqa].index("prediction-0")]
    assert (
        first.question == entry["QA"]["prediction"][0]["Q"]
        and first.answer == entry["QA"]["prediction"][0]["A"]
    )
    planning = [q for q in annotation.vqa if q.group == "planning" and q.objects]
    assert planning and all(o.tag in infos for q in planning for o in q.objects)
    assert all("match" in q.metrics and "language" in q.metrics for q in planning)


def test_evaluation_form_keeps_options_and_tags(tmp_path: Path) -> None:
    sample = sample_dir()
    out = tmp_path / "eval_bag"
    args = ["import-drivelm", str(sample / "test_eval.json"), "--images", str(sample), "--out", str(out)]
    assert main([*args, "--cameras", "CAM_FRONT", "--storage", "sqlite3"]) == 0
    with Reader(out) as reader:
        assert [c.topic for c in reader.connections] == [camera_topic("CAM_FRONT")]
    assert len(list(out.glob("*.db3"))) == 1
    data = load("test_eval.json")
    truth = load_annotations(out)
    items = [q for a in truth.items.values() for q in a.vqa]
    assert Counter(q.group for q in items) == group_counts(data)
    choice = [q for q in items if q.options]
    assert len(choice) == 10 and all(len(q.options) == 4 and q.answer in "ABCD" for q in choice)
    assert all(q.metrics == ("accuracy",) for q in choice)
    assert {q.metrics for q in items if q.group == "planning"} == {("gpt",)}
    tagged = [o for q in items for o in q.objects]
    assert tagged and all(o.box is None for o in tagged)  # the evaluation form has no key_object_infos


def test_camera_subset_and_summary_line(tmp_path: Path, capsys) -> None:
    sample = sample_dir()
    out = tmp_path / "two"
    args = ["import-drivelm", str(sample / "train_sample.json"), "--images", str(sample), "--out", str(out)]
    assert main([*args, "--cameras", "CAM_BACK,CAM_FRONT"]) == 0
    printed = capsys.readouterr().out
    assert "5 key frames, 10 images" in printed and "perception 194" in printed
    messages = _messages(out)
    assert list(messages) == [camera_topic("CAM_FRONT"), camera_topic("CAM_BACK")]
    truth = load_annotations(out)
    assert all(set(dict(a.cameras)) == {"CAM_FRONT", "CAM_BACK"} for a in truth.items.values())
    lines = (out / "annotations.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["sequence"] for line in lines)


def test_scene_subset(tmp_path: Path, capsys) -> None:
    data = split_scene(load(), 3)
    qa = write_json(tmp_path / "two.json", data)
    second = list(data)[1]
    args = ["import-drivelm", str(qa), "--images", str(sample_dir()), "--out"]
    assert main([*args, str(tmp_path / "b"), "--scenes", second]) == 0
    truth = load_annotations(tmp_path / "b")
    assert len(truth) == 2 and {a.sequence for a in truth.items.values()} == {second}
    assert main([*args, str(tmp_path / "c"), "--scenes", "nope"]) == 2
    assert "no scene(s) ['nope']" in capsys.readouterr().err and not (tmp_path / "c").exists()
