"""Carrying LVLM regions from the keyframe they were found on to the current frame.

Modes:

* ``static``: same coordinates;
* ``flow``: sparse optical flow (pyramidal Lucas-Kanade) on corner features inside each box, a
  robust median shift (points off it rejected) and least-squares scale per box; a box whose features
  fail takes the median shift of the boxes that tracked, or stays put (``fallback``);
* ``template``: the keyframe patch of each box is found again by normalised cross-correlation
  (``cv2.matchTemplate``, sub-pixel peak) in a search window around its last position.

Tracking runs on a grayscale copy downscaled to ``max_side`` and is chained: each frame is tracked
from the last one processed (keyframe features are found once per context and replenished only when
too few survive; the current small image becomes the next reference), so a frame costs one downscale
and one LK call on a few dozen points.
Output boxes grow with age (``growth_per_s`` of their size per second; a quarter of it for tracked
boxes) and with the motion residual, are clipped to the frame, and are dropped once less than
``min_visible`` of them lies inside it. Confidence = region score x tracking quality x
``0.5 ** (age / half_life_s)``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..types import NS_PER_S, Box, Frame, Region

__all__ = ["PROPAGATION_MODES", "PropagatedRegion", "RegionPropagator", "small_gray"]

PROPAGATION_MODES = ("static", "flow", "template")
_TRACKED_GROWTH = 0.25  # tracked boxes grow at this fraction of the age growth rate
_MIN_POINTS = 3
_MAX_RESIDUAL = 2.0  # small-image px: points moving further off the common motion are outliers
_TEMPLATE_MIN_PEAK = 0.5
_EXACT_PEAK = 0.998
_NO_KEYFRAME_PENALTY = 0.5  # regions start from a frame other than their keyframe: motion unknown
_SHARED_SHIFT_DECAY = 0.9  # per frame a box moves with the other boxes' median shift
_STATIC_FALLBACK_DECAY = 0.8  # per frame a box that should track stays put
_LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03)


@dataclass(frozen=True, slots=True)
class PropagatedRegion:
    """A region carried to the current frame: box in its pixels (score = confidence) and how."""

    region: Region
    method: str  # "static", "flow", "template" or "fallback"
    confidence: float
    shift: tuple[float, float]  # motion of the box center since the keyframe (frame px)


def small_gray(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Grayscale copy downscaled to at most ``max_side`` (INTER_AREA) and its scale to the image."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        scale = size[0] / width
    return gray, scale


@dataclass(slots=True)
class _Track:
    source: Region  # on the keyframe, in frame-size pixels
    core: Box  # current estimate before growth, frame pixels
    quality: float = 1.0
    penalty: float = 1.0  # product of the decays of frames where tracking failed
    uncertainty: float = 0.0  # frame px, from the motion residual
    method: str = "static"
    points: np.ndarray = field(default_factory=lambda: np.empty((0, 1, 2), np.float32))
    template: tuple[np.ndarray, tuple[float, float]] | None = None  # patch, box center - patch center
    gone: bool = False


@dataclass(slots=True)
class _State:
    key: tuple
    keyframe_stamp: int
    ref_stamp: int
    scale: float = 1.0
    ref_gray: np.ndarray | None = None
    tracks: list[_Track] = field(default_factory=list)
    output: list[PropagatedRegion] | None = None
    output_stamp: int = -1


def _to_small(box: Box, scale: float) -> Box:
    return box.scale(scale, scale)


def _corners(gray: np.ndarray, area: Box, max_points: int, quality: float) -> np.ndarray:
    """Shi-Tomasi corners inside ``area`` (small-image coordinates), shape (N, 1, 2)."""
    height, width = gray.shape[:2]
    x1, y1 = max(0, int(area.x1)), max(0, int(area.y1))
    x2, y2 = min(width, int(np.ceil(area.x2))), min(height, int(np.ceil(area.y2)))
    if x2 - x1 < 5 or y2 - y1 < 5:
        return np.empty((0, 1, 2), np.float32)
    found = cv2.goodFeaturesToTrack(gray[y1:y2, x1:x2], max_points, quality, 3, blockSize=3)
    if found is None:
        return np.empty((0, 1, 2), np.float32)
    return (found + np.array([x1, y1], np.float32)).astype(np.float32)


def _features(gray: np.ndarray, box: Box, max_points: int) -> np.ndarray:
    """Features to track a box by: corners of its inner 80%, else (a flat object) of its surroundings."""
    points = _corners(gray, box.grow(0.8), max_points, 0.01)
    if len(points) < _MIN_POINTS:
        points = _corners(gray, box.grow(1.5), max_points, 0.001)
    return points


def _template(gray: np.ndarray, box: Box) -> tuple[np.ndarray, tuple[float, float]] | None:
    """The keyframe patch of ``box`` (small-image coordinates) and the box center's offset from it.

    None when the patch is too small or too flat to match.
    """
    height, width = gray.shape[:2]
    x1, y1 = max(0, round(box.x1)), max(0, round(box.y1))
    x2, y2 = min(width, round(box.x2)), min(height, round(box.y2))
    if x2 - x1 < 6 or y2 - y1 < 6:
        return None
    patch = gray[y1:y2, x1:x2].copy()
    if float(patch.std()) < 2.0:
        return None
    cx, cy = box.center
    return patch, (cx - (x1 + x2) / 2.0, cy - (y1 + y2) / 2.0)


_Fit = tuple[tuple[float, float], tuple[float, float], float, float, float]


def _similarity(p0: list[list[float]], p1: list[list[float]]) -> _Fit | None:
    """Robust similarity fit between matched points: (c0, c1, scale, inlier share, residual).

    The median shift picks the inliers (residual within 3 median residuals, at least 0.5 px and at most
    ``_MAX_RESIDUAL``); their centroids and the least-squares scale about them give the similarity
    transform (no rotation). None when fewer than 3 points agree or the fit stays loose.
    Plain Python: for the few points of one box it is several times faster than numpy calls.
    """
    dx = [b[0] - a[0] for a, b in zip(p0, p1, strict=True)]
    dy = [b[1] - a[1] for a, b in zip(p0, p1, strict=True)]
    mx, my = statistics.median(dx), statistics.median(dy)
    residual = [math.hypot(x - mx, y - my) for x, y in zip(dx, dy, strict=True)]
    limit = min(_MAX_RESIDUAL, max(0.5, 3.0 * statistics.median(residual)))
    keep = [i for i, r in enumerate(residual) if r <= limit]
    count = len(keep)
    if count < _MIN_POINTS:
        return None
    a = [p0[i] for i in keep]
    b = [p1[i] for i in keep]
    c0 = (sum(p[0] for p in a) / count, sum(p[1] for p in a) / count)
    c1 = (sum(p[0] for p in b) / count, sum(p[1] for p in b) / count)
    ax = [p[0] - c0[0] for p in a]
    ay = [p[1] - c0[1] for p in a]
    bx = [p[0] - c1[0] for p in b]
    by = [p[1] - c1[1] for p in b]
    spread = sum(x * x for x in ax) + sum(y * y for y in ay)
    cross = sum(x * u for x, u in zip(ax, bx, strict=True)) + sum(y * v for y, v in zip(ay, by, strict=True))
    scale = cross / spread if spread > _MIN_POINTS * 2.25 else 1.0
    scale = min(1.25, max(0.8, scale))
    error = sum(
        (u - scale * x) ** 2 + (v - scale * y) ** 2 for x, y, u, v in zip(ax, ay, bx, by, strict=True)
    )
    rms = math.sqrt(error / count)
    if rms > _MAX_RESIDUAL / 2.0:
        return None  # no coherent motion: the points disagree
    return c0, c1, scale, count / len(p0), rms


def _refine_peak(res: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Sub-pixel offset of a correlation peak by a parabola through its neighbours."""

    def offset(minus: float, center: float, plus: float) -> float:
        denominator = minus - 2.0 * center + plus
        return (
            0.0 if abs(denominator) < 1e-9 else float(np.clip(0.5 * (minus - plus) / denominator, -0.5, 0.5))
        )

    dx = offset(res[y, x - 1], res[y, x], res[y, x + 1]) if 0 < x < res.shape[1] - 1 else 0.0
    dy = offset(res[y - 1, x], res[y, x], res[y + 1, x]) if 0 < y < res.shape[0] - 1 else 0.0
    return dx, dy


