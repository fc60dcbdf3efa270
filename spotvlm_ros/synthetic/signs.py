"""Speed-limit signs along the right verge: placed by distance driven, legible to the LVLM, remembered after.

Signs stand on the far side of the right sidewalk at distances along the ego's odometer (the approach
to the junction wraps, the odometer does not). A sign becomes the speed limit when it comes within
``READ_M`` of the camera (while it is in view), and stays the limit after it has passed out of view,
until the next sign does the same; before a drive's first sign the answer is ``NO_LIMIT``. The plate is
small: about 24-38 px wide in the 320 px frame while it is posted and in view, so about 17-27 px at the
LVLM's 224 px input (digits 8-13 px tall, legible) and 8-13 px at the SVLM's 112 px (digits 4-6 px tall,
a blur). Measured with a 0.75 m plate (digits 5-8 px tall at 224 px): a trained LVLM answered ``none``
on every frame with a sign in view and read enlarged crops of it at chance, so the plate is 1.3 m.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..core.types import Box
from . import street
from .camera import NEAR_M, Camera

# each one token of the demo models' tokenizer, and told apart at 8-13 px: with 30/50/80 a trained LVLM
# that found every posted sign read 3, 5 and 8 as one another (5 right of 17 in-view frames)
SPEED_LIMITS = ("10", "40", "90")
NO_LIMIT = "none"  # the answer before a drive's first sign
SIGN_X_M = street.ROAD_RIGHT_X + 3.0  # plate centre: beyond the right sidewalk's kerb
SIGN_Y_M = 2.3  # plate centre above the road
PLATE_M = 1.3  # plate diameter
READ_M = 24.0  # a sign in view within this distance is posted (its value becomes the limit)
FIRST_SIGN_M = (25.0, 35.0)  # odometer position of a drive's first sign
SIGN_SPACING_M = (30.0, 60.0)  # between consecutive signs
SIGNS_PER_DRIVE = 64  # more than any drive passes (the ego creeps at 1.2-2.2 m/s)
TEXTURE_PX = 96
DIGITS_W, DIGITS_H = 0.66, 0.5  # the digits' box, as shares of the plate
POST = (120, 122, 126)


@dataclass(frozen=True, slots=True)
class SpeedSigns:
    """A drive's signs: odometer positions (increasing) and the limit each one posts."""

    positions: tuple[float, ...]
    values: tuple[str, ...]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> SpeedSigns:
        """Seeded signs: the first 25-35 m ahead, then every 30-60 m, each a different limit than the last."""
        positions, values = [], []
        position = float(rng.uniform(*FIRST_SIGN_M))
        value = SPEED_LIMITS[int(rng.integers(len(SPEED_LIMITS)))]
        for _ in range(SIGNS_PER_DRIVE):
            positions.append(position)
            values.append(value)
            position += float(rng.uniform(*SIGN_SPACING_M))
            others = [v for v in SPEED_LIMITS if v != value]
            value = others[int(rng.integers(len(others)))]
        return cls(tuple(positions), tuple(values))

    def nearest_ahead(self, odometer: float) -> int | None:
        """Index of the nearest sign still ahead of the camera (beyond the near plane), if any."""
        for index, position in enumerate(self.positions):
            if position - odometer > NEAR_M:
                return index
        return None

    def limit(self, odometer: float) -> str:
        """The posted limit: the value of the last sign that came within ``READ_M``, else ``NO_LIMIT``."""
        value = NO_LIMIT
        for position, posted in zip(self.positions, self.values, strict=True):
            if position - odometer > READ_M:
                break
            value = posted
        return value


@dataclass(frozen=True, slots=True)
class SignView:
    """A sign projected into the frame: its plate box (pixel edges, unclipped), distance and value."""

    value: str
    distance: float
    box: Box
    post_box: Box

    @property
    def posted(self) -> bool:
        """Within reading distance (its value is the limit from now on)."""
        return self.distance <= READ_M


