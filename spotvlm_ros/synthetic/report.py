"""Measure the synthetic world: label balance of a data set and the time to make a frame.

``python -m spotvlm_ros.synthetic.report [--clips 20] [--frames 100] [--seed 0]`` prints the answer
frequencies of every question over a balanced data set, then per-frame times of ``generate_clip`` on one
OpenCV thread (process CPU time, so other load on the machine inflates it little), and as its last line
one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence

import cv2

from .truth import ANSWERS, label_stats
from .world import dataset_clips, generate_annotations, generate_clip


def _frame_times(seed: int, frames: int, width: int, height: int) -> tuple[list[float], float]:
    """CPU seconds of each frame after the first, and of the first (which builds the clip's look)."""
    times = []
    clip = generate_clip(seed, frames, width=width, height=height)
    start = time.process_time()
    next(clip)
    setup = time.process_time() - start
    while True:
        start = time.process_time()
        if next(clip, None) is None:
            break
        times.append(time.process_time() - start)
    return times, setup


def main(argv: Sequence[str] | None = None) -> int:
    """Print label statistics and frame times; return 0."""
    parser = argparse.ArgumentParser(prog="python -m spotvlm_ros.synthetic.report", description=__doc__)
    parser.add_argument("--clips", type=int, default=20, help="clips of the data set (default 20)")
    parser.add_argument("--frames", type=int, default=100, help="frames per clip (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    parser.add_argument("--timed-frames", type=int, default=200, help="frames rendered for timing")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    annotations = [
        a
        for clip_seed, spec in dataset_clips(args.seed, args.clips)
        for a in generate_annotations(clip_seed, args.frames, width=args.width, height=args.height, spec=spec)
    ]
    stats = label_stats(annotations)
    print(f"label frequencies over {args.clips} clips x {args.frames} frames (data set seed {args.seed}):")
    for question in (q for q in ANSWERS if q in stats):  # speed_limit only when a clip has signs
        cells = "  ".join(f"{answer}={share:.3f}" for answer, share in stats[question].items())
        print(f"  {question:<11} {cells}")
    grounded = "  ".join(f"{item}={share:.3f}" for item, share in stats["grounding"].items())
    print(f"  {'grounding':<11} {grounded}")

    times, setup = _frame_times(args.seed, args.timed_frames, args.width, args.height)
    ms = sorted(t * 1000.0 for t in times)
    frame_ms = {
        "median": statistics.median(ms),
        "p90": ms[int(0.9 * (len(ms) - 1))],
        "mean": statistics.fmean(ms),
    }
    print(
        f"frame time at {args.width}x{args.height}, one thread, CPU ms: median {frame_ms['median']:.2f}, "
        f"p90 {frame_ms['p90']:.2f}, mean {frame_ms['mean']:.2f} ({len(ms)} frames); "
        f"clip setup {setup * 1000.0:.0f} ms"
    )
    summary = {
        "labels": {k: {a: round(v, 4) for a, v in d.items()} for k, d in stats.items()},
        "frame_ms": {k: round(v, 3) for k, v in frame_ms.items()},
        "clip_setup_ms": round(setup * 1000.0, 1),
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
