"""Street furniture: the traffic light on its pole, roadside trees and the junction's road markings."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..core.types import Box
from . import street
from .camera import NEAR_M, Camera, bounding_box
from .ground import PAINT
from .signal import LIGHT_STATES

LIT_COLORS = {"red": (255, 45, 35), "yellow": (255, 205, 25), "green": (50, 240, 135)}
DARK_LAMP = (50, 50, 50)
HOUSING = (30, 30, 28)
BACKPLATE = (12, 12, 12)
POLE = (92, 94, 98)
TRUNK = (86, 64, 44)
CANOPY_COLORS = ((46, 92, 40), (60, 110, 48), (38, 78, 34))
SHIFT = 4  # sub-pixel bits of OpenCV drawing coordinates
ONE = 1 << SHIFT

HOUSING_HALF = (0.75 * street.LAMP_DIAMETER_M, 1.7 * street.LAMP_DIAMETER_M)  # (width, height) / 2
BACKPLATE_MARGIN_M = 0.25
LAMP_SPACING_M = 1.1 * street.LAMP_DIAMETER_M
TREE_SPACING_RANGE_M = (9.0, 16.0)
TREE_ZONE_M = (-40.0, 320.0)  # world z covered by trees (the ego stays within +-WRAP_M)
TREE_VIEW_M = 110.0


def _pts(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    pts = np.empty((len(xs), 2))
    pts[:, 0] = xs
    pts[:, 1] = ys
    pts *= ONE
    return np.rint(pts, out=pts).astype(np.int32)


def fill(img: np.ndarray, xs: np.ndarray, ys: np.ndarray, color: tuple[int, ...]) -> None:
    """Anti-aliased filled convex polygon at sub-pixel image coordinates."""
    cv2.fillConvexPoly(img, _pts(xs, ys), color, cv2.LINE_AA, SHIFT)


def disc(img: np.ndarray, x: float, y: float, radius: float, color: tuple[int, ...]) -> None:
    """Anti-aliased filled disc at sub-pixel centre and radius."""
    center = (round(x * ONE), round(y * ONE))
    cv2.circle(img, center, max(round(radius * ONE), 1), color, -1, cv2.LINE_AA, SHIFT)


def lamp(img: np.ndarray, x: float, y: float, radius: float, color: tuple[int, ...]) -> None:
    """A disc whose pixels are covered in proportion to their overlap, so its area is pi * radius**2."""
    height, width = img.shape[:2]
    x1, x2 = max(int(np.floor(x - radius - 1)), 0), min(int(np.ceil(x + radius + 2)), width)
    y1, y2 = max(int(np.floor(y - radius - 1)), 0), min(int(np.ceil(y + radius + 2)), height)
    if x1 >= x2 or y1 >= y2:
        return
    yy, xx = np.mgrid[y1:y2, x1:x2]
    alpha = np.clip(radius + 0.5 - np.hypot(xx - x, yy - y), 0.0, 1.0)[:, :, None]
    patch = img[y1:y2, x1:x2].astype(np.float32)
    img[y1:y2, x1:x2] = np.rint(patch + (np.array(color, np.float32) - patch) * alpha).astype(np.uint8)


def _quad(cam: Camera, x1: float, x2: float, y1: float, y2: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle facing the camera at distance ``z``, as image coordinates."""
    return cam.project(np.array([x1, x2, x2, x1]), np.array([y1, y1, y2, y2]), np.full(4, z))


@dataclass(frozen=True, slots=True)
class LightMount:
    """Where the signal head hangs: beside the pole, or on a mast arm over the road."""

    head_x: float
    head_y: float
    mast: bool

    @classmethod
    def draw(cls, rng: np.random.Generator) -> LightMount:
        """A seeded mount: half the clips side-mounted, half on a mast arm."""
        if rng.random() < 0.5:
            return cls(street.LIGHT_POLE_X - 0.8, float(rng.uniform(3.9, 4.5)), mast=False)
        return cls(float(rng.uniform(-0.8, 1.2)), float(rng.uniform(5.0, 5.6)), mast=True)


@dataclass(frozen=True, slots=True)
class LightView:
    """The traffic light projected at one distance: the box and the lamp discs (top to bottom)."""

    mount: LightMount
    distance: float
    box: Box
    lamp_centers: tuple[tuple[float, float], ...]
    lamp_radius: float


def _head(mount: LightMount, margin: float) -> tuple[float, float, float, float]:
    """(x1, x2, y1, y2) in metres of the housing grown by ``margin`` (the backplate)."""
    hw, hh = HOUSING_HALF
    return (
        mount.head_x - hw - margin,
        mount.head_x + hw + margin,
        mount.head_y - hh - margin,
        mount.head_y + hh + margin,
    )


def light_view(mount: LightMount, distance: float, cam: Camera) -> LightView:
    """Project the signal head at ``distance`` metres ahead."""
    xs, ys = _quad(cam, *_head(mount, BACKPLATE_MARGIN_M), distance)
    offsets = (LAMP_SPACING_M, 0.0, -LAMP_SPACING_M)
    cx, cy = cam.project(np.full(3, mount.head_x), mount.head_y + np.array(offsets), np.full(3, distance))
    radius = cam.pixels_per_metre(distance) * street.LAMP_DIAMETER_M / 2.0
    centers = tuple((float(x), float(y)) for x, y in zip(cx, cy, strict=True))
    return LightView(mount, distance, bounding_box(xs, ys), centers, radius)


