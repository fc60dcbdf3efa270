"""Where the shared DriveLM-nuScenes sample is, and inputs built from it in a test's tmp folder.

The sample is real data under a non-commercial licence: it is read from ``../shared`` (or
``$SPOTVLM_SHARED_DATA``), never copied into the repository; tests that need it skip with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

SAMPLE_NAME = "drivelm-nuscenes-sample"


def shared_data() -> Path:
    """``$SPOTVLM_SHARED_DATA`` or the ``shared/data`` folder beside the checkout."""
    env = os.environ.get("SPOTVLM_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def sample_dir() -> Path:
    """The sample folder; skips the calling test (with the reason) when it is absent."""
    path = shared_data() / SAMPLE_NAME
    if not (path / "train_sample.json").is_file():
        pytest.skip(f"DriveLM-nuScenes sample not found at {path} (set SPOTVLM_SHARED_DATA)")
    return path


def load(name: str = "train_sample.json") -> dict[str, Any]:
    return json.loads((sample_dir() / name).read_text())


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def copy_images(dest: Path) -> Path:
    """A writable copy of the sample's images (``dest/nuscenes/samples/...``), for corrupting one."""
    shutil.copytree(sample_dir() / "nuscenes", dest / "nuscenes")
    return dest


def split_scene(data: dict[str, Any], first: int) -> dict[str, Any]:
    """The one scene of ``data`` as two scenes: its first ``first`` key frames and the rest."""
    ((token, scene),) = data.items()
    frames = list(scene["key_frames"].items())
    head = {**scene, "key_frames": dict(frames[:first])}
    tail = {**scene, "key_frames": dict(frames[first:])}
    return {token: head, f"{token}-b": tail}


def camera_stamps(data: dict[str, Any], camera: str) -> list[int]:
    """The nuScenes stamps (ns) of ``camera``'s key frame images, from their file names, sorted."""
    stamps = []
    for scene in data.values():
        for frame in scene["key_frames"].values():
            stamps.append(int(Path(frame["image_paths"][camera]).stem.split("__")[-1]) * 1000)
    return sorted(stamps)
