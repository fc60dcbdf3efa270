"""``spotvlm bench importer``: ``import-drivelm`` throughput in images/s against a plain copy of the files.

Both passes handle the same JPEG files in the same process, alternating, best of ``--repeat``: the plain
pass copies every image file into a fresh folder (``shutil.copyfile``); the import pass runs the whole
``import-drivelm`` (JSON parsed and checked, every JPEG header read, CDR messages into an MCAP bag, the
ground truth written). Input: the DriveLM-nuScenes sample beside the checkout (``$SPOTVLM_SHARED_DATA`` or
``../shared/data``) or ``--qa``/``--images``; with ``--stand-in N`` or without the sample, a stand-in of
the same shape (6 cameras, 1600x900 JPEGs, one QA per group, N key frames) is generated first. The
sample's 30 images measure mostly the fixed cost of a bag (rosbags writes metadata.yaml); a large
stand-in measures the cost per image.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ..datasets.drivelm import CAMERAS, GROUPS
from . import bench_line

SAMPLE = "drivelm-nuscenes-sample"
LOG = "n000-2026-01-01-00-00-00+0000"


def shared_sample() -> Path | None:
    """The shared DriveLM-nuScenes sample, when it is there."""
    env = os.environ.get("SPOTVLM_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    path = root / SAMPLE
    return path if (path / "train_sample.json").is_file() else None


def stand_in(root: Path, frames: int = 5) -> Path:
    """A DriveLM-shaped JSON and 1600x900 JPEGs (blurred noise, one per camera) under ``root``."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    jpegs = {}
    for camera in CAMERAS:
        image = cv2.GaussianBlur(rng.integers(0, 255, (900, 1600, 3), dtype=np.uint8), (0, 0), 3)
        jpegs[camera] = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    key_frames = {}
    for index in range(frames):
        paths = {}
        for offset, camera in enumerate(CAMERAS):
            stamp = 1_700_000_000_000_000 + index * 500_000 + offset * 8_000
            name = f"nuscenes/samples/{camera}/{LOG}__{camera}__{stamp}.jpg"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(jpegs[camera])
            paths[camera] = f"../{name}"
        qa = {g: [{"Q": f"A {g} question?", "A": "An answer."}] for g in GROUPS}
        key_frames[f"frame{index}"] = {"key_object_infos": {}, "QA": qa, "image_paths": paths}
    qa_json = root / "qa.json"
    qa_json.write_text(json.dumps({"scene": {"scene_description": "Noise.", "key_frames": key_frames}}))
    return qa_json


def plain_copy(images: Sequence[Path], dest: Path) -> float:
    """Seconds to copy every image file into ``dest`` (created)."""
    dest.mkdir(parents=True)
    started = time.perf_counter()
    for index, path in enumerate(images):
        shutil.copyfile(path, dest / f"{index}.jpg")
    return time.perf_counter() - started


def timed_import(qa_json: Path, images_root: Path, out: Path) -> tuple[int, float]:
    """(images written, seconds) of one import into ``out``."""
    from ..runtime.import_drivelm import import_drivelm

    started = time.perf_counter()
    summary = import_drivelm(qa_json, images_root, out)
    return summary.images, time.perf_counter() - started


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotvlm bench importer", description=__doc__.splitlines()[0])
    parser.add_argument("--qa", type=Path, default=None, help="DriveLM QA JSON (default: the shared sample)")
    parser.add_argument("--images", type=Path, default=None, help="image root of --qa")
    parser.add_argument(
        "--stand-in", type=int, default=0, metavar="N", help="use a generated input of N key frames instead"
    )
    parser.add_argument("--repeat", type=int, default=5, help="passes of each kind, best taken (5)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spotvlm-bench-import-") as tmp:
        work = Path(tmp)
        if args.qa is not None:
            qa_json, images_root, source = args.qa, args.images or args.qa.parent, str(args.qa)
        elif args.stand_in <= 0 and (sample := shared_sample()) is not None:
            qa_json, images_root, source = sample / "train_sample.json", sample, f"the shared sample {sample}"
        else:
            frames = args.stand_in or 5
            qa_json = stand_in(work / "input", frames)
            images_root, source = qa_json.parent, f"a generated stand-in of {frames} key frames"
        from ..runtime.import_drivelm import plan_import

        frames, _, _ = plan_import(qa_json, images_root)
        files = [image.path for frame in frames for image in frame.images]
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        copies, imports = [], []
        for attempt in range(max(1, args.repeat)):
            copies.append(plain_copy(files, work / f"copy{attempt}"))
            imports.append(timed_import(qa_json, images_root, work / f"bag{attempt}"))
            shutil.rmtree(work / f"copy{attempt}")
            shutil.rmtree(work / f"bag{attempt}")
    copy_s = min(copies)
    images, import_s = min(imports, key=lambda r: r[1])
    copy_rate, import_rate = len(files) / copy_s, images / import_s
    print(f"input: {source}: {len(files)} images, {size_mb:.1f} MB; best of {max(1, args.repeat)}")
    print(f"plain file copy: {copy_rate:.0f} images/s ({copy_s:.3f} s)")
    print(f"import-drivelm (checks, MCAP bag, ground truth): {import_rate:.0f} images/s ({import_s:.3f} s)")
    ratio = import_rate / copy_rate
    print(f"import / copy: {ratio:.2f}")
    figures = {
        "images": images,
        "copy_images_per_s": round(copy_rate, 1),
        "import_images_per_s": round(import_rate, 1),
        "import_vs_copy_ratio": round(ratio, 3),
        "import_mb_per_s": round(size_mb / import_s, 1),
    }
    print(bench_line("importer", figures))
    return 0
