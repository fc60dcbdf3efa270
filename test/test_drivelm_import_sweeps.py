"""``import-drivelm --nuscenes``: the sweeps between key frames, from a small nuScenes-style table.

The fixture writes ``v1.0-mini/sample_data.json`` in the official layout for the sample's own key frame
images, with two made-up sweep images (small JPEGs written here) between each pair of key frames, and one
before the first and one after the last (which the bag must leave out).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from drivelm_support import camera_stamps, load, sample_dir
from rosbags.rosbag2 import Reader

from spotvlm_ros.cli import main
from spotvlm_ros.core.annotations import load_annotations
from spotvlm_ros.runtime.import_drivelm import camera_topic
from spotvlm_ros.runtime.typestore import spotvlm_typestore

CAMERAS = ("CAM_FRONT", "CAM_BACK")
LOG = "n015-2018-08-03-15-00-36+0800"


def _jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    path.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())


def _tables(root: Path) -> dict[str, list[int]]:
    """Write the table and sweep images; return each camera's expected stamps (us) in the bag."""
    data = load()
    records, expected = [], {}
    for camera in CAMERAS:
        keys = [s // 1000 for s in camera_stamps(data, camera)]
        chain: list[tuple[int, bool]] = [(keys[0] - 80_000, False)]
        for a, b in zip(keys, keys[1:], strict=False):
            chain += [(a, True), (a + (b - a) // 3, False), (a + 2 * (b - a) // 3, False)]
        chain += [(keys[-1], True), (keys[-1] + 80_000, False)]
        expected[camera] = [t for t, _ in chain[1:-1]]
        for i, (stamp, key) in enumerate(chain):
            folder = "samples" if key else "sweeps"
            filename = f"{folder}/{camera}/{LOG}__{camera}__{stamp}.jpg"
            if not key:
                _jpeg(root / filename, stamp)
            records.append(
                {
                    "token": f"{camera}-{i}",
                    "sample_token": "",
                    "filename": filename,
                    "fileformat": "jpg",
                    "timestamp": stamp,
                    "is_key_frame": key,
                    "width": 1600 if key else 160,
                    "height": 900 if key else 90,
                    "prev": f"{camera}-{i - 1}" if i else "",
                    "next": f"{camera}-{i + 1}" if i + 1 < len(chain) else "",
                }
            )
    records.append({"token": "lidar", "filename": "samples/LIDAR_TOP/x.pcd.bin", "timestamp": 1, "next": ""})
    (root / "v1.0-mini").mkdir(parents=True)
    (root / "v1.0-mini" / "sample_data.json").write_text(json.dumps(records))
    return expected


def _import(tmp_path: Path, root: Path, capsys) -> tuple[int, str, Path]:
    sample = sample_dir()
    out = tmp_path / "bag"
    rc = main(
        [
            "import-drivelm",
            str(sample / "train_sample.json"),
            "--images",
            str(sample),
            "--out",
            str(out),
            "--cameras",
            ",".join(CAMERAS),
            "--nuscenes",
            str(root),
        ]
    )
    return rc, capsys.readouterr().err, out


def test_sweeps_between_key_frames_are_written_in_time_order(tmp_path, capsys) -> None:
    root = tmp_path / "nuscenes"
    expected = _tables(root)
    rc, err, out = _import(tmp_path, root, capsys)
    assert rc == 0, err
    store = spotvlm_typestore()
    keys = {c: {s // 1000 for s in camera_stamps(load(), c)} for c in CAMERAS}
    seen: dict[str, list[int]] = {}
    last_log = 0
    with Reader(out) as reader:
        assert sorted(c.topic for c in reader.connections) == sorted(camera_topic(c) for c in CAMERAS)
        for conn, log_ns, raw in reader.messages():
            msg = store.deserialize_cdr(raw, conn.msgtype)
            camera, stamp = (
                msg.header.frame_id,
                msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
            )
            assert conn.topic == camera_topic(camera) and log_ns == stamp >= last_log
            last_log = log_ns
            seen.setdefault(camera, []).append(stamp // 1000)
            if stamp // 1000 not in keys[camera]:  # a sweep: its bytes as written in the fixture
                sweep = root / "sweeps" / camera / f"{LOG}__{camera}__{stamp // 1000}.jpg"
                assert bytes(msg.data) == sweep.read_bytes()
    assert seen == expected and all(len(v) == 13 for v in seen.values())
    truth = load_annotations(out)
    assert sorted(truth.items) == camera_stamps(load(), "CAM_FRONT")  # ground truth at the key frames only


@pytest.mark.parametrize("damage", ["broken chain", "missing sweep", "no table"])
def test_bad_tables_are_named(tmp_path, capsys, damage) -> None:
    root = tmp_path / "nuscenes"
    _tables(root)
    table = root / "v1.0-mini" / "sample_data.json"
    records = json.loads(table.read_text())
    if damage == "broken chain":
        records[3]["next"] = "gone"
        table.write_text(json.dumps(records))
        expected = "chain ends before the last key frame"
    elif damage == "missing sweep":
        (root / records[2]["filename"]).unlink()
        expected = "nuScenes sweep CAM_FRONT: cannot read image"
    else:
        table.unlink()
        expected = "sample_data.json not found"
    rc, err, out = _import(tmp_path, root, capsys)
    assert rc == 2 and expected in err, err
    assert not out.exists()
