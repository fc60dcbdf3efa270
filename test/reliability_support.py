"""Helpers of the reliability tests: cheap camera bags, scripted phases of a run, reading a run's outputs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from spotvlm_ros.core.types import NS_PER_S, Frame
from spotvlm_ros.runtime.bag_writer import write_camera_bag

T0 = 1_700_000_000 * NS_PER_S


def gradient_frames(n: int, fps: float = 20.0, width: int = 64, height: int = 48, start_ns: int = T0):
    """``n`` cheap, distinct RGB frames at ``fps``."""
    period = round(NS_PER_S / fps)
    y, x = np.mgrid[0:height, 0:width]
    for i in range(n):
        image = np.stack([(x * 3 + i * 7) % 256, (y * 5 + i) % 256, np.full_like(x, (40 + i) % 256)], -1)
        yield Frame(start_ns + i * period, image.astype(np.uint8), frame_id="cam", seq=i)


def write_bag(path: Path, n: int, fps: float = 20.0, transport: str = "raw", **kw) -> list[int]:
    """A camera bag of ``n`` gradient frames; returns their stamps."""
    frames = list(gradient_frames(n, fps, **kw))
    write_camera_bag(path, ((f, None) for f in frames), transport=transport)
    return [f.stamp_ns for f in frames]


class Phases:
    """The ``advance`` callback of ``replay_bag``: runs ``actions[k]`` when frame ``k`` (0-based) is read."""

    def __init__(self, actions: dict[int, Callable[[], None]]):
        self.actions = actions
        self.read = 0

    def __call__(self, count: int) -> None:
        for _ in range(count):
            action = self.actions.get(self.read)
            self.read += 1
            if action is not None:
                action()


def read_records(out_dir: Path) -> list[dict]:
    """The JSONL records of a replay."""
    return [json.loads(line) for line in (out_dir / "records.jsonl").read_text().splitlines()]


def frame_outcomes(records: list[dict]) -> dict[int, dict]:
    """Per frame stamp, its answer or skip record; fails when a frame has two."""
    outcomes: dict[int, dict] = {}
    for record in records:
        if record["type"] in ("answer", "skip"):
            assert record["stamp_ns"] not in outcomes, f"frame {record['stamp_ns']} reported twice"
            outcomes[record["stamp_ns"]] = record
    return outcomes


def topic_counts(bag: Path) -> Counter:
    """Messages per topic of a bag."""
    with Reader(bag) as reader:
        return Counter({c.topic: c.msgcount for c in reader.connections})


def statuses(records: list[dict], stamps: list[int]) -> list[str]:
    """Context status of each frame in ``stamps`` order ("skip" for frames skipped, latest wins)."""
    outcomes = frame_outcomes(records)
    return [outcomes[s].get("context_status", "skip") for s in stamps]


def link_lines(log_records, prefix: str) -> list[str]:
    """Messages of the link-state logger starting with ``prefix``."""
    return [
        r.getMessage()
        for r in log_records.records
        if r.name == "spotvlm.link" and r.getMessage().startswith(prefix)
    ]
