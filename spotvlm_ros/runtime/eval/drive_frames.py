"""A drive's camera frames read and decoded once for all of its evaluation runs, within a memory budget.

The DriveLM evaluation replays a drive from its start up to each question's key frame, for every question
and mode: without a cache every run decodes the same JPEGs again. :class:`DriveFrames` reads the drive
once (up to its last key frame) and hands each run the frames before its stop. The images are made
read-only, so code that would draw on a shared frame fails loudly instead of changing later runs. When
the decoded frames pass ``budget_bytes`` the cache is dropped and every run reads the bag again.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..bag_reader import BagFrame
from ..camera_set import open_cameras

DEFAULT_BUDGET_BYTES = 1 << 30
"""Decoded pixels kept per drive (1 GiB: ~40 instants of six 1600x900 cameras)."""


class DriveFrames:
    """The camera messages of ``topics`` with log time in ``[start_ns, stop_ns)``, read once when they fit."""

    def __init__(
        self,
        bag: str | Path,
        topics: Sequence[str],
        slop_s: float,
        start_ns: int,
        stop_ns: int,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
    ) -> None:
        self.bag, self.topics, self.slop_s, self.start_ns = Path(bag), list(topics), slop_s, start_ns
        self.cached: list[BagFrame] | None = self._read(stop_ns, budget_bytes) if budget_bytes > 0 else None

    def _read(self, stop_ns: int, budget_bytes: int) -> list[BagFrame] | None:
        kept: list[BagFrame] = []
        size = 0
        with open_cameras(self.bag, self.topics, self.slop_s) as camera:
            for item in camera.frames(start_ns=self.start_ns, stop_ns=stop_ns):
                if item.frame is not None:
                    for view in item.frame.views:
                        view.image.setflags(write=False)
                        size += view.image.nbytes
                if size > budget_bytes:
                    return None
                kept.append(item)
        return kept

    def frames(self, stop_ns: int) -> Iterator[BagFrame]:
        """The messages (frame groups) logged before ``stop_ns``, in bag order."""
        if self.cached is not None:
            yield from itertools.takewhile(lambda item: item.log_ns < stop_ns, self.cached)
            return
        with open_cameras(self.bag, self.topics, self.slop_s) as camera:
            yield from camera.frames(start_ns=self.start_ns, stop_ns=stop_ns)
