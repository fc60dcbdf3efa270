"""Replay of real rosbag2 files: bit-identical simulated runs, readable output bags, corrupt frames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.rosbag2 import Reader, Writer

from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.messages import edge_answer_from_msg
from spotvlm_ros.models.factory import create_backend
from spotvlm_ros.runtime.bag_writer import ANSWER_TOPIC, CONTEXT_TOPIC, qos_profile
from spotvlm_ros.runtime.image_codec import rgb_to_image_msg
from spotvlm_ros.runtime.make_bag import make_synthetic_bag
from spotvlm_ros.runtime.replay import replay_bag
from spotvlm_ros.runtime.typestore import build_message, message_to_dict, spotvlm_typestore

ZERO = {"edge.backend": "zero", "cloud.backend": "zero"}
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bags") / "clip"
    make_synthetic_bag(path, frames=24, width=160, height=120, seed=3)
    return path


def _messages(bag_dir: Path, topic: str) -> list[tuple[int, bytes]]:
    with Reader(bag_dir) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [(t, bytes(raw)) for _, t, raw in reader.messages(connections=connections)]


def test_simulated_replay_with_tiny_models_is_bit_identical(bag, tmp_path):
    config = load_config(
        None,
        {
            "edge.step_time_s": 0.15,
            "cloud.step_time_s": 0.2,
            "latency.profile": "lognormal:mean=0.6,sigma=0.8",
            "edge.max_new_tokens": 4,
            "cloud.max_new_tokens": 6,
        },
    )
    edge, cloud = create_backend(config.edge, "edge"), create_backend(config.cloud, "cloud")
    try:
        runs = [
            replay_bag(
                bag, config, out_dir=tmp_path / name, max_frames=12, edge_backend=edge, cloud_backend=cloud
            )
            for name in ("a", "b")
        ]
    finally:
        edge.close()
        cloud.close()
    first, second = runs
    assert first.counts["answered"] >= 7 and first.counts["skipped_latest_wins"] > 0
    assert first.cloud["accepted"] > 0
    assert first.to_json(include_wall_time=False) == {
        **second.to_json(include_wall_time=False),
        "outputs": first.outputs,
    }
    assert (tmp_path / "a" / "records.jsonl").read_bytes() == (tmp_path / "b" / "records.jsonl").read_bytes()
    for topic in (ANSWER_TOPIC, CONTEXT_TOPIC):
        assert _messages(tmp_path / "a" / "bag", topic) == _messages(tmp_path / "b" / "bag", topic)


def test_output_bag_reads_back_with_rosbags_and_mcap_ros2(bag, tmp_path):
    config = load_config(None, {**ZERO, "edge.step_time_s": 0.1, "latency.profile": "constant:delay=0.3"})
    summary = replay_bag(bag, config, out_dir=tmp_path)
    answered = summary.counts["answered"]
    store = spotvlm_typestore()
    with Reader(tmp_path / "bag") as reader:
        topics = {c.topic: c.msgcount for c in reader.connections}
        answers = [
            edge_answer_from_msg(message_to_dict(store.deserialize_cdr(raw, conn.msgtype)))
            for conn, _, raw in reader.messages(
                connections=[c for c in reader.connections if c.topic == ANSWER_TOPIC]
            )
        ]
    assert topics["/camera/image_raw"] == 24 and topics[ANSWER_TOPIC] == answered == len(answers)
    assert topics[CONTEXT_TOPIC] == summary.cloud["results"] > 0
    assert [a.stamp_ns for a in answers] == sorted(a.stamp_ns for a in answers)
    assert any(a.context_id for a in answers)

    (mcap,) = (tmp_path / "bag").glob("*.mcap")
    with mcap.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        decoded = [msg for _, _, _, msg in reader.iter_decoded_messages(topics=[ANSWER_TOPIC])]
    assert len(decoded) == answered
    assert [m.text for m in decoded] == [a.text for a in answers]
    assert [m.context_id for m in decoded] == [a.context_id for a in answers]

    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "answer" for r in records) == answered
    assert json.loads((tmp_path / "summary.json").read_text())["counts"]["answered"] == answered
    again = replay_bag(bag, config, out_dir=tmp_path)  # a second run replaces the first run's bag
    assert again.counts == summary.counts and len(list((tmp_path / "bag").glob("*.mcap"))) == 1


def _write_bag_with_corrupt_frames(path: Path) -> None:
    store = spotvlm_typestore()
    msgtype = "sensor_msgs/msg/Image"
    rng = np.random.default_rng(1)
    with Writer(path, version=8) as writer:
        conn = writer.add_connection(
            "/camera/image_raw", msgtype, typestore=store, offered_qos_profiles=[qos_profile()]
        )
        for i in range(8):
            stamp = 1_700_000_000_000_000_000 + i * 100_000_000
            msg = rgb_to_image_msg(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), stamp, "camera")
            if i == 3:
                msg["data"] = msg["data"][:100]  # truncated pixel data
            raw = store.serialize_cdr(build_message(store, msgtype, msg), msgtype)
            writer.write(conn, stamp, b"\x00\x01garbage" if i == 5 else raw)


def test_corrupt_frames_are_skipped_and_counted(tmp_path):
    source = tmp_path / "broken"
    _write_bag_with_corrupt_frames(source)
    config = load_config(None, {**ZERO, "edge.step_time_s": 0.1, "latency.profile": "constant:delay=0.2"})
    summary = replay_bag(source, config, out_dir=tmp_path / "out")
    counts = summary.counts
    assert counts["messages"] == 8 and counts["frames"] == 6 and counts["unreadable"] == 2
    assert sum(counts["unreadable_by_reason"].values()) == 2
    assert counts["answered"] + counts["skipped_latest_wins"] == 6
    records = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "unreadable" for r in records) == 2


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spotvlm_ros.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_replay_command_writes_outputs_and_exit_codes(bag, tmp_path):
    zero = ["--set", "edge.backend=zero", "--set", "cloud.backend=zero"]
    ok = _cli("replay", str(bag), "--out", str(tmp_path / "out"), "--max-frames", "10", *zero)
    assert ok.returncode == 0, ok.stderr
    assert "10 messages" in ok.stdout and (tmp_path / "out" / "summary.json").is_file()
    missing = _cli("replay", str(tmp_path / "nope"), "--no-output", *zero)
    assert missing.returncode == 1 and "nope" in missing.stderr
    bad = _cli("replay", str(bag), "--no-output", "--set", "context.max_context_age_s=-1")
    assert bad.returncode == 2 and "context.max_context_age_s" in bad.stderr
