"""A video-rate stand-in of the DriveLM sample for the benchmarks: each key frame's images repeated at a rate.

The sample holds key frames only (about 3 s apart), so a replay of it makes every frame group an LVLM
keyframe. Real use replays the 12 Hz nuScenes sweeps between key frames. Without them, this writes a
nuScenes-style ``sample_data.json`` whose sweeps are copies of the previous key frame's JPEG every
``1 / hz`` s, and imports the sample with it (``import-drivelm --nuscenes``): real images at a real
frame rate, the scene frozen between key frames.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..datasets.drivelm import load_qa_json, parse_key_frames


def repeated_sweeps(qa_json: Path, images_root: Path, root: Path, hz: float) -> Path:
    """Write ``root/v1.0-mini/sample_data.json`` and the copied sweep images; return ``root``."""
    frames = parse_key_frames(load_qa_json(qa_json), images_root)
    records = []
    for camera in [image.camera for image in frames[0].images]:
        chain: list[tuple[int, Path, bool]] = []
        for key, after in zip(frames, [*frames[1:], None], strict=True):
            image, upcoming = key.image(camera), after.image(camera) if after else None
            assert image is not None  # every key frame has every camera parse_key_frames chose
            chain.append((image.stamp_ns // 1000, image.path, True))
            if upcoming is None:
                break
            end = upcoming.stamp_ns // 1000
            step = round(1e6 / hz)
            chain += [
                (t, image.path, False) for t in range(image.stamp_ns // 1000 + step, end - step // 2, step)
            ]
        for index, (stamp, source, key) in enumerate(chain):
            folder = "samples" if key else "sweeps"
            log = source.name.split("__")[0]
            filename = f"{folder}/{camera}/{log}__{camera}__{stamp}.jpg"
            if not key:
                (root / filename).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, root / filename)
            records.append(
                {
                    "token": f"{camera}-{index}",
                    "filename": filename,
                    "timestamp": stamp,
                    "is_key_frame": key,
                    "next": f"{camera}-{index + 1}" if index + 1 < len(chain) else "",
                }
            )
    (root / "v1.0-mini").mkdir(parents=True, exist_ok=True)
    (root / "v1.0-mini" / "sample_data.json").write_text(json.dumps(records))
    return root
