"""``spotvlm bench replay``: simulated replay throughput against a plain rosbags read + decode.

Both passes read the same bag in the same process, alternating, best of ``--repeat``: the plain pass
opens the bag once and decodes every image of the camera topics in bag order; the replay pass runs the
whole SpotVLM loop on the simulated clock (context store, keyframe policy and JPEG encoding of
keyframes, Context Replacement, Visual Focus, cloud delivery events) with the zero-cost backend for edge
and cloud, so the figure is the runtime's own overhead. Target: ``replay_vs_plain_read_ratio >= 0.7``.

``--cameras N`` (N > 1) replays N camera topics as frame groups (``camera.topics``): by default the
DriveLM-nuScenes sample (``import-drivelm`` of the shared sample, or of a generated stand-in when it is
absent), whose first N cameras are read; the plain pass reads and decodes the same topics. Target:
``multicam_replay_vs_plain_read_ratio >= 0.6``. Its key frames are 3 s apart, so every group is an LVLM
keyframe; ``--sweeps-hz 12`` repeats each key frame at 12 Hz until the next (video rate, real images).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rosbags.rosbag2 import Reader

from ..core.config import load_config
from ..models.zero import ZeroCostBackend
from ..runtime.bag_reader import CameraBag, open_reader
from ..runtime.replay import replay_bag
from . import bench_line

DEMO_BAG = Path(__file__).resolve().parent.parent.parent / "rosbags" / "demo"


def plain_read(bag: Path, max_frames: int, topics: Sequence[str] = ("",)) -> tuple[int, float]:
    """Frames read and decoded (the topics' messages in bag order, one open), and the seconds it took."""
    started = time.perf_counter()
    count = 0
    reader = open_reader(Path(bag))
    try:
        cameras = [CameraBag(bag, topic, reader=reader) for topic in topics]
        decoder = {c.id: camera for camera in cameras for c in camera.connections}
        connections = [c for camera in cameras for c in camera.connections]
        for connection, log_ns, raw in cameras[0].raw_messages(None, None, connections):
            decoder[connection.id].take(count, log_ns, raw)
            count += 1
            if max_frames and count >= max_frames:
                break
    finally:
        reader.close()
    return count, time.perf_counter() - started


def simulated_replay(
    bag: Path, max_frames: int, config_path: Path | None, topics: Sequence[str] = ()
) -> tuple[int, float]:
    """Camera messages replayed through the loop with zero-cost models, and the seconds it took."""
    overrides: dict[str, object] = {"edge.backend": "zero", "cloud.backend": "zero"}
    if len(topics) > 1:
        overrides["camera.topics"] = list(topics)
    config = load_config(config_path, overrides)
    started = time.perf_counter()
    summary = replay_bag(
        bag,
        config,
        max_frames=max_frames,
        edge_backend=ZeroCostBackend("zero:edge"),
        cloud_backend=ZeroCostBackend("zero:cloud"),
    )
    seconds = time.perf_counter() - started
    return (summary.read["messages"] if len(topics) > 1 else summary.counts["messages"]), seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotvlm bench replay", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bag", type=Path, default=None, help="bag to read (default rosbags/demo or a synthetic one)"
    )
    parser.add_argument("--frames", type=int, default=300, help="frames per pass; 0 = the whole bag (300)")
    parser.add_argument(
        "--cameras", type=int, default=1, help="camera topics replayed as frame groups (1; > 1: DriveLM bag)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="passes of each kind, best taken (3)")
    parser.add_argument(
        "--sweeps-hz",
        type=float,
        default=0.0,
        help="with --cameras and no --bag: repeat each key frame at this rate until the next (0 = off)",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML config of the replay (backends forced to zero)"
    )
    return parser


def camera_bag(tmp: Path, sweeps_hz: float = 0.0) -> Path:
    """The DriveLM-nuScenes sample (or a generated stand-in) imported into ``tmp``.

    ``sweeps_hz`` > 0 adds each key frame's images repeated at that rate until the next key frame.
    """
    from ..runtime.import_drivelm import import_drivelm
    from .drivelm_video import repeated_sweeps
    from .importer import shared_sample, stand_in

    sample = shared_sample()
    if sample is not None:
        qa_json, images, what = sample / "train_sample.json", sample, f"the shared sample {sample}"
    else:
        qa_json = stand_in(tmp / "input")
        images, what = qa_json.parent, "a generated stand-in (the shared sample is absent)"
    tables = repeated_sweeps(qa_json, images, tmp / "sweeps", sweeps_hz) if sweeps_hz > 0 else None
    if tables is not None:
        what += f", each key frame repeated at {sweeps_hz:g} Hz until the next"
    print(f"imported {what}")
    return import_drivelm(qa_json, images, tmp / "drivelm", nuscenes=tables).path


def image_topics(bag: Path, count: int) -> list[str]:
    """The first ``count`` image topics of a bag (nuScenes cameras in their usual order first)."""
    from ..datasets.drivelm import CAMERAS
    from ..runtime.bag_reader import IMAGE_TYPES

    with Reader(bag) as reader:
        topics = [c.topic for c in reader.connections if c.msgtype in IMAGE_TYPES]
    order = {f"/{camera}/image_raw/compressed": i for i, camera in enumerate(CAMERAS)}
    topics = sorted(dict.fromkeys(topics), key=lambda t: order.get(t, len(order)))
    if len(topics) < count:
        raise SystemExit(
            f"spotvlm bench replay: {bag} has {len(topics)} image topics, --cameras {count} asked"
        )
    return topics[:count]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    multi = args.cameras > 1
    with tempfile.TemporaryDirectory(prefix="spotvlm-bench-") as tmp:
        bag = args.bag
        if bag is None and multi:
            bag = camera_bag(Path(tmp), args.sweeps_hz)
        elif bag is None:
            if (DEMO_BAG / "metadata.yaml").is_file():
                bag = DEMO_BAG
            else:
                from ..runtime.make_bag import make_synthetic_bag

                bag = Path(tmp) / "bag"
                make_synthetic_bag(bag, frames=max(args.frames, 1), seed=0)
                print(f"generated a synthetic bag of {max(args.frames, 1)} frames at {bag}")
        topics = image_topics(bag, args.cameras) if multi else [""]
        frames_per_pass = 0 if multi else args.frames
        plain, replay = [], []
        for _ in range(max(1, args.repeat)):
            plain.append(plain_read(bag, frames_per_pass, topics))
            replay.append(simulated_replay(bag, frames_per_pass, args.config, topics if multi else ()))
    frames, plain_s = min(plain, key=lambda r: r[1])
    replay_frames, replay_s = min(replay, key=lambda r: r[1])
    plain_fps, replay_fps = frames / plain_s, replay_frames / replay_s
    unit = "camera messages" if multi else "frames"
    shown = ", ".join(t for t in topics if t) or "its camera"
    print(f"bag {bag}: {frames} {unit} per pass ({shown}), best of {max(1, args.repeat)}")
    print(f"plain rosbags read + decode: {plain_fps:.1f} {unit}/s ({plain_s:.3f} s)")
    print(f"simulated replay, zero-cost models: {replay_fps:.1f} {unit}/s ({replay_s:.3f} s)")
    ratio = replay_fps / plain_fps
    name = "multicam_replay_vs_plain_read_ratio" if multi else "replay_vs_plain_read_ratio"
    print(f"replay / plain read: {ratio:.2f} (target >= {0.6 if multi else 0.7})")
    figures = {
        "frames": frames,
        "plain_read_fps": round(plain_fps, 1),
        "replay_fps": round(replay_fps, 1),
        name: round(ratio, 3),
    }
    if multi:
        figures["cameras"] = args.cameras
    print(bench_line("replay", figures))
    return 0
