"""The ego camera of the synthetic world: a level pinhole camera looking down the road.

World axes: ``x`` to the right, ``y`` up from the road surface, ``z`` forward along the road. Points given
to the camera are ego-relative (``z`` = distance ahead of the camera); image ``x`` grows to the right and
image ``y`` downwards, with pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.types import Box

FOCAL_PER_WIDTH = 1.4  # focal length in pixels per pixel of image width (about 39 degrees field of view)
HORIZON_PER_HEIGHT = 0.40  # image row of the horizon, as a fraction of the image height
MOUNT_HEIGHT_M = 1.8  # camera height above the road (roof-mounted)
NEAR_M = 0.5  # points closer than this are behind the near plane


@dataclass(frozen=True, slots=True)
class Camera:
    """Pinhole projection of ego-relative metres into image pixels."""

    width: int
    height: int
    focal: float
    cx: float
    horizon: float
    mount_height: float = MOUNT_HEIGHT_M

    @classmethod
    def for_image(cls, width: int, height: int) -> Camera:
        """The camera of a ``width`` x ``height`` image; geometry scales with the width."""
        return cls(width, height, FOCAL_PER_WIDTH * width, width / 2.0 - 0.5, HORIZON_PER_HEIGHT * height)

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image coordinates of points (arrays of equal shape; ``z`` must exceed the near plane)."""
        inv = self.focal / z
        return self.cx + x * inv, self.horizon - (y - self.mount_height) * inv

    def pixels_per_metre(self, z: float) -> float:
        """Image size of one metre at distance ``z`` (perpendicular to the optical axis)."""
        return self.focal / z

    def ground_depth(self, rows: np.ndarray) -> np.ndarray:
        """Distance ahead of the ground point seen at each image row below the horizon."""
        return self.focal * self.mount_height / (rows - self.horizon)

    def half_width_at(self, z: float) -> float:
        """Half the width in metres that the image spans at distance ``z``."""
        return (self.cx + 0.5) * z / self.focal


def bounding_box(xs: np.ndarray, ys: np.ndarray, margin: float = 1.0) -> Box:
    """Pixel-edge box around drawn points (pixel centres), grown by ``margin`` for anti-aliased edges."""
    return Box(
        float(xs.min()) + 0.5 - margin,
        float(ys.min()) + 0.5 - margin,
        float(xs.max()) + 0.5 + margin,
        float(ys.max()) + 0.5 + margin,
    )
