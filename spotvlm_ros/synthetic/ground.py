"""The road surface: a seeded ground texture in road-plane metres, mapped into the image each frame.

The texture holds one 16 m period of the street's cross-sections (plain road, junction, crosswalk), each
at three blur levels; every image row below the horizon sees one distance ahead, so a frame is a single
``cv2.remap`` whose rows pick the cross-section and blur level of their distance. Texture, dashes and
kerbs therefore move with the ego exactly like a flat road under a forward-moving camera.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from . import street
from .camera import Camera

TEXEL_M = 1.0 / 32.0
SUBTEXELS = 32  # cv2.INTER_TAB_SIZE: fixed-point remap resolution
PERIOD_M = street.WRAP_M  # texture period along the road
HALF_WIDTH_M = 16.0
ROWS = round(PERIOD_M / TEXEL_M)
COLS = round(2 * HALF_WIDTH_M / TEXEL_M)
PLAIN, JUNCTION, CROSSWALK = 0, 1, 2
VARIANTS = 3
LEVEL_BLURS = ((1, 1), (3, 9), (5, 33))  # (x, z) box-blur kernels in texels
LEVEL_ROW_STEP_M = (0.07, 0.35)  # depth covered by one image row above which the next level is used
SIDEWALK_TILE_M = PERIOD_M / 8.0
HAZE_START_M = 60.0
HAZE_SCALE_M = 140.0
HAZE_COLOR = (188, 196, 202)

ASPHALT = (80, 80, 84)
SIDEWALK = (160, 157, 150)
KERB = (192, 190, 182)
GRASS = (86, 108, 58)
PAINT = (226, 226, 220)


def _column_x() -> np.ndarray:
    return -HALF_WIDTH_M + (np.arange(COLS) + 0.5) * TEXEL_M


def _row_z() -> np.ndarray:
    return (np.arange(ROWS) + 0.5) * TEXEL_M


def _cross_section(variant: int) -> np.ndarray:
    """Base colours (ROWS x COLS x 3 float) of one cross-section of the street."""
    x, z = _column_x()[None, :], _row_z()[:, None]
    img = np.empty((ROWS, COLS, 3), np.float32)
    img[:] = GRASS
    road = (x >= street.ROAD_LEFT_X) & (x <= street.ROAD_RIGHT_X)
    if variant == JUNCTION:
        img[:] = ASPHALT
        return img
    sidewalk = ((x >= street.ROAD_LEFT_X - street.SIDEWALK_WIDTH_M) & (x < street.ROAD_LEFT_X)) | (
        (x > street.ROAD_RIGHT_X) & (x <= street.ROAD_RIGHT_X + street.SIDEWALK_WIDTH_M)
    )
    kerb = ((x >= street.ROAD_LEFT_X - 0.2) & (x < street.ROAD_LEFT_X)) | (
        (x > street.ROAD_RIGHT_X) & (x <= street.ROAD_RIGHT_X + 0.2)
    )
    seams = np.broadcast_to((z % SIDEWALK_TILE_M) < 0.05, (ROWS, COLS))
    img[np.broadcast_to(sidewalk, (ROWS, COLS))] = SIDEWALK
    img[seams & sidewalk & ~kerb] = np.array(SIDEWALK, np.float32) * 0.8
    img[np.broadcast_to(kerb, (ROWS, COLS))] = KERB
    img[np.broadcast_to(road, (ROWS, COLS))] = ASPHALT
    if variant == CROSSWALK:
        bars = road & (((x - street.ROAD_LEFT_X) % 1.0) >= 0.25) & (((x - street.ROAD_LEFT_X) % 1.0) < 0.75)
        img[np.broadcast_to(bars, (ROWS, COLS))] = PAINT
        return img
    edge = (np.abs(x - (street.ROAD_LEFT_X + 0.25)) < 0.075) | (
        np.abs(x - (street.ROAD_RIGHT_X - 0.25)) < 0.075
    )
    img[np.broadcast_to(edge, (ROWS, COLS))] = PAINT
    dashes = (np.abs(x - street.CENTER_LINE_X) < 0.075) & ((z % street.DASH_PERIOD_M) < street.DASH_LENGTH_M)
    img[dashes] = PAINT
    return img


def _noise(rng: np.random.Generator) -> np.ndarray:
    """Seeded, periodic along the road, multi-scale brightness noise (ROWS x COLS, about +-10)."""
    fine = rng.normal(0.0, 6.0, (ROWS, COLS)).astype(np.float32)
    coarse = rng.normal(0.0, 5.0, (ROWS // 16, COLS // 16)).astype(np.float32)
    coarse = cv2.resize(np.vstack([coarse, coarse[:1]]), (COLS, ROWS + 16), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(fine, (3, 3), 0.8) + coarse[:ROWS]


def _blur_periodic(img: np.ndarray, kx: int, kz: int) -> np.ndarray:
    if kx == 1 and kz == 1:
        return img
    pad = kz
    padded = np.vstack([img[-pad:], img, img[:pad]])
    blurred = cv2.blur(padded, (kx, kz), borderType=cv2.BORDER_REPLICATE)
    return blurred[pad:-pad]


def build_texture(rng: np.random.Generator) -> np.ndarray:
    """The ground texture: blocks (level-major, then variant) side by side, uint8 RGB."""
    noise = _noise(rng)[:, :, None]
    texture = np.empty((ROWS, COLS * VARIANTS * len(LEVEL_BLURS), 3), np.uint8)
    for variant in range(VARIANTS):
        section = np.clip(_cross_section(variant) + noise, 0, 255).astype(np.uint8)
        for level, (kx, kz) in enumerate(LEVEL_BLURS):
            block = level * VARIANTS + variant
            texture[:, block * COLS : (block + 1) * COLS] = _blur_periodic(section, kx, kz)
    return texture


class GroundRenderer:
    """Draws the ground of one clip's camera into the rows below the horizon."""

    def __init__(self, camera: Camera, texture: np.ndarray) -> None:
        self.camera = camera
        self.texture = texture
        self.first_row = int(math.floor(camera.horizon)) + 1
        rows = np.arange(self.first_row, camera.height, dtype=np.float64)
        self.depth = camera.ground_depth(rows)
        cols = np.arange(camera.width, dtype=np.float64)
        x_m = (cols[None, :] - camera.cx) * (self.depth[:, None] / camera.focal)
        base_x = np.clip((x_m + HALF_WIDTH_M) / TEXEL_M - 0.5, 0.0, COLS - 1.001)
        # OpenCV's fixed-point remap maps: integer texel and 1/32 texel fraction (INTER_TAB_SIZE).
        # Rows pick their blur level by depth (fixed) and their cross-section per frame (an added offset).
        fixed_x = np.rint(base_x * SUBTEXELS).astype(np.int32)
        row_step = self.depth**2 / (camera.focal * camera.mount_height)
        level = np.searchsorted(np.array(LEVEL_ROW_STEP_M), row_step)
        self._texel = np.empty(fixed_x.shape + (2,), np.int16)
        self._texel[:, :, 0] = fixed_x // SUBTEXELS + (level * VARIANTS * COLS)[:, None]
        self._fraction_x = (fixed_x % SUBTEXELS).astype(np.uint16)
        haze = 1.0 - np.exp(-np.maximum(self.depth - HAZE_START_M, 0.0) / HAZE_SCALE_M)
        self._haze_rows = int(np.count_nonzero(haze > 0.01))  # rows nearest the horizon come first
        self._haze = haze[: self._haze_rows, None, None].astype(np.float32)
        self._haze_color = np.array(HAZE_COLOR, np.float32)

    def _variants(self, light_distance: float) -> np.ndarray:
        offset = self.depth - light_distance
        variant = np.full(self.depth.shape, PLAIN)
        for near, far, kind in (
            (*street.CROSS_STREET, JUNCTION),
            (*street.FAR_CROSSWALK, CROSSWALK),
            (*street.NEAR_CROSSWALK, CROSSWALK),
        ):
            variant[(offset >= near) & (offset <= far)] = kind
        return variant

    def render(self, out: np.ndarray, ego_z: float, light_distance: float) -> None:
        """Fill ``out``'s rows from ``first_row`` down with the ground seen from ``ego_z``."""
        fixed_y = np.rint((((self.depth + ego_z) / TEXEL_M - 0.5) % ROWS) * SUBTEXELS).astype(np.int32)
        texel = self._texel.copy()
        variant = self._variants(light_distance)
        rows = np.flatnonzero(variant != PLAIN)
        texel[rows, :, 0] += (variant[rows] * COLS).astype(np.int16)[:, None]
        texel[:, :, 1] = (fixed_y // SUBTEXELS)[:, None]
        fraction = self._fraction_x + ((fixed_y % SUBTEXELS) * SUBTEXELS).astype(np.uint16)[:, None]
        ground = cv2.remap(self.texture, texel, fraction, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        if self._haze_rows:
            band = ground[: self._haze_rows].astype(np.float32)
            band += (self._haze_color - band) * self._haze
            ground[: self._haze_rows] = band.astype(np.uint8)
        out[self.first_row :] = ground
