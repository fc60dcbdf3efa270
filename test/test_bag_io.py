"""Real rosbag2 bags in and out: camera bags, corrupt frames skipped and counted, the output bag.

Every bag is written with rosbags into a temporary directory and read back with rosbags; the output
bag is also decoded message by message with mcap-ros2-support (the library Foxglove's tools use).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from spotvlm_ros.core.annotations import FrameAnnotation, VqaItem
from spotvlm_ros.core.messages import edge_answer_from_msg, header, lvlm_result_from_msg
from spotvlm_ros.core.types import CONTEXT_USED, Box, EdgeAnswer, Frame, LvlmResult, Region
from spotvlm_ros.runtime.bag_reader import BagError, open_camera_bag
from spotvlm_ros.runtime.bag_writer import (
    ANSWER_TOPIC,
    CONTEXT_TOPIC,
    DETECTIONS_TOPIC,
    FOCUS_IMAGE_TOPIC,
    MARKERS_TOPIC,
    OutputBag,
    qos_profile,
    write_camera_bag,
)
from spotvlm_ros.runtime.image_codec import encode_jpeg, rgb_to_compressed_msg, rgb_to_image_msg
from spotvlm_ros.runtime.overlay import ANSWER_COLOR, FOCUS_COLOR, annotate, answer_markers
from spotvlm_ros.runtime.typestore import build_message, message_to_dict, spotvlm_typestore

T0 = 1_700_000_000_000_000_000
PERIOD = 100_000_000
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"


def _image(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 4 + i * 10) % 256, y * 5, np.full_like(x, 40 + i)], -1).astype(np.uint8)


def _frames(n: int, width: int = 64, height: int = 48):
    for i in range(n):
        frame = Frame(T0 + i * PERIOD, _image(i, width, height), frame_id="cam_optical", seq=i)
        note = FrameAnnotation(frame.stamp_ns, vqa=(VqaItem("light", "Light?", "red" if i < 3 else "green"),))
        yield frame, note


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_camera_bag_roundtrip(tmp_path, storage, transport):
    written = write_camera_bag(tmp_path / "bag", _frames(6), storage=storage, transport=transport)
    assert written.frames == 6 and written.annotated == 6
    with open_camera_bag(tmp_path / "bag") as bag:
        assert bag.topic == written.topic
        assert bag.msgtype == (COMPRESSED if transport == "compressed" else IMAGE)
        assert bag.message_count == 6 and bag.storage == storage
        items = list(bag)
        assert bag.stats.frames == 6 and bag.stats.skipped_total == 0
        assert bag.annotations is not None and len(bag.annotations) == 6
        assert bag.annotations.get(items[4].stamp_ns).answer("light") == "green"
    assert [it.stamp_ns for it in items] == [T0 + i * PERIOD for i in range(6)]
    for i, item in enumerate(items):
        assert item.ok and item.frame.frame_id == "cam_optical" and item.frame.seq == i
        error = np.abs(item.frame.image.astype(int) - _image(i).astype(int)).mean()
        assert error == 0 if transport == "raw" else error < 4


def _write_messages(path, topics, messages, storage=StoragePlugin.MCAP):
    """Write (topic, log_ns, CDR bytes) items; ``topics`` maps topic -> msgtype."""
    store = spotvlm_typestore()
    with Writer(path, version=8, storage_plugin=storage) as writer:
        conns = {t: writer.add_connection(t, m, typestore=store) for t, m in topics.items()}
        for topic, log_ns, raw in messages:
            writer.write(conns[topic], log_ns, raw)


def _cdr(msgtype: str, msg: dict) -> bytes:
    store = spotvlm_typestore()
    return bytes(store.serialize_cdr(build_message(store, msgtype, msg), msgtype))


def test_topic_selection_and_clear_errors(tmp_path):
    img = _cdr(IMAGE, rgb_to_image_msg(_image(0), T0, "cam"))
    jpg = _cdr(COMPRESSED, rgb_to_compressed_msg(_image(0), T0, "cam"))
    topics = {"/left/image": IMAGE, "/right/image/compressed": COMPRESSED, "/tf_like": "std_msgs/msg/String"}
    _write_messages(
        tmp_path / "two",
        topics,
        [
            ("/left/image", T0, img),
            ("/right/image/compressed", T0, jpg),
            ("/tf_like", T0, _cdr(topics["/tf_like"], {})),
        ],
    )
    with pytest.raises(BagError, match="several image topics.*/left/image.*/right/image/compressed"):
        open_camera_bag(tmp_path / "two")
    with open_camera_bag(tmp_path / "two", topic="/right/image/compressed") as bag:
        assert bag.msgtype == COMPRESSED and [it.ok for it in bag] == [True]
    with pytest.raises(BagError, match="no image topic '/tf_like'"):
        open_camera_bag(tmp_path / "two", topic="/tf_like")
    _write_messages(tmp_path / "none", {"/tf_like": topics["/tf_like"]}, [])
    with pytest.raises(BagError, match="no sensor_msgs/Image"):
        open_camera_bag(tmp_path / "none")
    with pytest.raises(BagError, match="bag not found"):
        open_camera_bag(tmp_path / "missing")
    (tmp_path / "notabag").mkdir()
    with pytest.raises(BagError, match="cannot open bag"):
        open_camera_bag(tmp_path / "notabag")


def test_bad_ground_truth_is_a_clear_error(tmp_path):
    write_camera_bag(tmp_path / "bag", ((f, None) for f, _ in _frames(2)))
    with open_camera_bag(tmp_path / "bag") as bag:
        assert bag.annotations is None and bag.summary()["annotations"] == ""
    (tmp_path / "bag" / "annotations.jsonl").write_text('{"stamp_ns": 1}\n{"stamp_ns": -5}\n')
    with open_camera_bag(tmp_path / "bag") as bag:
        with pytest.raises(BagError, match="annotations.jsonl:2"):
            _ = bag.annotations
        assert len(list(bag)) == 2  # frames stay readable


def _raw_msg(i: int, **override) -> bytes:
    msg = rgb_to_image_msg(_image(i), T0 + i * PERIOD, "cam")
    msg.update(override)
    return _cdr(IMAGE, msg)


def test_corrupt_raw_frames_are_skipped_and_counted(tmp_path, log_records):
    hdr = header(T0, "cam")
    bad = [
        _raw_msg(1, encoding="weird16"),
        _raw_msg(2, step=100),
        _raw_msg(3, height=49),
        _cdr(IMAGE, {"header": hdr, "height": 0, "width": 0, "encoding": "rgb8", "step": 0, "data": b""}),
        _cdr(
            IMAGE,
            {"header": hdr, "height": 8193, "width": 8192, "encoding": "rgb8", "step": 24576, "data": b"x"},
        ),
        b"\x00\x01\x00\x00garbage that is not CDR",
        b"",
    ]
    good_ids = [0, 4, 5, 6]
    messages = []
    for n, raw in enumerate(bad):
        messages.append(("/cam", T0 + n * PERIOD + 1, raw))
    for i in good_ids:
        messages.append(("/cam", T0 + i * PERIOD + 2, _raw_msg(i)))
    messages.sort(key=lambda m: m[1])
    _write_messages(tmp_path / "bag", {"/cam": IMAGE}, messages)
    with (
        log_records.at_level(logging.WARNING, logger="spotvlm.bag"),
        open_camera_bag(tmp_path / "bag") as bag,
    ):
        items = list(bag)
        stats = bag.stats
    assert len(items) == len(bad) + len(good_ids)
    good = [it for it in items if it.ok]
    assert [it.stamp_ns for it in good] == [T0 + i * PERIOD for i in good_ids]
    for item, i in zip(good, good_ids, strict=True):
        assert np.array_equal(item.frame.image, _image(i))
    assert dict(stats.skipped) == {
        "unknown_encoding": 1,
        "bad_step": 1,
        "size_mismatch": 1,
        "zero_size": 1,
        "too_large": 1,
        "deserialize_error": 2,
    }
    assert stats.frames == 4 and stats.messages == 11 and stats.skipped_total == 7
    assert all(it.error for it in items if not it.ok)
    assert "unknown_encoding" in log_records.text and "too_large" in log_records.text
    assert bag.summary()["skipped"] == 7


def test_corrupt_compressed_frames_and_stamp_problems(tmp_path):
    def jpeg_msg(i, stamp, data=None):
        msg = rgb_to_compressed_msg(_image(i), stamp, "cam")
        if data is not None:
            msg["data"] = data
        return _cdr(COMPRESSED, msg)

    full = encode_jpeg(_image(1))
    messages = [
        ("/c", T0, jpeg_msg(0, T0)),
        ("/c", T0 + 1, jpeg_msg(1, T0 + 1, full[: len(full) // 2])),  # truncated
        ("/c", T0 + 2, jpeg_msg(2, T0 + 2, b"\xff\xd8 definitely not a jpeg \xff\xd9")),
        ("/c", T0 + 3 * PERIOD, jpeg_msg(3, 0)),  # missing stamp -> bag time
        ("/c", T0 + 4 * PERIOD, jpeg_msg(4, T0 + 2 * PERIOD)),  # stamp before the previous frame
        ("/c", T0 + 5 * PERIOD, jpeg_msg(5, T0 + 5 * PERIOD)),
    ]
    _write_messages(tmp_path / "bag", {"/c": COMPRESSED}, messages, storage=StoragePlugin.SQLITE3)
    with open_camera_bag(tmp_path / "bag") as bag:
        items = list(bag)
    assert [it.ok for it in items] == [True, False, False, True, True, True]
    assert dict(bag.stats.skipped) == {"corrupt_compressed": 2}
    assert items[3].stamp_ns == T0 + 3 * PERIOD and bag.stats.missing_stamp == 1
    assert bag.stats.non_monotonic == 1 and items[4].stamp_ns == T0 + 2 * PERIOD


def test_unreadable_mcap_chunk_is_counted_and_reading_goes_on(tmp_path):
    frames = [(f, None) for f, _ in _frames(20, width=320, height=240)]  # 230 kB each: ~5 per 1 MB chunk
    write_camera_bag(tmp_path / "bag", frames, storage="mcap")
    mcap = next((tmp_path / "bag").glob("*.mcap"))
    with Reader(mcap) as reader:
        chunks = sorted(reader.storage.chunks, key=lambda c: c.chunk_start_offset)
    assert len(chunks) >= 3
    victim = chunks[1]
    lost = {
        t
        for t in range(T0, T0 + 20 * PERIOD, PERIOD)
        if victim.message_start_time <= t <= victim.message_end_time
    }
    data = bytearray(mcap.read_bytes())
    first_record = (
        victim.chunk_start_offset + 1 + 8 + 8 + 8 + 8 + 4 + 4 + 8
    )  # op, len, times, size, crc, "", len
    assert data[first_record] == 0x05  # a message record
    data[first_record + 1 : first_record + 9] = (2**40).to_bytes(8, "little")  # absurd record length
    mcap.write_bytes(bytes(data))
    with open_camera_bag(tmp_path / "bag") as bag:
        items = list(bag)
    assert bag.stats.unreadable_chunks == 1
    expected = [T0 + i * PERIOD for i in range(20) if T0 + i * PERIOD not in lost]
    assert [it.stamp_ns for it in items] == expected and all(it.ok for it in items)


def _answer(i: int, with_context: bool) -> EdgeAnswer:
    focus = (Region(Box(10 + i, 10, 30 + i, 30), "traffic light", 0.8),)
    return EdgeAnswer(
        stamp_ns=T0 + i * PERIOD,
        task="grounding" if i == 2 else "vqa",
        text=f"answer {i} red light ahead",
        frame_id="cam",
        regions=(Region(Box(5, 5, 20, 20), "car", 0.9),) if i == 2 else (),
        context_id="bridge-1" if with_context else "",
        context_age_s=0.4 if with_context else -1.0,
        context_status=CONTEXT_USED if with_context else "none",
        focus_regions=focus if with_context else (),
        focus_mode="crop",
        inference_s=0.05,
        prompt_tokens=120,
        image_tokens=64,
    )


def _context() -> LvlmResult:
    return LvlmResult(
        request_id="bridge-1",
        stamp_ns=T0,
        task="vqa",
        prompt="Light?",
        text="The light is red.",
        regions=(Region(Box(10, 10, 30, 30), "traffic light", 0.9),),
        image_size=(64, 48),
        summary="red light",
        model="big",
        round_trip_s=0.35,
        frame_id="cam",
    )


def test_output_bag_reads_back_with_rosbags_and_mcap_ros2(tmp_path):
    write_camera_bag(tmp_path / "in", _frames(4), transport="compressed")
    out_path = tmp_path / "out"
    with open_camera_bag(tmp_path / "in") as bag:
        inputs = list(bag)
        with OutputBag(
            out_path, input_topic=bag.topic, input_msgtype=bag.msgtype, focus_image_every=2
        ) as out:
            for i, item in enumerate(inputs):
                assert out.write_frame(item)
                if i == 1:
                    out.write_context(_context(), receive_ns=T0 + 350_000_000)
                answer = _answer(i, with_context=i >= 1)
                out.write_answer(answer, log_ns=item.stamp_ns + 50_000_000, frame=item.frame)
                out.write_record({"stamp_ns": item.stamp_ns, "text": answer.text, "age": np.float32(0.5)})
    assert out.counts[ANSWER_TOPIC] == 4 and out.counts[FOCUS_IMAGE_TOPIC] == 2
    metadata = yaml.safe_load((out_path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["version"] == 8 and isinstance(metadata["custom_data"], dict)  # a map for rosbag2 C++
    store = spotvlm_typestore()
    with Reader(out_path) as reader:
        assert reader.message_count == sum(out.counts.values())
        qos = {c.topic: c.ext.offered_qos_profiles[0].durability for c in reader.connections}
        assert qos[CONTEXT_TOPIC] == QosDurability.TRANSIENT_LOCAL
        assert qos[ANSWER_TOPIC] == QosDurability.VOLATILE
        by_topic: dict[str, list] = {}
        for conn, log_ns, raw in reader.messages():
            by_topic.setdefault(conn.topic, []).append(
                (log_ns, raw, store.deserialize_cdr(raw, conn.msgtype))
            )
    in_topic = "/camera/image_raw/compressed"
    assert [bytes(r) for _, r, _ in by_topic[in_topic]] == [bytes(it.raw) for it in inputs]  # copied as is
    answers = [edge_answer_from_msg(message_to_dict(m)) for _, _, m in by_topic[ANSWER_TOPIC]]
    assert answers[2] == _answer(2, True)
    assert [t for t, _, _ in by_topic[ANSWER_TOPIC]] == [it.stamp_ns + 50_000_000 for it in inputs]
    ((ctx_log, _, ctx),) = by_topic[CONTEXT_TOPIC]
    assert ctx_log == T0 + 350_000_000 and lvlm_result_from_msg(message_to_dict(ctx)) == _context()
    detections = [m for _, _, m in by_topic[DETECTIONS_TOPIC]]
    assert [len(d.detections) for d in detections] == [0, 1, 1, 1]
    assert detections[2].detections[0].results[0].hypothesis.class_id == "car"  # the answer's own regions
    focus = [m for _, _, m in by_topic[FOCUS_IMAGE_TOPIC]]
    assert [(f.encoding, f.width, f.height) for f in focus] == [("rgb8", 64, 48)] * 2
    assert {m.ns for _, _, m in by_topic[MARKERS_TOPIC]} == {"focus", "answer"}
    assert any(m.action == 1 for _, _, m in by_topic[MARKERS_TOPIC])  # the answer box of frame 2 removed
    records = [json.loads(line) for line in (out_path / "records.jsonl").read_text().splitlines()]
    assert [r["stamp_ns"] for r in records] == [it.stamp_ns for it in inputs] and records[0]["age"] == 0.5

    mcap = next(out_path.glob("*.mcap"))
    decoded: dict[str, int] = {}
    with mcap.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for _, channel, _, ros_msg in reader.iter_decoded_messages():
            decoded[channel.topic] = decoded.get(channel.topic, 0) + 1
            if channel.topic == CONTEXT_TOPIC:
                assert ros_msg.text == "The light is red."
                assert ros_msg.regions.detections[0].bbox.size_x == 20.0
                assert "durability: 1" in channel.metadata["offered_qos_profiles"]  # TRANSIENT_LOCAL
            if channel.topic == ANSWER_TOPIC:
                assert ros_msg.text.startswith("answer")
    assert decoded == dict(out.counts)


def test_output_bag_is_kept_when_the_run_fails(tmp_path):
    with pytest.raises(RuntimeError, match="model crashed"), OutputBag(tmp_path / "out") as out:
        out.write_frame(Frame(T0, _image(0), "cam"))
        out.write_answer(_answer(0, False), log_ns=T0 + 1)
        raise RuntimeError("model crashed")
    with Reader(tmp_path / "out") as reader:
        assert reader.message_count == 3  # image, answer, detections
    with pytest.raises(FileExistsError, match="exists"):
        OutputBag(tmp_path / "out")


def test_output_sqlite3_and_raw_frames(tmp_path):
    with OutputBag(tmp_path / "out", storage="sqlite3", focus_image_max_side=32) as out:
        out.write_frame(Frame(T0, _image(0), "cam"))
        out.write_focus_image(T0, _image(0), "cam")
    with open_camera_bag(tmp_path / "out", topic="/camera/image_raw") as bag:
        (item,) = list(bag)
        assert np.array_equal(item.frame.image, _image(0))
    with open_camera_bag(tmp_path / "out", topic=FOCUS_IMAGE_TOPIC) as bag:
        assert next(iter(bag)).frame.image.shape == (24, 32, 3)


def test_annotate_draws_on_a_copy_and_markers_build():
    image = np.zeros((480, 640, 3), np.uint8)
    answer = replace(
        _answer(2, with_context=True),
        regions=(Region(Box(100, 200, 200, 300), "car", 0.9),),
        focus_regions=(Region(Box(400, 200, 500, 300), "traffic light", 0.8),),
    )
    out = annotate(image, answer)
    assert image.max() == 0 and out.shape == image.shape
    assert tuple(out[250, 100]) == ANSWER_COLOR and tuple(out[250, 200]) == ANSWER_COLOR
    assert tuple(out[250, 400]) == FOCUS_COLOR and tuple(out[250, 500]) == FOCUS_COLOR
    assert not out[240:260, 120:180].any()  # inside the boxes stays untouched
    assert out[:30].any() and out[-20:].any()  # answer banner and context line
    assert annotate(image, None, "waiting")[-20:].any()
    store = spotvlm_typestore()
    markers = answer_markers(answer, lifetime_s=0.5)
    assert len(markers["focus"]) == 1 and len(markers["answer"]) == 1
    built = build_message(store, "visualization_msgs/msg/ImageMarker", markers["focus"][0])
    assert built.type == 3 and built.lifetime.nanosec == 500_000_000
    assert [(p.x, p.y) for p in built.points] == [(400, 200), (500, 200), (500, 300), (400, 300)]


def test_qos_profile_shapes():
    latched = qos_profile(latched=True)
    assert latched.depth == 1 and latched.durability == QosDurability.TRANSIENT_LOCAL
    assert qos_profile().depth == 10