class RegionPropagator:
    """Carries the regions of one context from its keyframe to each new frame (not thread-safe)."""

    def __init__(
        self,
        mode: str = "flow",
        max_side: int = 320,
        growth_per_s: float = 0.1,
        half_life_s: float = 5.0,
        min_visible: float = 0.3,
        max_points: int = 8,
        window: int = 13,
        levels: int = 3,
    ):
        if mode not in PROPAGATION_MODES:
            raise ValueError(f"propagation mode must be one of {PROPAGATION_MODES}, got {mode!r}")
        self.mode = mode
        self.max_side = max_side
        self.growth_per_s = growth_per_s
        self.half_life_s = half_life_s
        self.min_visible = min_visible
        self.max_points = max_points
        self.window = (window, window)
        self.levels = levels
        self._state: _State | None = None

    def reset(self) -> None:
        """Forget the tracked context."""
        self._state = None

    def propagate(
        self,
        regions: Sequence[Region],
        keyframe: Frame | None,
        frame: Frame,
        keyframe_stamp_ns: int | None = None,
        key: object = None,
    ) -> list[PropagatedRegion]:
        """``regions`` (keyframe pixels, keyframe of the frame's size) carried to ``frame``.

        ``key`` names the context (e.g. the LVLM request id): tracking state is kept while it and the
        regions stay the same. Without a keyframe image the regions start from the current frame.
        """
        stamp = keyframe_stamp_ns if keyframe_stamp_ns is not None else (keyframe or frame).stamp_ns
        state_key = (key, stamp, tuple(regions), frame.image.shape[:2])
        state = self._state
        if state is None or state.key != state_key:
            state = self._state = self._start(state_key, regions, keyframe, frame, stamp)
        if state.output is not None and state.output_stamp == frame.stamp_ns:
            return state.output
        if frame.stamp_ns > state.ref_stamp:
            self._step(state, frame)
        state.output = self._emit(state, frame)
        state.output_stamp = frame.stamp_ns
        return state.output

    def _start(
        self, key: tuple, regions: Sequence[Region], keyframe: Frame | None, frame: Frame, stamp: int
    ) -> _State:
        usable = keyframe is not None and keyframe.image.shape[:2] == frame.image.shape[:2]
        reference = keyframe if usable else frame
        state = _State(key, stamp, reference.stamp_ns)
        state.tracks = [_Track(region, region.box) for region in regions]
        if not usable and self.mode != "static":  # motion since the keyframe unknown
            for track in state.tracks:
                track.quality = track.penalty = _NO_KEYFRAME_PENALTY
                track.method = "fallback"
        if self.mode == "static" or not state.tracks:
            return state
        gray, state.scale = small_gray(reference.image, self.max_side)
        for track in state.tracks:
            small = _to_small(track.core, state.scale)
            if self.mode == "flow":
                track.points = _features(gray, small, self.max_points)
            else:
                track.template = _template(gray, small)
        state.ref_gray = gray
        return state

    def _step(self, state: _State, frame: Frame) -> None:
        if self.mode == "flow" and state.tracks:
            self._flow_step(state, frame)
        elif self.mode == "template" and state.tracks:
            self._template_step(state, frame)
        state.ref_stamp = frame.stamp_ns

    def _flow_step(self, state: _State, frame: Frame) -> None:
        gray, _ = small_gray(frame.image, self.max_side)
        live = [t for t in state.tracks if not t.gone]
        counts = [len(t.points) for t in live]
        moved: dict[int, _Fit] = {}
        if sum(counts):
            p0 = np.concatenate([t.points for t in live if len(t.points)])
            lk = {"winSize": self.window, "maxLevel": self.levels, "criteria": _LK_CRITERIA}
            p1, status, _ = cv2.calcOpticalFlowPyrLK(state.ref_gray, gray, p0, None, **lk)
            old, new, ok = p0.reshape(-1, 2).tolist(), p1.reshape(-1, 2).tolist(), status.ravel().tolist()
            start = 0
            for index, (track, count) in enumerate(zip(live, counts, strict=True)):
                tracked = [i for i in range(start, start + count) if ok[i]]
                start += count
                if len(tracked) < _MIN_POINTS:
                    continue
                fit = _similarity([old[i] for i in tracked], [new[i] for i in tracked])
                if fit is not None:
                    moved[index] = (*fit[:3], fit[3] * len(tracked) / count, fit[4])
                    track.points = p1[tracked]
        shifts = [(c1[0] - c0[0], c1[1] - c0[1]) for c0, c1, *_ in moved.values()]
        common = np.median(np.array(shifts), axis=0) if shifts else None
        scale = state.scale
        for index, track in enumerate(live):
            fit = moved.get(index)
            if fit is not None:
                c0, c1, s, share, residual = fit
                small = _to_small(track.core, scale)
                track.core = Box(
                    c1[0] + s * (small.x1 - c0[0]),
                    c1[1] + s * (small.y1 - c0[1]),
                    c1[0] + s * (small.x2 - c0[0]),
                    c1[1] + s * (small.y2 - c0[1]),
                ).scale(1 / scale, 1 / scale)
                track.quality = share * track.penalty
                track.uncertainty = residual / scale
                track.method = "flow"
            elif common is not None:
                track.core = track.core.shift(float(common[0]) / scale, float(common[1]) / scale)
                self._failed(track, _SHARED_SHIFT_DECAY)
            else:
                self._failed(track, _STATIC_FALLBACK_DECAY)
            if fit is None or len(track.points) < max(_MIN_POINTS, self.max_points // 2):
                track.points = _features(gray, _to_small(track.core, scale), self.max_points)
        state.ref_gray = gray

    def _template_step(self, state: _State, frame: Frame) -> None:
        gray, scale = small_gray(frame.image, self.max_side)
        height, width = gray.shape[:2]
        for track in state.tracks:
            if track.gone or track.template is None:
                continue  # a flat or tiny patch cannot be matched: it stays where it is
            patch, (off_x, off_y) = track.template
            th, tw = patch.shape[:2]
            cx, cy = (c * scale for c in track.core.center)
            margin = max(8.0, 0.5 * max(tw, th))
            x0, y0 = max(0, int(cx - tw / 2 - margin)), max(0, int(cy - th / 2 - margin))
            x1, y1 = min(width, int(cx + tw / 2 + margin) + 1), min(height, int(cy + th / 2 + margin) + 1)
            if x1 - x0 < tw or y1 - y0 < th:
                self._failed(track, _STATIC_FALLBACK_DECAY)
                continue
            res = cv2.matchTemplate(gray[y0:y1, x0:x1], patch, cv2.TM_CCOEFF_NORMED)
            _, peak, _, (px, py) = cv2.minMaxLoc(res)
            if peak < _TEMPLATE_MIN_PEAK:
                self._failed(track, _STATIC_FALLBACK_DECAY)
                continue
            # a (near) perfect correlation is an exact integer alignment; refine only the others
            dx, dy = (0.0, 0.0) if peak >= _EXACT_PEAK else _refine_peak(res, px, py)
            new_cx = (x0 + px + dx + tw / 2.0 + off_x) / scale
            new_cy = (y0 + py + dy + th / 2.0 + off_y) / scale
            track.core = Box.from_center(new_cx, new_cy, track.core.width, track.core.height)
            track.quality = float(min(1.0, peak)) * track.penalty
            track.method = "template"

    @staticmethod
    def _failed(track: _Track, decay: float) -> None:
        track.penalty *= decay
        track.quality = track.penalty
        track.method = "fallback"

    def _emit(self, state: _State, frame: Frame) -> list[PropagatedRegion]:
        width, height = frame.width, frame.height
        age_s = max(0.0, (frame.stamp_ns - state.keyframe_stamp) / NS_PER_S)
        decay = 0.5 ** (age_s / self.half_life_s) if self.half_life_s > 0 else 1.0
        out: list[PropagatedRegion] = []
        for track in state.tracks:
            core = track.core
            if (
                track.gone
                or not core.is_valid(1.0)
                or core.clip(width, height).area < self.min_visible * core.area
            ):
                track.gone = True  # left the frame
                continue
            tracked = track.method in ("flow", "template")
            growth = self.growth_per_s * age_s * (_TRACKED_GROWTH if tracked else 1.0)
            pad = 2.0 * track.uncertainty
            grown = core.grow(1.0 + growth)
            box = Box(grown.x1 - pad, grown.y1 - pad, grown.x2 + pad, grown.y2 + pad).clip(width, height)
            if not box.is_valid(2.0):
                continue
            confidence = float(track.source.score * track.quality * decay)
            source_center = track.source.box.center
            shift = (core.center[0] - source_center[0], core.center[1] - source_center[1])
            region = Region(box, track.source.label, confidence)
            out.append(PropagatedRegion(region, track.method, confidence, shift))
        return out
