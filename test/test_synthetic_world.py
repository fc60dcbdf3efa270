"""The synthetic driving world: frames, ground truth matching the pixels, dynamics, balance, determinism."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import cv2
import numpy as np
import pytest

from spotvlm_ros.core.types import NS_PER_S, Box
from spotvlm_ros.synthetic import (
    ANSWERS,
    DEFAULT_START_NS,
    GROUNDING,
    QUESTIONS,
    ClipSpec,
    caption,
    clip_spec,
    dataset_clips,
    generate_annotations,
    generate_clip,
    generate_dataset,
    label_stats,
)
from spotvlm_ros.synthetic.camera import Camera
from spotvlm_ros.synthetic.people import draw_figure
from spotvlm_ros.synthetic.props import LIT_COLORS
from spotvlm_ros.synthetic.render import SceneObject
from spotvlm_ros.synthetic.signal import CYCLE_ORDER, DURATION_RANGES_S
from spotvlm_ros.synthetic.street import LIGHT_FAR_M, LIGHT_NEAR_M
from spotvlm_ros.synthetic.truth import visible_objects
from spotvlm_ros.synthetic.vehicles import draw_car
from spotvlm_ros.synthetic.world import simulate_clip

W, H = 640, 480


@pytest.fixture(scope="module")
def clips() -> list[list]:
    """Three rendered clips of 60 frames: busy with pedestrians, quiet, medium traffic."""
    specs = [ClipSpec(3, True), ClipSpec(0, False), ClipSpec(2, True)]
    return [list(generate_clip(seed, 60, spec=spec)) for seed, spec in zip((5, 6, 7), specs, strict=True)]


def _lit_score(image: np.ndarray, state: str) -> np.ndarray:
    """Per-pixel strength of the lit lamp's colour; linear in coverage for a lamp mixed with grey."""
    r, g, b = (image[..., i].astype(np.float64) for i in range(3))
    if state == "red":
        return r - np.maximum(g, b)
    if state == "green":
        return g - np.maximum(r, b)
    return np.minimum(r, g) - b


def _lamp_diameter(image: np.ndarray, box: Box, state: str, size: tuple[int, int]) -> float:
    """Area-equivalent diameter (pixels) of the lit lamp in the frame resized to ``size`` (INTER_AREA)."""
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    sx, sy = size[0] / image.shape[1], size[1] / image.shape[0]
    cx, cy = box.center
    half_w, half_h = 0.3 * box.width, 0.4 * box.height  # the housing, inside the backplate
    x1, y1 = math.floor((cx - half_w) * sx), math.floor((cy - half_h) * sy)
    x2, y2 = math.ceil((cx + half_w) * sx), math.ceil((cy + half_h) * sy)
    full = _lit_score(np.array([[LIT_COLORS[state]]], np.uint8), state)[0, 0]
    area = _lit_score(small[y1:y2, x1:x2], state).sum() / full
    return 2.0 * math.sqrt(max(area, 0.0) / math.pi)


def test_frames_and_annotations_follow_the_contract(clips):
    for index, (frame, annotation) in enumerate(clips[0]):
        assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
        assert frame.frame_id == "camera" and frame.seq == index
        assert frame.stamp_ns == annotation.stamp_ns == DEFAULT_START_NS + index * NS_PER_S // 10
        assert [q.id for q in annotation.vqa] == ["light", "cars", "pedestrian"]
        for item in annotation.vqa:
            assert item.question == QUESTIONS[item.id] and item.answer in ANSWERS[item.id]
        ids = [g.id for g in annotation.grounding]
        assert ids[0] == "light" and set(ids) <= set(GROUNDING)
        assert ("car" in ids) == (annotation.answer("cars") != "0")
        for item in annotation.grounding:
            assert (item.query, item.label) == GROUNDING[item.id]
            box = item.box
            assert 0 <= box.x1 < box.x2 <= W and 0 <= box.y1 < box.y2 <= H
        state = "crossing" if annotation.answer("pedestrian") == "yes" else None
        state = state or ("waiting" if annotation.box("pedestrian") else "none")
        expected = caption(annotation.answer("light"), int(annotation.answer("cars")), state)
        assert annotation.caption == expected


def test_caption_is_canonical():
    assert (
        caption("red", 2, "crossing") == "A road with 2 cars, a red traffic light and a pedestrian crossing."
    )
    assert caption("green", 0, "none") == "A road with no cars, a green traffic light and no pedestrians."
    assert caption("yellow", 1, "waiting") == (
        "A road with 1 car, a yellow traffic light and a pedestrian on the sidewalk."
    )


def test_same_seed_is_bit_identical_and_seeds_differ():
    first = list(generate_clip(11, 8, width=160, height=120))
    again = list(generate_clip(11, 8, width=160, height=120))
    other = list(generate_clip(12, 8, width=160, height=120))
    for (f1, a1), (f2, a2) in zip(first, again, strict=True):
        assert f1.stamp_ns == f2.stamp_ns and np.array_equal(f1.image, f2.image) and a1 == a2
    assert any(not np.array_equal(f1.image, f2.image) for (f1, _), (f2, _) in zip(first, other, strict=True))
    assert [a.to_json() for _, a in first] != [a.to_json() for _, a in other]


