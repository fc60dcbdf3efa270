"""Cars drawn in perspective: a shaded body with hood, a cabin with glass, lights, plate and wheels.

A car is a list of flat convex parts in car coordinates (``x`` to its right, ``y`` up, ``z`` forward),
each facing one way; parts facing away from the camera are skipped, the rest are painted in a fixed order
that is correct for a convex body seen from outside and from above its hood.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.types import Box
from . import street
from .camera import NEAR_M, Camera, bounding_box
from .props import fill

HALF_W, HALF_L = street.CAR_WIDTH_M / 2.0, street.CAR_LENGTH_M / 2.0
BODY_Y = (0.28, 0.95)
CABIN_HALF_W = 0.78
WHEEL_R = 0.31
WHEEL_Z = (-1.4, 1.4)
FIXED_COLORS = {
    "shadow": (38, 38, 42),
    "tire": (20, 20, 20),
    "hub": (120, 120, 126),
    "glass": (38, 46, 56),
    "taillight": (190, 25, 25),
    "headlight": (240, 240, 215),
    "plate": (226, 226, 220),
    "grille": (34, 34, 38),
}
SHADE = {"rear": 0.9, "front": 0.9, "side": 0.74, "top": 1.12}
BACK, FRONT, LEFT, RIGHT = (0.0, -1.0), (0.0, 1.0), (-1.0, 0.0), (1.0, 0.0)


def _rect_z(z: float, x1: float, x2: float, y1: float, y2: float) -> np.ndarray:
    return np.array([[x1, y1, z], [x2, y1, z], [x2, y2, z], [x1, y2, z]])


def _rect_x(x: float, z1: float, z2: float, y1: float, y2: float) -> np.ndarray:
    return np.array([[x, y1, z1], [x, y1, z2], [x, y2, z2], [x, y2, z1]])


def _inset(quad: np.ndarray, u1: float, u2: float, v1: float, v2: float) -> np.ndarray:
    """Sub-quad of a quad (corners: bottom-left, bottom-right, top-right, top-left) in fractions."""
    bl, br, tr, tl = quad

    def at(u: float, v: float) -> np.ndarray:
        return (1 - v) * ((1 - u) * bl + u * br) + v * ((1 - u) * tl + u * tr)

    return np.array([at(u1, v1), at(u2, v1), at(u2, v2), at(u1, v2)])


def _disc_x(x: float, z: float, y: float, radius: float, n: int = 10) -> np.ndarray:
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([np.full(n, x), y + radius * np.sin(angles), z + radius * np.cos(angles)], axis=1)


def _build_parts() -> list[tuple[str, np.ndarray, tuple[float, float] | None]]:
    """(colour role, points N x 3, outward normal (x, z) or None when always facing the camera)."""
    y1, y2 = BODY_Y
    cabin_y = (y2, street.CAR_HEIGHT_M)
    w = CABIN_HALF_W
    cabin_rear = np.array([[-w, y2, -1.5], [w, y2, -1.5], [w, cabin_y[1], -1.15], [-w, cabin_y[1], -1.15]])
    cabin_front = np.array([[w, y2, 0.95], [-w, y2, 0.95], [-w, cabin_y[1], 0.45], [w, cabin_y[1], 0.45]])
    parts: list[tuple[str, np.ndarray, tuple[float, float] | None]] = [
        (
            "shadow",
            np.array([[-1.0, 0.01, -2.35], [1.0, 0.01, -2.35], [1.0, 0.01, 2.35], [-1.0, 0.01, 2.35]]),
            None,
        )
    ]
    for z, normal in ((WHEEL_Z[0], BACK), (WHEEL_Z[1], FRONT)):
        for x1, x2 in ((-HALF_W, -0.6), (0.6, HALF_W)):
            parts.append(("tire", _rect_z(z, x1, x2, 0.0, y1 + 0.02), normal))
    parts += [
        ("body:rear", _rect_z(-HALF_L, HALF_W, -HALF_W, y1, y2), BACK),
        ("body:front", _rect_z(HALF_L, -HALF_W, HALF_W, y1, y2), FRONT),
        ("body:side", _rect_x(-HALF_W, -HALF_L, HALF_L, y1, y2), LEFT),
        ("body:side", _rect_x(HALF_W, HALF_L, -HALF_L, y1, y2), RIGHT),
        (
            "body:top",
            np.array(
                [[-HALF_W, y2, -HALF_L], [HALF_W, y2, -HALF_L], [HALF_W, y2, HALF_L], [-HALF_W, y2, HALF_L]]
            ),
            None,
        ),
    ]
    for x, normal in ((-HALF_W - 0.01, LEFT), (HALF_W + 0.01, RIGHT)):
        for z in WHEEL_Z:
            parts.append(("tire", _disc_x(x, z, WHEEL_R, WHEEL_R), normal))
            parts.append(("hub", _disc_x(x, z, WHEEL_R, WHEEL_R * 0.45, 8), normal))
    left = np.array([cabin_rear[0], cabin_front[1], cabin_front[2], cabin_rear[3]])
    right = np.array([cabin_front[0], cabin_rear[1], cabin_rear[2], cabin_front[3]])
    parts += [
        ("body:rear", cabin_rear, BACK),
        ("body:front", cabin_front, FRONT),
        ("body:side", left, LEFT),
        ("body:side", right, RIGHT),
        ("glass", _inset(cabin_rear, 0.08, 0.92, 0.12, 0.88), BACK),
        ("glass", _inset(cabin_front, 0.06, 0.94, 0.1, 0.9), FRONT),
    ]
    for quad, normal in ((left, LEFT), (right, RIGHT)):
        parts.append(("glass", _inset(quad, 0.08, 0.5, 0.15, 0.85), normal))
        parts.append(("glass", _inset(quad, 0.55, 0.9, 0.15, 0.85), normal))
    for x1, x2 in ((-0.86, -0.55), (0.55, 0.86)):
        parts.append(("taillight", _rect_z(-HALF_L - 0.01, x2, x1, 0.7, 0.88), BACK))
        parts.append(("headlight", _rect_z(HALF_L + 0.01, x1, x2, 0.68, 0.84), FRONT))
    parts.append(("plate", _rect_z(-HALF_L - 0.01, 0.26, -0.26, 0.42, 0.58), BACK))
    parts.append(("grille", _rect_z(HALF_L + 0.01, -0.45, 0.45, 0.46, 0.64), FRONT))
    return parts


PARTS = _build_parts()
_POINTS = np.concatenate([points for _, points, _ in PARTS])
_SLICES = np.cumsum([0] + [len(points) for _, points, _ in PARTS])
_BOX = np.array(  # corners of the shadow's footprint up to the roof: everything drawn of a car
    [[x, y, z] for x in (-1.0, 1.0) for y in (0.0, street.CAR_HEIGHT_M) for z in (-2.35, 2.35)]
)


def _to_camera(
    points: np.ndarray, pose: street.Pose, ego_z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    lx, y, lz = points[:, 0], points[:, 1], points[:, 2]
    return pose.x + lx * c + lz * s, y, pose.z - ego_z - lx * s + lz * c


def car_box(pose: street.Pose, ego_z: float, cam: Camera) -> Box | None:
    """Pixel-edge box around everything drawn of the car; None when it reaches behind the camera."""
    x, y, z = _to_camera(_BOX, pose, ego_z)
    if z.min() <= NEAR_M:
        return None
    return bounding_box(*cam.project(x, y, z))


def _color(role: str, body: tuple[int, int, int]) -> tuple[int, int, int]:
    if role.startswith("body:"):
        shade = SHADE[role.split(":", 1)[1]]
        return tuple(min(int(c * shade), 255) for c in body)
    return FIXED_COLORS[role]


def draw_car(
    img: np.ndarray, pose: street.Pose, ego_z: float, color: tuple[int, int, int], cam: Camera
) -> None:
    """Paint the car's visible parts (nothing when it reaches behind the camera)."""
    x, y, z = _to_camera(_POINTS, pose, ego_z)
    if z.min() <= NEAR_M:
        return
    px, py = cam.project(x, y, z)
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    for (role, _, normal), start, stop in zip(PARTS, _SLICES[:-1], _SLICES[1:], strict=True):
        if normal is not None:
            nx, nz = normal[0] * c + normal[1] * s, -normal[0] * s + normal[1] * c
            if nx * x[start] + nz * z[start] >= 0.0:
                continue
        fill(img, px[start:stop], py[start:stop], _color(role, color))
