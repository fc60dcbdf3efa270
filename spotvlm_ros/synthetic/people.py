"""Pedestrians drawn as small walking figures seen from the side: legs, arms, torso and head."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.types import Box
from .camera import NEAR_M, Camera, bounding_box
from .props import ONE, SHIFT, disc, fill
from .scene import Pedestrian

STRIDE_M = 1.4  # distance of one full walking cycle
HIP_Y, SHOULDER_Y, HEAD_Y = 0.9, 1.42, 1.6
HEAD_R = 0.11
LEG_W, ARM_W = 0.13, 0.09
TORSO_HALF_W = 0.13
SWING_M = 0.3


@dataclass(frozen=True, slots=True)
class Figure:
    """A pedestrian's strokes in image pixels, ready to paint."""

    strokes: tuple[
        tuple[float, float, float, float, float, tuple[int, int, int]], ...
    ]  # x1 y1 x2 y2 width colour
    torso: tuple[np.ndarray, np.ndarray, tuple[int, int, int]]
    head: tuple[float, float, float, tuple[int, int, int]]
    box: Box


def _darker(color: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(c * 0.75) for c in color)


def figure(person: Pedestrian, ego_z: float, cam: Camera) -> Figure | None:
    """The pedestrian's figure at its current stride; None when behind the camera."""
    z = person.z - ego_z
    if z <= NEAR_M:
        return None
    shirt, trousers, skin = person.colors
    swing = SWING_M * math.sin(2.0 * math.pi * person.walked_m / STRIDE_M) if person.walking else 0.06
    d = person.direction

    def pt(x: float, y: float) -> tuple[float, float]:
        px, py = cam.project(np.array(person.x + x), np.array(y), np.array(z))
        return float(px), float(py)

    scale = cam.pixels_per_metre(z)
    strokes = []
    for sign, leg_color, arm_color in ((-1, _darker(trousers), _darker(shirt)), (1, trousers, shirt)):
        hip, foot = pt(0.0, HIP_Y), pt(d * sign * swing, 0.05)
        shoulder, hand = pt(0.0, SHOULDER_Y), pt(-d * sign * swing * 0.8, SHOULDER_Y - 0.6)
        strokes.append((*hip, *foot, max(round(LEG_W * scale), 1), leg_color))
        strokes.append((*shoulder, *hand, max(round(ARM_W * scale), 1), arm_color))
    tx, ty = cam.project(
        person.x + np.array([-TORSO_HALF_W, TORSO_HALF_W, TORSO_HALF_W, -TORSO_HALF_W]),
        np.array([HIP_Y - 0.05, HIP_Y - 0.05, SHOULDER_Y + 0.04, SHOULDER_Y + 0.04]),
        np.full(4, z),
    )
    hx, hy = pt(0.0, HEAD_Y)
    head_r = HEAD_R * scale
    # A stroke of drawn width w reaches w/2 beyond its end points, plus its anti-aliased rim.
    xs = [v for s in strokes for v in (min(s[0], s[2]) - s[4] / 2 - 0.5, max(s[0], s[2]) + s[4] / 2 + 0.5)]
    ys = [v for s in strokes for v in (min(s[1], s[3]) - s[4] / 2 - 0.5, max(s[1], s[3]) + s[4] / 2 + 0.5)]
    xs += [hx - head_r - 0.5, hx + head_r + 0.5, *tx.tolist()]
    ys += [hy - head_r - 0.5, hy + head_r + 0.5, *ty.tolist()]
    box = bounding_box(np.array(xs), np.array(ys))
    strokes_back, strokes_front = strokes[:2], strokes[2:]
    return Figure(tuple(strokes_back + strokes_front), (tx, ty, shirt), (hx, hy, head_r, skin), box)


def draw_figure(img: np.ndarray, fig: Figure) -> None:
    """Back limbs, torso, front limbs, head."""
    for index, (x1, y1, x2, y2, width, color) in enumerate(fig.strokes):
        if index == 2:
            fill(img, *fig.torso)
        p1 = (round(x1 * ONE), round(y1 * ONE))
        p2 = (round(x2 * ONE), round(y2 * ONE))
        cv2.line(img, p1, p2, color, width, cv2.LINE_AA, SHIFT)
    disc(img, *fig.head)
