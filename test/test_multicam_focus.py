"""Visual Focus over several cameras: one image per camera or a mosaic, crops from each region's camera,
one token budget for all cameras, regions carried per camera and boxes mapped back to their camera."""

from __future__ import annotations

import numpy as np
import pytest

from spotvlm_ros.core.camera_groups import group_frame
from spotvlm_ros.core.config import FocusConfig
from spotvlm_ros.core.focus import VisualFocus
from spotvlm_ros.core.focus.cameras import (
    camera_set_input,
    mosaic_layout,
    regions_to_cameras,
    split_camera_label,
)
from spotvlm_ros.core.focus.views import MIN_FULL_SIDE, fit_size
from spotvlm_ros.core.types import Box, Frame, LvlmResult, Region

W, H = 320, 240


def camera_image(value: int, square_at: tuple[int, int] | None = None) -> np.ndarray:
    """A textured camera image with a bright square (the object a region points at)."""
    rng = np.random.default_rng(value)
    image = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
    image[..., 0] = value
    if square_at is not None:
        x, y = square_at
        image[y : y + 40, x : x + 40] = (250, 250, 40)
    return image


def two_cameras(stamp: int = 1_000, shift: int = 0) -> Frame:
    left = Frame(stamp, camera_image(10), "left")
    right = Frame(stamp + 2, camera_image(200, (150 + shift, 100)), "right")
    return group_frame([left, right])


def context(stamp: int = 1_000) -> LvlmResult:
    """An LVLM result about the group at ``stamp``: a box in the right camera, one in the left."""
    return LvlmResult(
        "req-1",
        stamp,
        "vqa",
        "p",
        "a car on the right",
        regions=(
            Region(Box(150, 100, 190, 140), "car", 0.9, frame_id="right"),
            Region(Box(20, 20, 60, 50), "sign", 0.8),  # no camera named: the reference (left)
        ),
        image_size=(W, H),
        frame_id="left",
        camera_sizes=(("left", W, H), ("right", W, H)),
    )


def focus(**settings) -> VisualFocus:
    config = FocusConfig(**{"full_size": 112, "crop_size": 56, "propagation": "static", **settings})
    return VisualFocus(config)


def test_images_mode_shows_each_camera_then_crops_from_the_region_camera():
    frame = two_cameras()
    view = focus().prepare(frame, context(), frame)
    assert view.mode == "crop" and len(view.images) == 4  # left, right, then two crops
    assert [im.shape[:2] for im in view.images[:2]] == [(84, 112), (84, 112)]
    assert [r.frame_id for r in view.regions] == ["right", "left"]
    car_crop = view.images[2]
    assert car_crop.shape[:2] == (56, 56)
    assert car_crop[..., 0].mean() > 150  # taken from the right camera (red channel 200/250), not the left
    assert view.images[3][..., 0].mean() < 40
    assert "Images 1-2 are the cameras left, right" in view.note and "'car' (right)" in view.note
    assert view.cameras == (("left", W, H), ("right", W, H)) and view.layout is None


def test_mosaic_mode_tiles_the_cameras_and_maps_boxes_back():
    frame = two_cameras()
    view = focus(multi_camera="mosaic").prepare(frame, context(), frame)
    assert len(view.images) == 3 and view.images[0].shape[:2] == (42, 112)  # 2x1 tiles at full_size 112
    assert view.layout is not None and [t.frame_id for t in view.layout.tiles] == ["left", "right"]
    assert "mosaic of the cameras left, right" in view.note
    # a box the SVLM returns on the right half of the mosaic belongs to the right camera
    shown = Region(Box(56 + 20, 10, 56 + 30, 20), "car")
    (back,) = view.regions_to_frame([shown])
    assert back.frame_id == "right"
    scale = W / 56  # mosaic tile of 56 px per 320 px camera
    assert back.box.x1 == pytest.approx(20 * scale) and back.box.y2 == pytest.approx(20 * scale)


def test_the_visual_token_budget_covers_all_cameras():
    frame = two_cameras()
    free = focus(full_size=448).prepare(frame, context(), frame)
    count = VisualFocus(FocusConfig()).count
    assert free.image_tokens == sum(count(im.shape[1], im.shape[0]) for im in free.images) == 2 * 99 + 2 * 4
    budget = 150
    tight = focus(full_size=448, visual_token_budget=budget).prepare(frame, context(), frame)
    assert not tight.over_budget and len(tight.images) == 4  # the crops stay, the cameras shrink
    assert tight.image_tokens == sum(count(im.shape[1], im.shape[0]) for im in tight.images)
    assert tight.image_tokens <= budget
    assert all(t.shape[1] < f.shape[1] for t, f in zip(tight.images[:2], free.images[:2], strict=True))
    smallest = count(*fit_size(W, H, MIN_FULL_SIDE))
    room_for_one_crop = 2 * smallest + count(56, 56)
    starved = focus(full_size=448, visual_token_budget=room_for_one_crop).prepare(frame, context(), frame)
    assert len(starved.images) == 3 and starved.image_tokens <= room_for_one_crop  # then crops go