def test_annotations_without_pixels_match_the_rendered_clip(clips):
    fast = list(generate_annotations(7, 60, spec=ClipSpec(2, True)))
    assert fast == [annotation for _, annotation in clips[2]]


def test_lit_lamp_size_meets_the_resolution_spec():
    diameters = {(224, 168): [], (112, 84): []}
    for seed in range(3):  # the light's whole distance range: approaches, stops, wraps back to far
        for frame, annotation in itertools.islice(generate_clip(seed, 100), 0, None, 2):
            box, state = annotation.box("light").box, annotation.answer("light")
            for size, values in diameters.items():
                values.append(_lamp_diameter(frame.image, box, state, size))
    low, high = np.array(diameters[(224, 168)]), np.array(diameters[(112, 84)])
    assert low.min() >= 3.0 and low.max() <= 5.0, (low.min(), low.max())
    assert high.min() >= 1.5 and high.max() <= 2.5, (high.min(), high.max())
    assert low.max() / low.min() > 1.3  # near and far ends of the approach were both measured


def _near(image: np.ndarray, color: tuple[int, int, int], distance: float) -> np.ndarray:
    return ((image.astype(np.int32) - color) ** 2).sum(axis=2) < distance**2


def test_light_box_holds_the_lit_lamp_in_its_slot(clips):
    rows = int(Camera.for_image(W, H).horizon) - 15  # cars and people stay below this row
    slot = {"red": 0, "yellow": 1, "green": 2}
    for frame, annotation in itertools.chain.from_iterable(clips):
        state, box = annotation.answer("light"), annotation.box("light").box
        ys, xs = np.nonzero(_near(frame.image[:rows], LIT_COLORS[state], 40))
        assert len(xs) >= 20
        assert xs.min() >= box.x1 and xs.max() + 1 <= box.x2
        assert ys.min() >= box.y1 and ys.max() + 1 <= box.y2
        assert int(3 * (ys.mean() + 0.5 - box.y1) / box.height) == slot[state]
        head = frame.image[int(box.y1) : int(box.y2) + 1, int(box.x1) : int(box.x2) + 1]
        assert not any(_near(head, LIT_COLORS[other], 40).any() for other in LIT_COLORS if other != state)


def test_object_boxes_contain_their_pixels():
    camera = Camera.for_image(W, H)
    seen = Counter()
    for _, scene, layout in itertools.islice(simulate_clip(5, 80, 10.0, W, H, ClipSpec(3, True)), 0, None, 2):
        cars = {car.ident: car for car in scene.cars}
        for obj in layout.objects:
            blank = np.zeros((H, W, 3), np.uint8)
            if obj.kind == "car":
                draw_car(blank, cars[obj.ident].pose(), scene.ego_z, (200, 200, 200), camera)
            else:
                draw_figure(blank, layout.figures[obj.ident])
            ys, xs = np.nonzero(blank.any(axis=2))
            if len(xs) == 0:
                continue
            seen[obj.kind] += 1  # every painted pixel overlaps the box (pixel i spans [i, i + 1])
            assert xs.min() + 1 > obj.box.x1 and xs.max() < obj.box.x2
            assert ys.min() + 1 > obj.box.y1 and ys.max() < obj.box.y2
    assert seen["car"] > 30 and seen["pedestrian"] > 30


def test_ground_truth_objects_are_clipped_and_leave_when_out_of_view():
    near = SceneObject("car", 1, 10.0, Box(100, 100, 300, 300))
    objects = [
        near,
        SceneObject("car", 2, 30.0, Box(120, 120, 280, 280)),  # hidden behind the near car
        SceneObject("car", 3, 20.0, Box(-90, 50, 10, 150)),  # 10% inside the frame
        SceneObject("pedestrian", 4, 40.0, Box(600, 200, 700, 260), True),  # 40% inside
        SceneObject("car", 5, 50.0, Box(700, 10, 800, 60)),  # outside
    ]
    visible = visible_objects(objects, W, H)
    assert [obj.ident for obj, _ in visible] == [1, 4]
    assert visible[1][1] == Box(600, 200, W, 260)
    # a near car mostly out of view still counts when what is in view is large (here 80 x 110 px)
    big = SceneObject("car", 6, 12.0, Box(560, 215, 960, 325))
    assert [obj.ident for obj, _ in visible_objects([big], W, H)] == [6]
    for seed in range(3):
        for annotation in generate_annotations(seed, 120):
            for item in annotation.grounding:
                assert item.box.width >= 1.0 and item.box.height >= 1.0


