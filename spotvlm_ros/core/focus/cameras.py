"""Several cameras in front of one model: a mosaic layout, and boxes mapped back to their camera.

A model sees a camera set either as one image per camera or as a mosaic (a grid of tiles, one camera
per tile, each scaled to fit its tile and placed at the tile's top-left corner). A box a model returns
lies in pixels of the image it saw: :meth:`MosaicLayout.to_cameras` finds the tile under the box's
centre and converts the box into that camera's pixels (clipped to the tile); with one image per camera,
:func:`regions_to_cameras` reads the camera from a label that starts with its name (``CAM_FRONT: car``)
and otherwise assigns the box to the first image's camera. Regions carry their camera in ``frame_id``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..types import Region
from .views import resize

__all__ = [
    "CameraSetInput",
    "MosaicLayout",
    "Tile",
    "boxes_in",
    "camera_note",
    "camera_set_input",
    "compose_mosaic",
    "mosaic_layout",
    "regions_to_cameras",
    "split_camera_label",
]


@dataclass(frozen=True, slots=True)
class Tile:
    """Where one camera lies in a mosaic: top-left corner, and mosaic pixels per camera pixel."""

    frame_id: str
    x: int
    y: int
    scale: float
    width: int  # the camera image as placed (mosaic pixels)
    height: int

    def contains(self, px: float, py: float) -> bool:
        return self.x <= px < self.x + self.width and self.y <= py < self.y + self.height


@dataclass(frozen=True, slots=True)
class MosaicLayout:
    """A grid of camera tiles on a ``size`` canvas (width, height)."""

    tiles: tuple[Tile, ...]
    size: tuple[int, int]

    def tile(self, frame_id: str) -> Tile | None:
        for tile in self.tiles:
            if tile.frame_id == frame_id:
                return tile
        return None

    def to_mosaic(self, region: Region, frame_id: str) -> Region | None:
        """A region in camera ``frame_id`` pixels in mosaic pixels (None when the camera is not tiled)."""
        tile = self.tile(frame_id)
        if tile is None:
            return None
        box = region.box.scale(tile.scale, tile.scale).shift(tile.x, tile.y)
        return replace(region, box=box)

    def to_cameras(self, regions: Sequence[Region], scale: float = 1.0) -> tuple[Region, ...]:
        """Regions in pixels of the mosaic as shown (``scale`` shown px per layout px) in their cameras.

        A box belongs to the tile under its centre and is clipped to it; boxes off every tile are dropped.
        """
        out = []
        for region in regions:
            box = region.box.scale(1.0 / scale, 1.0 / scale)
            cx, cy = box.center
            tile = next((t for t in self.tiles if t.contains(cx, cy)), None)
            if tile is None:
                continue
            local = box.shift(-tile.x, -tile.y).clip(tile.width, tile.height)
            local = local.scale(1.0 / tile.scale, 1.0 / tile.scale)
            out.append(replace(region, box=local, frame_id=tile.frame_id))
        return tuple(out)


def mosaic_layout(cameras: Sequence[tuple[str, int, int]]) -> MosaicLayout:
    """A near-square grid (columns = ceil(sqrt(n))) of tiles the size of the largest camera.

    ``cameras`` lists (frame id, width, height) in display order; each camera keeps its aspect ratio.
    """
    if not cameras:
        raise ValueError("a mosaic needs at least one camera")
    count = len(cameras)
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    tile_w = max(w for _, w, _ in cameras)
    tile_h = max(h for _, _, h in cameras)
    tiles = []
    for index, (frame_id, width, height) in enumerate(cameras):
        row, column = divmod(index, columns)
        scale = min(tile_w / width, tile_h / height)
        tiles.append(
            Tile(frame_id, column * tile_w, row * tile_h, scale, round(width * scale), round(height * scale))
        )
    return MosaicLayout(tuple(tiles), (columns * tile_w, rows * tile_h))


def compose_mosaic(images: Sequence[np.ndarray], layout: MosaicLayout, size: tuple[int, int]) -> np.ndarray:
    """The mosaic of ``images`` (layout order) drawn at ``size`` (width, height), black between tiles.

    Each camera is resized once, straight into its place, so no full-resolution mosaic is ever built.
    """
    width, height = size
    sx, sy = width / layout.size[0], height / layout.size[1]
    canvas = np.zeros((height, width, 3), np.uint8)
    for image, tile in zip(images, layout.tiles, strict=True):
        x1, y1 = round(tile.x * sx), round(tile.y * sy)
        x2 = min(width, round((tile.x + tile.width) * sx))
        y2 = min(height, round((tile.y + tile.height) * sy))
        if x2 > x1 and y2 > y1:
            canvas[y1:y2, x1:x2] = resize(image, (x2 - x1, y2 - y1))
    return canvas


def split_camera_label(label: str, cameras: Sequence[str]) -> tuple[str, str]:
    """(camera, rest of the label) when ``label`` starts with a camera's name, else ("", label).

    The longest matching name wins (``CAM_FRONT_LEFT`` before ``CAM_FRONT``); case is ignored and a
    separator (``:``, ``-``, ``/``, space) after the name is dropped.
    """
    text = label.strip()
    lowered = text.lower()
    for name in sorted(cameras, key=len, reverse=True):
        if name and lowered.startswith(name.lower()):
            rest = text[len(name) :]
            if rest and rest[0] not in ": -/,":
                continue
            return name, rest.lstrip(": -/,").strip()
    return "", label


def regions_to_cameras(
    regions: Sequence[Region],
    sizes: Sequence[tuple[str, int, int]],
    image_size: tuple[int, int],
) -> tuple[Region, ...]:
    """Regions a model returned about one image per camera, each put into its camera's pixels.

    Coordinates refer to the first image the model saw (``image_size``, width and height). A label
    starting with a camera name puts the box into that camera (the name leaves the label); other boxes
    belong to the first camera. Boxes are scaled to their camera's size and clipped to it.
    """
    names = [name for name, _, _ in sizes]
    out = []
    for region in regions:
        name, label = split_camera_label(region.label, names)
        name = name or names[0]
        _, width, height = sizes[names.index(name)]
        sx = width / image_size[0] if image_size[0] > 0 else 1.0
        sy = height / image_size[1] if image_size[1] > 0 else 1.0
        box = region.box.scale(sx, sy).clip(width, height)
        out.append(replace(region, box=box, label=label, frame_id=name))
    return tuple(out)


def camera_note(frame_ids: Sequence[str], mode: str, first_image: int = 1, want_camera: bool = False) -> str:
    """A prompt sentence saying which image shows which camera (``mode``: images or mosaic)."""
    names = ", ".join(frame_ids)
    if mode == "mosaic":
        note = f"Image {first_image} is a mosaic of the cameras {names}, left to right and top to bottom."
    else:
        last = first_image + len(frame_ids) - 1
        note = f"Images {first_image}-{last} are the cameras {names} of the same instant."
        if want_camera:
            note += " Begin each region's label with the name of its camera."
    return note


def boxes_in(regions: Sequence[Region], frame_id: str, reference: str) -> tuple[Region, ...]:
    """The regions that lie in camera ``frame_id`` (an unnamed camera is ``reference``)."""
    return tuple(r for r in regions if r.camera(reference) == frame_id)


@dataclass(frozen=True)
class CameraSetInput:
    """The images an LVLM gets for a keyframe of several cameras, and how its boxes map back.

    ``sizes`` are (frame id, width, height) of the decoded camera images; boxes come in pixels of
    ``images[0]`` (the mosaic drawn at ``scale`` layout pixels, or the first camera as decoded).
    """

    images: list[np.ndarray]
    note: str
    sizes: tuple[tuple[str, int, int], ...]
    layout: MosaicLayout | None = None
    scale: float = 1.0

    def to_cameras(self, regions: Sequence[Region]) -> tuple[Region, ...]:
        """Regions in ``images[0]`` pixels, each in its camera's pixels with ``frame_id`` set."""
        if self.layout is not None:
            return self.layout.to_cameras(regions, self.scale)
        _, width, height = self.sizes[0]
        return regions_to_cameras(regions, self.sizes, (width, height))


def camera_set_input(
    images: Sequence[np.ndarray], frame_ids: Sequence[str], mode: str, max_side: int, want_regions: bool
) -> CameraSetInput:
    """The LVLM input of a keyframe of several cameras: one image per camera, or a mosaic.

    The mosaic is drawn with its longest side at most ``max_side`` (0 = the layout's size).
    """
    sizes = tuple(
        (name, int(image.shape[1]), int(image.shape[0]))
        for name, image in zip(frame_ids, images, strict=True)
    )
    if mode == "mosaic":
        layout = mosaic_layout(sizes)
        width, height = layout.size
        side = max(width, height)
        scale = min(1.0, max_side / side) if max_side > 0 else 1.0
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        mosaic = compose_mosaic(images, layout, size)
        return CameraSetInput([mosaic], camera_note(frame_ids, "mosaic"), sizes, layout, size[0] / width)
    note = camera_note(frame_ids, "images", want_camera=want_regions)
    return CameraSetInput(list(images), note, sizes)