def test_mark_and_mask_draw_on_the_camera_each_region_is_in():
    frame = two_cameras()
    plain = focus(mode="off").prepare(frame, context(), frame)
    marked = focus(mode="mark").prepare(frame, context(), frame)
    assert len(plain.images) == len(marked.images) == 2
    assert all(not np.array_equal(p, m) for p, m in zip(plain.images, marked.images, strict=True))
    only_right = LvlmResult("r", 1_000, "vqa", "p", "t", regions=(context().regions[0],), frame_id="left")
    masked = focus(mode="mask").prepare(frame, only_right, frame)
    assert np.array_equal(masked.images[0], plain.images[0])  # nothing in the left camera: untouched
    assert masked.images[1].mean() < plain.images[1].mean()


def test_context_regions_propagate_per_camera():
    keyframe = two_cameras(1_000)
    later = two_cameras(1_200_000_000, shift=24)  # the object moved 24 px right in the right camera
    vf = focus(propagation="flow", min_confidence=0.0)
    carried = vf.propagate(later, context(1_000), keyframe)
    by_camera = {p.region.frame_id: p for p in carried}
    assert set(by_camera) == {"left", "right"}
    assert by_camera["right"].region.box.center[0] == pytest.approx(170 + 24, abs=3)
    assert by_camera["left"].region.box.center[0] == pytest.approx(40, abs=3)  # static camera content


def test_labels_naming_a_camera_and_boxes_of_several_images():
    cams = ["CAM_FRONT", "CAM_FRONT_LEFT"]
    assert split_camera_label("CAM_FRONT_LEFT: truck", cams) == ("CAM_FRONT_LEFT", "truck")
    assert split_camera_label("cam_front car", cams) == ("CAM_FRONT", "car")
    assert split_camera_label("CAM_FRONTAL car", cams) == ("", "CAM_FRONTAL car")
    sizes = (("CAM_FRONT", 1600, 900), ("CAM_FRONT_LEFT", 800, 450))
    regions = regions_to_cameras(
        [Region(Box(100, 100, 200, 200), "CAM_FRONT_LEFT: truck"), Region(Box(0, 0, 10, 10), "car")],
        sizes,
        image_size=(1600, 900),
    )
    assert [(r.frame_id, r.label) for r in regions] == [("CAM_FRONT_LEFT", "truck"), ("CAM_FRONT", "car")]
    assert regions[0].box == Box(50, 50, 100, 100)


def test_lvlm_input_of_several_cameras():
    images = [camera_image(10), camera_image(200)]
    shown = camera_set_input(images, ["left", "right"], "mosaic", max_side=320, want_regions=True)
    assert len(shown.images) == 1 and shown.images[0].shape[:2] == (120, 320)
    (region,) = shown.to_cameras([Region(Box(200, 10, 220, 30), "car")])
    assert region.frame_id == "right" and region.box == Box(80, 20, 120, 60)
    separate = camera_set_input(images, ["left", "right"], "images", max_side=320, want_regions=True)
    assert (
        len(separate.images) == 2 and "Begin each region's label with the name of its camera" in separate.note
    )
    layout = mosaic_layout([("a", 100, 50), ("b", 50, 100), ("c", 100, 100)])
    assert layout.size == (200, 200) and layout.tile("b").scale == 1.0 and layout.tile("c").y == 100


def test_one_camera_view_is_unchanged_by_the_camera_code():
    frame = Frame(5, camera_image(10, (100, 100)), "camera")
    result = LvlmResult(
        "r", 5, "vqa", "p", "t", regions=(Region(Box(100, 100, 140, 140), "car"),), image_size=(W, H)
    )
    view = focus().prepare(frame, result, frame)
    assert view.cameras == () and view.layout is None and len(view.images) == 2
    assert view.note == "Image 1 is the whole camera view. Image 2 is a close-up of 'car'."
    (back,) = view.regions_to_frame([Region(Box(10, 10, 20, 20), "x")])
    assert back.frame_id == "" and back.box == Box(10 * W / 112, 10 * W / 112, 20 * W / 112, 20 * W / 112)