def test_light_cycles_with_state_durations_of_a_few_seconds():
    answers = [a.answer("light") for a in generate_annotations(3, 600)]
    runs = [(state, len(list(group))) for state, group in itertools.groupby(answers)]
    for (state, _), (following, _) in itertools.pairwise(runs):
        assert CYCLE_ORDER[(CYCLE_ORDER.index(state) + 1) % 3] == following
    for state, frames in runs[1:-1]:
        low, high = DURATION_RANGES_S[state]
        assert low - 0.15 <= frames / 10.0 <= high + 0.15
    stale = sum(a != b for a, b in zip(answers, answers[25:], strict=False)) / (len(answers) - 25)
    assert stale > 0.4  # a 2.5 s old answer is often wrong


def test_the_light_grows_as_the_ego_approaches_and_the_view_moves():
    heights, distances, moving = [], [], []
    previous = None
    for _, scene, layout in simulate_clip(2, 200, 10.0, W, H, ClipSpec(1, False)):
        heights.append(layout.light.box.height - 2.0)  # minus the anti-aliasing margin
        distances.append(scene.light_distance)
        if previous is not None:
            moving.append(scene.ego_z != previous)
        previous = scene.ego_z
    product = np.array(heights) * np.array(distances)
    assert product.std() / product.mean() < 0.01  # projected size ~ 1 / distance
    assert min(distances) >= LIGHT_NEAR_M and max(distances) <= LIGHT_FAR_M
    assert sum(moving) > 100
    frames = [f.image for f, _ in generate_clip(2, 4)]  # frames 0 and 3 share their sensor-noise pattern
    ground = slice(int(0.75 * H), H)
    assert np.abs(frames[3][ground].astype(int) - frames[0][ground]).mean() > 2.0  # the road surface flows


def test_labels_are_balanced_over_a_data_set():
    annotations = [
        a for seed, spec in dataset_clips(0, 20) for a in generate_annotations(seed, 100, spec=spec)
    ]
    stats = label_stats(annotations)
    for question in ("light", "cars", "pedestrian"):
        assert max(stats[question].values()) <= 0.6, stats[question]
    assert all(0.15 <= stats["light"][s] <= 0.6 for s in ANSWERS["light"]), stats["light"]
    assert all(stats["cars"][n] > 0.03 for n in ANSWERS["cars"]), stats["cars"]
    assert 0.25 <= stats["pedestrian"]["yes"] <= 0.6, stats["pedestrian"]
    assert stats["grounding"]["light"] == 1.0


def test_clip_contents_pedestrians_in_half_the_clips_and_every_traffic_level():
    specs = [clip_spec(seed) for seed in range(400)]
    assert 0.4 <= sum(s.pedestrians for s in specs) / len(specs) <= 0.6
    assert {s.traffic for s in specs} == {0, 1, 2, 3}
    quiet = list(generate_annotations(6, 100, spec=ClipSpec(0, False)))
    assert all(a.answer("pedestrian") == "no" and a.answer("cars") == "0" for a in quiet)
    assert all(a.box("pedestrian") is None and a.box("car") is None for a in quiet)


def test_data_set_is_balanced_deterministic_and_stamped_in_order():
    combos = Counter(spec for _, spec in dataset_clips(4, 16))
    assert len(combos) == 8 and set(combos.values()) == {2}
    rows = list(generate_dataset(4, 3, 4, width=96, height=64, gap_s=0.5))
    assert [clip for clip, _, _ in rows] == [0] * 4 + [1] * 4 + [2] * 4
    assert [frame.seq for _, frame, _ in rows] == list(range(12))
    stamps = [frame.stamp_ns for _, frame, _ in rows]
    assert stamps == sorted(stamps) and stamps[4] - stamps[3] == NS_PER_S // 10 + NS_PER_S // 2
    again = list(generate_dataset(4, 3, 4, width=96, height=64, gap_s=0.5))
    assert all(
        np.array_equal(a[1].image, b[1].image) and a[2] == b[2] for a, b in zip(rows, again, strict=True)
    )
    seed, spec = dataset_clips(4, 3)[1]
    assert [a for _, _, a in rows[4:8]] == list(
        generate_annotations(seed, 4, width=96, height=64, start_ns=stamps[4], spec=spec)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"num_frames": -2}, "num_frames"),
        ({"fps": 0.0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"width": 8}, "image size"),
        ({"height": 480.0}, "image size"),
        ({"start_ns": -5}, "start_ns"),
    ],
)
def test_bad_arguments_are_clear_errors_at_the_call(kwargs, message):
    args = {"seed": 0, "num_frames": 2, **kwargs}
    for function in (generate_clip, generate_annotations):
        with pytest.raises(ValueError, match=message):
            function(**args)  # raised before any frame is asked for


def test_bad_clip_contents_are_clear_errors():
    with pytest.raises(ValueError, match="traffic"):
        ClipSpec(4, False)
    with pytest.raises(ValueError, match="num_clips"):
        dataset_clips(0, -1)


def test_small_images_work():
    frames = list(generate_clip(1, 3, width=96, height=64))
    assert all(f.image.shape == (64, 96, 3) for f, _ in frames)
    assert all(0 <= g.box.x2 <= 96 and 0 <= g.box.y2 <= 64 for _, a in frames for g in a.grounding)
