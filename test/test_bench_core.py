"""``spotvlm bench core``: runs through the CLI, prints a parseable BENCH line last, rejects bad options."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
from time_scale import scaled

from spotvlm_ros.bench.core import main, panned_view, textured_frame


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spotvlm_ros.cli", "bench", "core", *args],
        capture_output=True,
        text=True,
        timeout=scaled(600),
    )


def test_short_run_prints_the_bench_line_last():
    proc = _run("--frames", "20", "--warmup", "5", "--passes", "1", "--keyframe-every", "5")
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("BENCH core ")
    figures = json.loads(last[len("BENCH core ") :])
    for part in ("core_step", "context_assembly", "focus_propagation", "crop_preparation", "store_lookup"):
        assert figures[f"{part}_ms"] > 0
        assert figures[f"{part}_vs_jpeg_decode_ratio"] == round(
            figures[f"{part}_ms"] / figures["jpeg_decode_ms"], 3
        )
    assert figures["jpeg_decode_ms"] > 0 and figures["frame"] == "640x480" and figures["regions"] == 4
    assert figures["jpeg_bytes"] > 20_000  # a textured frame, not a flat one


def test_help_and_bad_options():
    proc = _run("--help")
    assert proc.returncode == 0 and "--frames" in proc.stdout and "--propagation" in proc.stdout
    assert main(["--frames", "0"]) == 2


def test_textured_frame_is_deterministic_and_detailed():
    a, b = textured_frame(seed=1), textured_frame(seed=1)
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, textured_frame(seed=2))
    assert cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() > 100  # sharp detail
    view = panned_view(textured_frame(740, 580), 0, 0, 640, 480)
    assert view.shape == (480, 640, 3)
