"""Domain types shared by every layer: frames, regions, LVLM results and edge answers.

Stamps are integer nanoseconds of the capture time of the frame a value is about (ROS time), so they
key dictionaries exactly; ``*_s`` helpers give seconds. Images are ``numpy`` arrays, HxWx3 uint8 RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is light, but keep the import surface of core minimal at runtime
    import numpy as np

NS_PER_S = 1_000_000_000

TASKS = ("vqa", "caption", "grounding")


def ns_to_s(stamp_ns: int) -> float:
    """Convert integer nanoseconds to float seconds."""
    return stamp_ns / NS_PER_S


def s_to_ns(seconds: float) -> int:
    """Convert float seconds to integer nanoseconds (rounded)."""
    return int(round(seconds * NS_PER_S))


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box in pixel coordinates, corners (x1, y1) top-left and (x2, y2) bottom-right."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def is_valid(self, min_size: float = 1.0) -> bool:
        """True when all coordinates are finite and both sides are at least ``min_size`` pixels."""
        coords = (self.x1, self.y1, self.x2, self.y2)
        return all(math.isfinite(c) for c in coords) and self.width >= min_size and self.height >= min_size

    def clip(self, width: int, height: int) -> Box:
        """Clip to the image rectangle [0, width] x [0, height]."""
        return Box(
            min(max(self.x1, 0.0), float(width)),
            min(max(self.y1, 0.0), float(height)),
            min(max(self.x2, 0.0), float(width)),
            min(max(self.y2, 0.0), float(height)),
        )

    def scale(self, sx: float, sy: float) -> Box:
        """Scale coordinates (e.g. from a resized model input back to original pixels)."""
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)

    def shift(self, dx: float, dy: float) -> Box:
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def grow(self, factor: float) -> Box:
        """Grow (factor > 1) or shrink around the center, keeping the center fixed."""
        cx, cy = self.center
        hw, hh = self.width * factor / 2.0, self.height * factor / 2.0
        return Box(cx - hw, cy - hh, cx + hw, cy + hh)

    def iou(self, other: Box) -> float:
        """Intersection over union; 0 for disjoint or degenerate boxes."""
        ix1, iy1 = max(self.x1, other.x1), max(self.y1, other.y1)
        ix2, iy2 = min(self.x2, other.x2), min(self.y2, other.y2)
        inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    @classmethod
    def from_center(cls, cx: float, cy: float, width: float, height: float) -> Box:
        return cls(cx - width / 2.0, cy - height / 2.0, cx + width / 2.0, cy + height / 2.0)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True, slots=True)
class Region:
    """A grounded region: a box with a label and a confidence score in [0, 1].

    ``frame_id`` names the camera whose pixels the box is in; empty = the camera of the frame (or
    message) the region belongs to, which is all a single camera needs.
    """

    box: Box
    label: str = ""
    score: float = 1.0
    frame_id: str = ""

    def camera(self, default: str) -> str:
        """The camera of this region, ``default`` when it names none."""
        return self.frame_id or default


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera frame: capture stamp, RGB image and the camera's frame id.

    A frame of several cameras (one instant, grouped by stamp) lists every camera's frame in
    ``cameras``, the reference camera first; its own stamp, image and frame id are the reference
    camera's, so code that knows one camera sees that one. ``cameras`` is empty for a single camera.
    """

    stamp_ns: int
    image: np.ndarray
    frame_id: str = "camera"
    seq: int = 0
    cameras: tuple[Frame, ...] = ()

    @property
    def views(self) -> tuple[Frame, ...]:
        """Every camera's frame of this instant: ``cameras``, or this frame alone."""
        return self.cameras or (self,)

    @property
    def stamp_s(self) -> float:
        return ns_to_s(self.stamp_ns)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class LvlmResult:
    """A (late) cloud LVLM answer about one keyframe; ``stamp_ns`` is the keyframe capture time."""

    request_id: str
    stamp_ns: int
    task: str
    prompt: str
    text: str
    regions: tuple[Region, ...] = ()
    image_size: tuple[int, int] = (0, 0)  # (width, height) of the keyframe (reference camera)
    summary: str = ""
    model: str = ""
    round_trip_s: float = 0.0
    frame_id: str = "camera"
    camera_sizes: tuple[tuple[str, int, int], ...] = ()  # (frame id, width, height) of every camera seen

    @property
    def stamp_s(self) -> float:
        return ns_to_s(self.stamp_ns)

    def size_of(self, frame_id: str) -> tuple[int, int]:
        """(width, height) of the keyframe image of camera ``frame_id`` (``image_size`` if unknown)."""
        for name, width, height in self.camera_sizes:
            if name == frame_id:
                return width, height
        return self.image_size

    def age_s(self, now_ns: int) -> float:
        """Age of this result relative to the capture time ``now_ns`` of the current frame."""
        return ns_to_s(now_ns - self.stamp_ns)

    def with_summary(self, summary: str) -> LvlmResult:
        return replace(self, summary=summary)


# Why an edge answer used no context (``EdgeAnswer.context_status``).
CONTEXT_USED = "used"
CONTEXT_NONE = "none"
CONTEXT_TOO_OLD = "too_old"
CONTEXT_DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class EdgeAnswer:
    """The edge SVLM's answer for one frame, with what context and focus produced it."""

    stamp_ns: int
    task: str
    text: str
    frame_id: str = "camera"
    regions: tuple[Region, ...] = ()
    context_id: str = ""
    context_age_s: float = -1.0
    context_status: str = CONTEXT_NONE
    focus_regions: tuple[Region, ...] = ()
    focus_mode: str = "off"
    inference_s: float = 0.0
    prompt_tokens: int = 0
    image_tokens: int = 0
    skipped_frames: int = 0

    @property
    def stamp_s(self) -> float:
        return ns_to_s(self.stamp_ns)

    @property
    def used_context(self) -> bool:
        return bool(self.context_id)