def draw_light(img: np.ndarray, view: LightView, state: str, cam: Camera) -> None:
    """Pole, arm, backplate, housing and lamps; only the lamp of ``state`` is lit."""
    mount, z = view.mount, view.distance
    top = mount.head_y + HOUSING_HALF[1] + (0.6 if mount.mast else 0.3)
    fill(img, *_quad(cam, street.LIGHT_POLE_X - 0.1, street.LIGHT_POLE_X + 0.1, 0.0, top, z), POLE)
    if mount.mast:
        fill(img, *_quad(cam, mount.head_x, street.LIGHT_POLE_X, top - 0.18, top, z), POLE)
        fill(img, *_quad(cam, mount.head_x - 0.04, mount.head_x + 0.04, mount.head_y, top, z), POLE)
    else:
        fill(
            img,
            *_quad(cam, mount.head_x, street.LIGHT_POLE_X, mount.head_y - 0.06, mount.head_y + 0.06, z),
            POLE,
        )
    fill(img, *_quad(cam, *_head(mount, BACKPLATE_MARGIN_M), z), BACKPLATE)
    fill(img, *_quad(cam, *_head(mount, 0.0), z), HOUSING)
    for lamp_state, (x, y) in zip(LIGHT_STATES, view.lamp_centers, strict=True):
        color = LIT_COLORS[lamp_state] if lamp_state == state else DARK_LAMP
        lamp(img, x, y, view.lamp_radius, color)


class Grove:
    """Seeded roadside trees along both verges (none inside the junction): trunks and canopy blobs."""

    BLOBS = 3

    def __init__(self, rng: np.random.Generator, light_z: float) -> None:
        xs, zs, heights, blobs = [], [], [], []
        for side_x in (
            street.ROAD_RIGHT_X + street.SIDEWALK_WIDTH_M + 1.5,
            street.ROAD_LEFT_X - street.SIDEWALK_WIDTH_M - 1.5,
        ):
            z = TREE_ZONE_M[0] + float(rng.uniform(0.0, TREE_SPACING_RANGE_M[1]))
            while z < TREE_ZONE_M[1]:
                x = side_x + float(rng.uniform(-0.6, 0.6))
                height = float(rng.uniform(2.2, 3.0))
                blob = rng.uniform(
                    (-0.7, 0.0, 1.0, 0.0), (0.7, 1.6, 1.7, len(CANOPY_COLORS)), (self.BLOBS, 4)
                )
                if not light_z + street.STOP_LINE[0] - 3.0 < z < light_z + 2.0:
                    xs.append(x)
                    zs.append(z)
                    heights.append(height)
                    blobs.append(blob)
                z += float(rng.uniform(*TREE_SPACING_RANGE_M))
        self.x, self.z = np.array(xs), np.array(zs)
        trunk_x = self.x[:, None] + np.array([-0.15, 0.15, 0.15, -0.15])
        trunk_y = (np.array(heights)[:, None] + 0.5) * np.array([0.0, 0.0, 1.0, 1.0])
        blobs_arr = np.array(blobs)
        canopy_y = np.array(heights)[:, None] + 0.7 * blobs_arr[:, :, 2] + blobs_arr[:, :, 1]
        self.points_x = np.hstack([trunk_x, self.x[:, None] + blobs_arr[:, :, 0]])
        self.points_y = np.hstack([trunk_y, canopy_y])
        self.radii = blobs_arr[:, :, 2]
        self.colors = blobs_arr[:, :, 3].astype(int)

    def views(
        self, ego_z: float, cam: Camera
    ) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(distance, image xs, image ys, radii in pixels, colour indices) of each tree in view."""
        z = self.z - ego_z
        half = (cam.cx + 0.5) * z / cam.focal
        index = np.flatnonzero((z > 2.0) & (z < TREE_VIEW_M) & (np.abs(self.x) - 2.5 < half))
        if index.size == 0:
            return []
        depth = np.repeat(z[index, None], 4 + self.BLOBS, axis=1)
        px, py = cam.project(self.points_x[index], self.points_y[index], depth)
        radii = self.radii[index] * (cam.focal / z[index, None])
        return [(float(z[i]), px[k], py[k], radii[k], self.colors[i]) for k, i in enumerate(index)]


def draw_tree(img: np.ndarray, view: tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Trunk then canopy blobs of one tree view (from ``Grove.views``)."""
    _, px, py, radii, colors = view
    fill(img, px[:4], py[:4], TRUNK)
    for x, y, radius, color in zip(px[4:], py[4:], radii, colors, strict=True):
        disc(img, float(x), float(y), float(radius), CANOPY_COLORS[color])


def _ground_quad(img: np.ndarray, cam: Camera, x1: float, x2: float, z1: float, z2: float) -> None:
    z1, z2 = max(z1, NEAR_M), max(z2, NEAR_M)
    if z2 - z1 <= 0.0:
        return
    xs, ys = cam.project(np.array([x1, x2, x2, x1]), np.zeros(4), np.array([z1, z1, z2, z2]))
    fill(img, xs, ys, PAINT)


def draw_markings(img: np.ndarray, light_distance: float, cam: Camera) -> None:
    """Stop line and the cross street's centre line and lane dashes."""
    d = light_distance
    _ground_quad(
        img, cam, street.CENTER_LINE_X, street.ROAD_RIGHT_X, d + street.STOP_LINE[0], d + street.STOP_LINE[1]
    )
    z = d + street.CROSS_CENTER_OFFSET
    if z > NEAR_M:
        half = cam.half_width_at(z) + 1.0
        for dz in (-0.2, 0.2):
            _ground_quad(img, cam, -half, half, z + dz - 0.06, z + dz + 0.06)
    for lane_line in (-21.5, -12.5):
        z = d + lane_line
        if z <= NEAR_M:
            continue
        half = cam.half_width_at(z) + 3.0
        for start in np.arange(np.floor(-half / 6.0) * 6.0, half, 6.0):
            _ground_quad(img, cam, start, start + 3.0, z - 0.06, z + 0.06)
