"""Bad inputs through the whole replay loop: a counted skip or a clear error, never a crash or a wrong answer.

The reader's own handling of each defect is tested in test_bag_io.py and test_image_codec.py; here the
defects go through the SpotVLM loop on both clocks, and the run's outputs (summary, JSONL, output bag)
must account for every message: good frames answered (or skipped by latest-wins), bad ones recorded as
unreadable with their reason, and no answer ever carries a frame that was not decoded.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from reliability_support import T0, frame_outcomes, read_records, topic_counts, write_bag
from rosbags.rosbag2 import Reader, Writer

from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.messages import header
from spotvlm_ros.core.types import NS_PER_S
from spotvlm_ros.runtime.bag_writer import ANSWER_TOPIC, qos_profile
from spotvlm_ros.runtime.image_codec import encode_jpeg
from spotvlm_ros.runtime.replay import replay_bag
from spotvlm_ros.runtime.typestore import build_message, spotvlm_typestore

IMAGE, COMPRESSED = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
PERIOD = NS_PER_S // 20
ZERO = {"edge.backend": "zero", "cloud.backend": "zero", "latency.profile": "constant:delay=0.1"}
STORE = spotvlm_typestore()


def picture(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 4 + i * 9) % 256, (y * 5) % 256, np.full_like(x, 30 + i)], -1).astype(np.uint8)


def raw_image(stamp_ns: int, image: np.ndarray | None = None, **fields) -> dict:
    image = picture(0) if image is None else image
    height, width = image.shape[:2]
    msg = {
        "header": header(stamp_ns, "cam"),
        "height": height,
        "width": width,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": width * 3,
        "data": image.reshape(-1),
    }
    msg.update(fields)
    msg["data"] = np.frombuffer(bytes(msg["data"]), np.uint8)
    return msg


def compressed(stamp_ns: int, data: bytes, fmt: str = "jpeg") -> dict:
    return {"header": header(stamp_ns, "cam"), "format": fmt, "data": np.frombuffer(data, np.uint8)}


def write_messages(path, msgtype: str, messages: list[dict]) -> None:
    """One camera topic; log time = position in the list (header stamps may be anything)."""
    with Writer(path, version=8) as writer:
        conn = writer.add_connection("/cam", msgtype, typestore=STORE, offered_qos_profiles=[qos_profile()])
        for n, msg in enumerate(messages):
            writer.write(
                conn, T0 + n * PERIOD, STORE.serialize_cdr(build_message(STORE, msgtype, msg), msgtype)
            )


def replay(tmp_path, bag, clock: str, **overrides):
    config = load_config(None, {**ZERO, **overrides})
    out = tmp_path / f"out-{clock}"
    return replay_bag(bag, config, clock=clock, out_dir=out, rate=4.0), read_records(out), out


def check_accounted(summary, records, good: int, bad: dict[str, int]):
    """Every message in the outputs: good frames answered or skipped, bad ones unreadable by reason."""
    counts = summary.counts
    assert counts["frames"] == good and counts["unreadable_by_reason"] == bad
    assert counts["messages"] == good + sum(bad.values())
    assert counts["answered"] + counts["skipped_latest_wins"] == good
    assert len(frame_outcomes(records)) == good
    unreadable = [r["error"] for r in records if r["type"] == "unreadable"]
    assert sorted(unreadable) == sorted(reason for reason, n in bad.items() for _ in range(n))


@pytest.mark.parametrize("clock", ["simulated", "realtime"])
def test_bad_raw_images_and_stamps_are_counted_skips(tmp_path, clock):
    stamp = [T0 + i * PERIOD for i in range(14)]
    messages = [
        raw_image(stamp[0]),
        raw_image(stamp[1], picture(1)),
        raw_image(stamp[2], encoding="rgb9"),  # wrong encoding strings
        raw_image(stamp[3], encoding=""),
        raw_image(stamp[4], step=64 * 3 + 1),  # step / size mismatch
        raw_image(stamp[5], step=10),
        raw_image(stamp[6], width=0, height=0, step=0, data=b""),  # zero-size
        raw_image(stamp[7], width=8193, height=8192, step=8193 * 3, data=b"\x00" * 64),  # claims > 8k x 8k
        raw_image(stamp[8], picture(8)),
        raw_image(stamp[9], data=picture(9).reshape(-1)[:4000]),  # truncated buffer
        raw_image(stamp[10], picture(10)[:, :, ::-1].copy(), encoding="bgr8"),
        raw_image(stamp[4], picture(11)),  # stamp goes back in time
        raw_image(0, picture(12)),  # no stamp: the bag's log time is used
        raw_image(stamp[13], picture(13)),
    ]
    write_messages(tmp_path / "bag", IMAGE, messages)
    summary, records, out = replay(tmp_path, tmp_path / "bag", clock)
    bad = {"bad_step": 1, "size_mismatch": 2, "too_large": 1, "unknown_encoding": 2, "zero_size": 1}
    check_accounted(summary, records, good=7, bad=bad)
    assert summary.read["non_monotonic"] >= 1 and summary.read["missing_stamp"] == 1
    outcomes = frame_outcomes(records)
    assert sorted(outcomes) == sorted(
        {stamp[0], stamp[1], stamp[8], stamp[10], stamp[4], T0 + 12 * PERIOD, stamp[13]}
    )
    for record in outcomes.values():  # no negative context age however the stamps jump
        assert record.get("context_age_s", -1.0) == -1.0 or record["context_age_s"] >= 0
    assert topic_counts(out / "bag")["/cam"] == 7  # only decodable frames are copied


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose frame header is patched to claim ``width`` x ``height``."""
    data = bytearray(encode_jpeg(picture(0)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_bad_compressed_images_and_an_8k_frame(tmp_path):
    good = encode_jpeg(picture(0))
    ok, png = cv2.imencode(".png", picture(6))
    big = np.zeros((8192, 8192, 3), np.uint8)
    big[::64, :, 0], big[:, ::97, 1] = 255, 200
    big_jpeg = encode_jpeg(big, quality=50)
    del big
    messages = [
        compressed(T0, good),
        compressed(T0 + PERIOD, good[: len(good) // 2]),  # truncated JPEG
        compressed(T0 + 2 * PERIOD, np.random.default_rng(0).bytes(3000)),  # garbage
        compressed(T0 + 3 * PERIOD, b""),  # empty
        compressed(T0 + 4 * PERIOD, png.tobytes()[:-30], "png"),  # truncated PNG
        compressed(T0 + 5 * PERIOD, jpeg_claiming(9000, 9000)),  # header claims > 8k x 8k
        compressed(T0 + 6 * PERIOD, png.tobytes(), "png"),
        compressed(T0 + 7 * PERIOD, big_jpeg),  # 8192 x 8192: at the limit, decoded and answered
        compressed(T0 + 8 * PERIOD, good),
        compressed(T0 + 9 * PERIOD, good, "16UC1; compressedDepth"),
        compressed(T0 + 10 * PERIOD, b"\xff\xd8\xff\xe0" + b"\x00" * 50 + b"\xff\xd9"),  # JPEG-shaped junk
    ]
    write_messages(tmp_path / "bag", COMPRESSED, messages)
    config = load_config(None, {**ZERO, "task": "grounding"})
    out = tmp_path / "out"
    summary = replay_bag(tmp_path / "bag", config, out_dir=out, focus_image_every=0)
    records = read_records(out)
    bad = {"corrupt_compressed": 4, "too_large": 1, "unknown_format": 1, "zero_size": 1}
    check_accounted(summary, records, good=4, bad=bad)
    outcomes = frame_outcomes(records)
    assert sorted(outcomes) == [T0, T0 + 6 * PERIOD, T0 + 7 * PERIOD, T0 + 8 * PERIOD]
    assert outcomes[T0 + 7 * PERIOD]["type"] == "answer"  # the 8k frame was answered
    assert summary.cloud["requests"] >= 1
    assert topic_counts(out / "bag")[ANSWER_TOPIC] == summary.counts["answered"]


def test_corrupt_chunk_is_counted_and_the_run_goes_on(tmp_path):
    write_bag(tmp_path / "bag", 20, fps=10.0, width=320, height=240)  # ~230 kB frames: several 1 MB chunks
    mcap = next((tmp_path / "bag").glob("*.mcap"))
    with Reader(mcap) as reader:
        chunks = sorted(reader.storage.chunks, key=lambda c: c.chunk_start_offset)
    assert len(chunks) >= 3
    victim = chunks[1]
    data = bytearray(mcap.read_bytes())
    first_record = victim.chunk_start_offset + 1 + 8 + 8 + 8 + 8 + 4 + 4 + 8
    data[first_record + 1 : first_record + 9] = (2**40).to_bytes(8, "little")  # absurd record length
    mcap.write_bytes(bytes(data))
    lost = sum(
        victim.message_start_time <= T0 + i * NS_PER_S // 10 <= victim.message_end_time for i in range(20)
    )
    summary, records, _ = replay(tmp_path, tmp_path / "bag", "simulated")
    assert summary.read["unreadable_chunks"] == 1 and lost >= 1
    check_accounted(summary, records, good=20 - lost, bad={})
