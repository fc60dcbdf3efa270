"""``spotvlm bench replay``: simulated replay throughput against a plain rosbags read + decode.

Both passes read the same bag in the same process, alternating, best of ``--repeat``: the plain pass
iterates the camera topic and decodes every image; the replay pass runs the whole SpotVLM loop on the
simulated clock (context store, keyframe policy and JPEG encoding of keyframes, Context Replacement,
Visual Focus, cloud delivery events) with the zero-cost backend for edge and cloud, so the figure is
the runtime's own overhead. Target: ``replay_vs_plain_read_ratio >= 0.7``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ..core.config import load_config
from ..models.zero import ZeroCostBackend
from ..runtime.bag_reader import open_camera_bag
from ..runtime.replay import replay_bag
from . import bench_line

DEMO_BAG = Path(__file__).resolve().parent.parent.parent / "rosbags" / "demo"


def plain_read(bag: Path, max_frames: int) -> tuple[int, float]:
    """Frames read and decoded, and the seconds it took."""
    started = time.perf_counter()
    count = 0
    with open_camera_bag(bag) as camera:
        for _ in camera:
            count += 1
            if max_frames and count >= max_frames:
                break
    return count, time.perf_counter() - started


def simulated_replay(bag: Path, max_frames: int, config_path: Path | None) -> tuple[int, float]:
    """Frames replayed through the loop with zero-cost models, and the seconds it took."""
    config = load_config(config_path, {"edge.backend": "zero", "cloud.backend": "zero"})
    started = time.perf_counter()
    summary = replay_bag(
        bag,
        config,
        max_frames=max_frames,
        edge_backend=ZeroCostBackend("zero:edge"),
        cloud_backend=ZeroCostBackend("zero:cloud"),
    )
    return summary.counts["messages"], time.perf_counter() - started


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotvlm bench replay", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bag", type=Path, default=None, help="bag to read (default rosbags/demo or a synthetic one)"
    )
    parser.add_argument("--frames", type=int, default=300, help="frames per pass; 0 = the whole bag (300)")
    parser.add_argument("--repeat", type=int, default=3, help="passes of each kind, best taken (3)")
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML config of the replay (backends forced to zero)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spotvlm-bench-") as tmp:
        bag = args.bag
        if bag is None:
            if (DEMO_BAG / "metadata.yaml").is_file():
                bag = DEMO_BAG
            else:
                from ..runtime.make_bag import make_synthetic_bag

                bag = Path(tmp) / "bag"
                make_synthetic_bag(bag, frames=max(args.frames, 1), seed=0)
                print(f"generated a synthetic bag of {max(args.frames, 1)} frames at {bag}")
        plain, replay = [], []
        for _ in range(max(1, args.repeat)):
            plain.append(plain_read(bag, args.frames))
            replay.append(simulated_replay(bag, args.frames, args.config))
    frames, plain_s = min(plain, key=lambda r: r[1])
    replay_frames, replay_s = min(replay, key=lambda r: r[1])
    plain_fps, replay_fps = frames / plain_s, replay_frames / replay_s
    print(f"bag {bag}: {frames} frames per pass, best of {max(1, args.repeat)}")
    print(f"plain rosbags read + decode: {plain_fps:.1f} frames/s ({plain_s:.3f} s)")
    print(f"simulated replay, zero-cost models: {replay_fps:.1f} frames/s ({replay_s:.3f} s)")
    ratio = replay_fps / plain_fps
    print(f"replay / plain read: {ratio:.2f} (target >= 0.7)")
    figures = {
        "frames": frames,
        "plain_read_fps": round(plain_fps, 1),
        "replay_fps": round(replay_fps, 1),
        "replay_vs_plain_read_ratio": round(ratio, 3),
    }
    print(bench_line("replay", figures))
    return 0
