"""The nuScenes camera sweeps between DriveLM key frames, from the official tables read as plain JSON.

Only ``<dataroot>/<version>/sample_data.json`` is needed: each record has ``token``, ``filename``
(``samples/CAM_FRONT/...jpg`` for key frames, ``sweeps/CAM_FRONT/...jpg`` between them), ``timestamp``
(microseconds), ``width``, ``height``, ``is_key_frame`` and the ``prev``/``next`` tokens of the same camera.
For each camera, the chain from a scene's first DriveLM key frame image to its last one is followed through
``next``: every image on it (nuScenes key frames that DriveLM left out included) becomes a frame of the bag.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .drivelm import CameraImage, DriveLmError, KeyFrame, file_stamp_ns

VERSIONS = ("v1.0-trainval", "v1.0-mini", "v1.0-test")


def find_table(dataroot: str | Path, name: str = "sample_data.json") -> Path:
    """``<dataroot>/<version>/<name>`` (the first version folder that has it) or ``<dataroot>/<name>``."""
    root = Path(dataroot)
    candidates = [root / v / name for v in VERSIONS] + [root / name]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DriveLmError(f"nuScenes table {name} not found under {root} (looked in {', '.join(VERSIONS)})")
    return found


def load_sample_data(dataroot: str | Path) -> dict[str, dict[str, Any]]:
    """``sample_data`` records of camera images, by file name relative to the data root."""
    path = find_table(dataroot)
    try:
        records = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DriveLmError(f"{path}: cannot read: {err}") from None
    if not isinstance(records, list):
        raise DriveLmError(f"{path}: expected a list of sample_data records")
    by_file: dict[str, dict[str, Any]] = {}
    for number, record in enumerate(records):
        if not isinstance(record, dict) or not {"token", "filename", "timestamp", "next"} <= set(record):
            raise DriveLmError(f"{path}: record {number} lacks token, filename, timestamp or next")
        if str(record["filename"]).endswith(".jpg"):
            by_file[str(record["filename"])] = record
    return by_file


def sweep_images(
    dataroot: str | Path, frames: Sequence[KeyFrame], cameras: Sequence[str]
) -> list[CameraImage]:
    """Every camera image between each scene's first and last key frame that is not a DriveLM key frame's."""
    root = Path(dataroot)
    by_file = load_sample_data(root)
    by_token = {r["token"]: r for r in by_file.values()}
    keyed = {(image.camera, image.stamp_ns) for frame in frames for image in frame.images}
    sweeps: list[CameraImage] = []
    scenes: dict[str, list[KeyFrame]] = {}
    for frame in frames:
        scenes.setdefault(frame.scene, []).append(frame)
    for scene, scene_frames in scenes.items():
        for camera in cameras:
            chain = _chain(root, by_file, by_token, scene_frames, camera, f"scene {scene} {camera}")
            sweeps += [image for image in chain if (image.camera, image.stamp_ns) not in keyed]
    return sweeps


def _chain(
    root: Path,
    by_file: Mapping[str, dict[str, Any]],
    by_token: Mapping[str, dict[str, Any]],
    frames: Sequence[KeyFrame],
    camera: str,
    where: str,
) -> list[CameraImage]:
    first, last = frames[0].image(camera), frames[-1].image(camera)
    assert first is not None and last is not None  # every key frame has every chosen camera
    record = _record_of(root, by_file, first.path, where)
    end = _record_of(root, by_file, last.path, where)["token"]
    chain: list[CameraImage] = []
    while True:
        path = root / record["filename"]
        channel, _ = file_stamp_ns(path, where)
        if channel != camera:
            raise DriveLmError(
                f"{where}: sample_data {record['token']} ({record['filename']}) is not {camera}"
            )
        stamp_ns = int(record["timestamp"]) * 1000
        if chain and stamp_ns <= chain[-1].stamp_ns:
            raise DriveLmError(f"{where}: sample_data {record['token']} goes back in time")
        size = (int(record.get("width") or 0), int(record.get("height") or 0))
        chain.append(CameraImage(camera, path, stamp_ns, *size))
        if record["token"] == end:
            return chain
        if not record["next"] or record["next"] not in by_token:
            raise DriveLmError(
                f"{where}: the sample_data chain ends before the last key frame {last.path.name}"
            )
        record = by_token[record["next"]]


def _record_of(root: Path, by_file: Mapping[str, dict[str, Any]], path: Path, where: str) -> dict[str, Any]:
    """The sample_data record of a key frame image (matched by its ``samples/CAM/...`` file name)."""
    relative = f"samples/{path.parent.name}/{path.name}"
    record = by_file.get(relative)
    if record is None:
        raise DriveLmError(f"{where}: key frame image {relative} is not in {root}'s sample_data.json")
    return record