def sign_view(signs: SpeedSigns, odometer: float, cam: Camera) -> SignView | None:
    """The nearest sign ahead as the camera sees it, or None when none is ahead or it is out of the frame."""
    index = signs.nearest_ahead(odometer)
    if index is None:
        return None
    z = signs.positions[index] - odometer
    half = PLATE_M / 2.0
    xs, ys = cam.project(
        np.array([SIGN_X_M - half, SIGN_X_M + half]),
        np.array([SIGN_Y_M + half, SIGN_Y_M - half]),
        np.full(2, z),
    )
    box = Box(float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1]))
    if box.x1 >= cam.width or box.x2 <= 0 or box.y2 <= 0 or box.y1 >= cam.height:
        return None
    px, py = cam.project(
        np.array([SIGN_X_M - 0.03, SIGN_X_M + 0.03]), np.array([SIGN_Y_M - half, 0.0]), np.full(2, z)
    )
    post = Box(float(px[0]), float(py[0]), float(px[1]), float(py[1]))
    return SignView(signs.values[index], z, box, post)


def visible_box(view: SignView | None, width: int, height: int) -> Box | None:
    """The plate's box clipped to the frame when it is posted and wholly in view, else None."""
    if view is None or not view.posted:
        return None
    box = view.box
    if box.x1 < 0 or box.y1 < 0 or box.x2 > width or box.y2 > height:
        return None
    return box


@lru_cache(maxsize=len(SPEED_LIMITS))
def _texture(value: str) -> np.ndarray:
    """RGBA plate of ``value``: white disc, red ring, black digits (TEXTURE_PX square)."""
    size = TEXTURE_PX
    img = np.zeros((size, size, 4), np.uint8)
    center, radius = (size // 2, size // 2), size // 2 - 1
    cv2.circle(img, center, radius, (215, 30, 35, 255), -1, cv2.LINE_AA)
    cv2.circle(img, center, round(radius * 0.74), (245, 245, 245, 255), -1, cv2.LINE_AA)
    font, scale, thickness = cv2.FONT_HERSHEY_DUPLEX, 2.0, 6
    (tw, th), base = cv2.getTextSize(value, font, scale, thickness)
    text = np.zeros((th + base + 8, tw + 8), np.uint8)
    cv2.putText(text, value, (4, th + 4), font, scale, 255, thickness, cv2.LINE_AA)
    text = text[: th + 8]  # digits only (no descender room)
    box_w, box_h = round(size * DIGITS_W), round(size * DIGITS_H)
    ink = cv2.resize(text, (box_w, box_h), interpolation=cv2.INTER_AREA).astype(np.float32)[:, :, None] / 255
    y0, x0 = (size - box_h) // 2, (size - box_w) // 2
    region = img[y0 : y0 + box_h, x0 : x0 + box_w].astype(np.float32)
    dark = np.array((15, 15, 15, 255), np.float32)
    img[y0 : y0 + box_h, x0 : x0 + box_w] = np.rint(region + (dark - region) * ink).astype(np.uint8)
    return img


def draw_sign(img: np.ndarray, view: SignView) -> None:
    """Paint the post and the plate (the plate texture shrunk to its projected size, alpha-blended)."""
    height, width = img.shape[:2]
    post = view.post_box
    x1, x2 = max(round(post.x1), 0), min(max(round(post.x2), round(post.x1) + 1), width)
    y1, y2 = max(round(post.y1), 0), min(round(post.y2), height)
    if x1 < x2 and y1 < y2:
        img[y1:y2, x1:x2] = POST
    box = view.box
    bx, by = round(box.x1), round(box.y1)
    size = max(round(box.x2) - bx, 2)
    plate = cv2.resize(_texture(view.value), (size, size), interpolation=cv2.INTER_AREA)
    sx1, sy1 = max(bx, 0), max(by, 0)
    sx2, sy2 = min(bx + size, width), min(by + size, height)
    if sx1 >= sx2 or sy1 >= sy2:
        return
    patch = plate[sy1 - by : sy2 - by, sx1 - bx : sx2 - bx].astype(np.float32)
    alpha = patch[:, :, 3:] / 255.0
    target = img[sy1:sy2, sx1:sx2].astype(np.float32)
    img[sy1:sy2, sx1:sx2] = np.rint(target + (patch[:, :, :3] - target) * alpha).astype(np.uint8)
