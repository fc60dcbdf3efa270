"""``spotvlm import-drivelm``: DriveLM-nuScenes key frames (and nuScenes sweeps) as a rosbag2 bag.

One ``sensor_msgs/CompressedImage`` topic per camera, ``/<CHANNEL>/image_raw/compressed`` (for example
``/CAM_FRONT/image_raw/compressed``), ``header.frame_id`` = the channel, header stamp and log time = the
nuScenes timestamp, the JPEG bytes copied as they are (never re-encoded). The ground truth of every key
frame goes to ``annotations.jsonl`` (see :mod:`spotvlm_ros.core.annotations`), stamped with its CAM_FRONT
image (the first chosen camera when CAM_FRONT is left out), its scene token as ``sequence``.

All input is checked before anything is written, the bag is written into a temporary folder beside OUT
and renamed at the end: a failure leaves nothing at OUT.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from ..core.annotations import ANNOTATIONS_FILE, save_annotations
from ..datasets.drivelm import (
    GROUPS,
    CameraImage,
    DriveLmError,
    KeyFrame,
    iter_images,
    jpeg_size,
    load_qa_json,
    parse_key_frames,
    pick_cameras,
)
from ..datasets.nuscenes import sweep_images
from .bag_reader import COMPRESSED_TYPE
from .bag_writer import BAG_VERSION, GENERATOR_KEY, qos_profile
from .typestore import build_message, spotvlm_typestore


def camera_topic(camera: str) -> str:
    """The compressed image topic of a nuScenes camera channel."""
    return f"/{camera}/image_raw/compressed"


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote."""

    path: Path
    cameras: tuple[str, ...]
    scenes: int
    key_frames: int
    images: int
    sweeps: int
    qa: dict[str, int]
    bytes: int
    seconds: float


def plan_import(
    qa_json: str | Path,
    images_root: str | Path,
    cameras: Sequence[str] = (),
    nuscenes: str | Path | None = None,
    scenes: Sequence[str] = (),
) -> tuple[list[KeyFrame], list[CameraImage], tuple[str, ...]]:
    """Parse and check everything (key frames, sweeps, every image's header); DriveLmError on bad input.

    ``scenes`` keeps those scene tokens only (all when empty).
    """
    chosen = pick_cameras(cameras)
    data = load_qa_json(qa_json)
    if scenes:
        unknown = [s for s in scenes if s not in data]
        if unknown:
            raise DriveLmError(f"{qa_json}: no scene(s) {unknown}")
        data = {token: data[token] for token in data if token in scenes}
    frames = parse_key_frames(data, images_root, chosen)
    if not frames:
        raise DriveLmError(f"{qa_json}: no key frames")
    sweeps: list[CameraImage] = []
    if nuscenes is not None:
        for image in sweep_images(nuscenes, frames, chosen):
            jpeg_size(image.path, f"nuScenes sweep {image.camera}")
            sweeps.append(image)
    _check_stamps(frames)
    return frames, sweeps, chosen


def _check_stamps(frames: Sequence[KeyFrame]) -> None:
    """Key frames must not share a camera stamp (their ground truth is keyed by stamp)."""
    seen: dict[int, str] = {}
    for frame in frames:
        stamp = frame.annotation.stamp_ns
        if stamp in seen:
            raise DriveLmError(
                f"scene {frame.scene} key frame {frame.sample}: same image stamp as key frame {seen[stamp]}"
            )
        seen[stamp] = frame.sample


def import_drivelm(
    qa_json: str | Path,
    images_root: str | Path,
    out: str | Path,
    *,
    cameras: Sequence[str] = (),
    storage: str = "mcap",
    nuscenes: str | Path | None = None,
    scenes: Sequence[str] = (),
) -> ImportSummary:
    """Write the bag at ``out`` (must not exist); DriveLmError on bad input, OSError when writing fails."""
    started = time.perf_counter()
    out = Path(out)
    if storage not in ("mcap", "sqlite3"):
        raise DriveLmError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    if out.exists():
        raise DriveLmError(f"{out} exists already; choose a new output path")
    frames, sweeps, chosen = plan_import(qa_json, images_root, cameras, nuscenes, scenes)
    images = sorted([*iter_images(frames), *sweeps], key=lambda i: (i.stamp_ns, chosen.index(i.camera)))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        bag = staging / out.name
        _write_bag(bag, images, chosen, storage)
        save_annotations(bag / ANNOTATIONS_FILE, [f.annotation for f in frames])
        bag.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    qa = dict.fromkeys(GROUPS, 0)
    for frame in frames:
        for item in frame.annotation.vqa:
            qa[item.group] = qa.get(item.group, 0) + 1
    return ImportSummary(
        out,
        chosen,
        len({f.scene for f in frames}),
        len(frames),
        len(images),
        len(sweeps),
        qa,
        size,
        time.perf_counter() - started,
    )


def _write_bag(path: Path, images: Sequence[CameraImage], cameras: Sequence[str], storage: str) -> None:
    store = spotvlm_typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=BAG_VERSION, storage_plugin=plugin)
    writer.set_custom_data(GENERATOR_KEY, "spotvlm_ros import-drivelm")
    with writer:
        connections = {
            camera: writer.add_connection(
                camera_topic(camera), COMPRESSED_TYPE, typestore=store, offered_qos_profiles=[qos_profile()]
            )
            for camera in cameras
        }
        for image in images:
            sec, nanosec = divmod(image.stamp_ns, 1_000_000_000)
            msg = {
                "header": {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": image.camera},
                "format": "jpeg",
                "data": np.frombuffer(image.path.read_bytes(), np.uint8),
            }
            raw = store.serialize_cdr(build_message(store, COMPRESSED_TYPE, msg), COMPRESSED_TYPE)
            writer.write(connections[image.camera], image.stamp_ns, raw)


def describe(summary: ImportSummary) -> str:
    """Human-readable lines about an imported bag."""
    rate = summary.images / summary.seconds if summary.seconds > 0 else 0.0
    qa = ", ".join(f"{group} {count}" for group, count in summary.qa.items())
    lines = [
        f"wrote {summary.path}: {summary.scenes} scene(s), {summary.key_frames} key frames, "
        f"{summary.images} images ({summary.sweeps} sweeps), {summary.bytes / 1e6:.1f} MB "
        f"in {summary.seconds:.2f} s ({rate:.0f} images/s)",
        "  topics: " + ", ".join(camera_topic(c) for c in summary.cameras) + " (sensor_msgs/CompressedImage)",
        f"  ground truth: {summary.path / ANNOTATIONS_FILE} (QA: {qa})",
        f"  evaluate it: spotvlm eval {summary.path}",
    ]
    return "\n".join(lines)
