"""The far scenery above the horizon: sky gradient, clouds, a hazy skyline and a tree line.

It is painted once per clip on a canvas larger than the frame and magnified about the vanishing point as
the ego drives on (scenery about ``DEPTH_M`` away), so it expands slowly like distant buildings do.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .camera import Camera
from .ground import HAZE_COLOR

DEPTH_M = 120.0
MARGIN = 1.2  # canvas size / frame size, room for zooming out after the approach wraps back
SKY_TOP = (70, 120, 195)
CLOUD = (236, 238, 242)
BUILDING_COLORS = ((150, 150, 156), (178, 168, 152), (122, 116, 122), (192, 182, 166), (140, 128, 118))
TREE_COLORS = ((52, 82, 40), (66, 96, 48), (44, 70, 36))


class Backdrop:
    """Seeded far scenery for one clip's camera."""

    def __init__(self, camera: Camera, rng: np.random.Generator, rows: int) -> None:
        self.camera = camera
        self.rows = rows  # frame rows it fills (those above the ground)
        self.x0 = camera.cx - MARGIN * (camera.cx + 0.5)
        self.y0 = camera.horizon - MARGIN * (camera.horizon + 1.0)
        width = int(math.ceil(MARGIN * camera.width)) + 2
        height = int(math.ceil(camera.horizon - self.y0)) + 4
        self.canvas = self._paint(rng, width, height, camera.horizon - self.y0)

    def _paint(self, rng: np.random.Generator, width: int, height: int, horizon: float) -> np.ndarray:
        h = self.camera.height  # scene proportions follow the frame height
        t = np.clip(np.arange(height, dtype=np.float32) / max(horizon, 1.0), 0.0, 1.0) ** 0.6
        sky = np.array(SKY_TOP, np.float32) * (1 - t[:, None]) + np.array(HAZE_COLOR, np.float32) * t[:, None]
        canvas = np.repeat(sky[:, None, :], width, axis=1)
        clouds = np.zeros((height, width), np.float32)
        for _ in range(int(rng.integers(2, 7))):
            center = (int(rng.uniform(0, width)), int(rng.uniform(0.05, 0.6) * horizon))
            axes = (max(int(rng.uniform(0.05, 0.18) * width), 1), max(int(rng.uniform(0.01, 0.04) * h), 1))
            cv2.ellipse(clouds, center, axes, 0.0, 0.0, 360.0, float(rng.uniform(0.4, 0.9)), -1)
        clouds = cv2.GaussianBlur(clouds, (0, 0), max(0.01 * width, 0.5))[:, :, None]
        canvas += (np.array(CLOUD, np.float32) - canvas) * clouds
        x = 0.0
        while x < width:
            bw = rng.uniform(0.03, 0.10) * width
            bh = rng.uniform(0.03, 0.20) * h
            color = np.array(BUILDING_COLORS[int(rng.integers(len(BUILDING_COLORS)))], np.float32)
            x1, x2 = int(x), int(min(x + bw, width))
            y1 = int(max(horizon - bh, 0))
            block = canvas[y1 : int(horizon) + 1, x1:x2]
            block[:] = color
            self._windows(rng, block, color)
            x += bw + rng.uniform(0.0, 0.03) * width
        for _ in range(int(width / max(0.02 * width, 1.0))):
            center = (int(rng.uniform(0, width)), int(horizon))
            axes = (max(int(rng.uniform(0.01, 0.03) * width), 1), max(int(rng.uniform(0.01, 0.035) * h), 1))
            color = tuple(float(c) for c in TREE_COLORS[int(rng.integers(len(TREE_COLORS)))])
            cv2.ellipse(canvas, center, axes, 0.0, 180.0, 360.0, color, -1, cv2.LINE_AA)
        rows = np.arange(height, dtype=np.float32)
        haze = 0.75 * np.clip((rows - 0.4 * horizon) / max(0.6 * horizon, 1.0), 0.0, 1.0) ** 1.5
        canvas += (np.array(HAZE_COLOR, np.float32) - canvas) * haze[:, None, None]
        canvas += rng.normal(0.0, 2.0, canvas.shape).astype(np.float32)
        return np.clip(canvas, 0, 255).astype(np.uint8)

    @staticmethod
    def _windows(rng: np.random.Generator, block: np.ndarray, color: np.ndarray) -> None:
        rows, cols = block.shape[:2]
        step_r, step_c = max(rows // 8, 3), max(cols // 6, 3)
        dark = color * 0.6
        lit = np.array((225, 215, 160), np.float32)
        for r in range(step_r // 2, rows - step_r // 2, step_r):
            for c in range(step_c // 3, cols - step_c // 2, step_c):
                block[r : r + max(step_r // 2, 1), c : c + max(step_c // 2, 1)] = (
                    lit if rng.random() < 0.1 else dark
                )

    def render(self, out: np.ndarray, ego_z: float) -> None:
        """Fill ``out``'s top rows with the scenery seen from ``ego_z`` (magnified as the ego nears it)."""
        cam = self.camera
        zoom = DEPTH_M / (DEPTH_M - ego_z)
        # Canvas coordinates of the frame's pixel edges; whole canvas pixels keep this a plain resize.
        x1 = round(cam.cx + (-0.5 - cam.cx) / zoom - self.x0)
        x2 = round(cam.cx + (cam.width - 0.5 - cam.cx) / zoom - self.x0)
        y1 = round(cam.horizon + (-0.5 - cam.horizon) / zoom - self.y0)
        y2 = round(cam.horizon + (self.rows - 0.5 - cam.horizon) / zoom - self.y0)
        region = self.canvas[max(y1, 0) : max(y2, y1 + 1), max(x1, 0) : max(x2, x1 + 1)]
        out[: self.rows] = cv2.resize(region, (cam.width, self.rows), interpolation=cv2.INTER_LINEAR)
