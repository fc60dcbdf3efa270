"""Speed-limit signs of the synthetic world: a fact that outlives its evidence, with its ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from spotvlm_ros.synthetic import clip_spec, generate_annotations, generate_clip, generate_sign_variants
from spotvlm_ros.synthetic.camera import Camera
from spotvlm_ros.synthetic.signs import NO_LIMIT, READ_M, SPEED_LIMITS, SpeedSigns, sign_view
from spotvlm_ros.synthetic.world import simulate_clip

SEED, FRAMES, SIZE = 900_001, 700, (320, 240)


@pytest.fixture(scope="module")
def drive():
    """A 70 s drive with signs: per frame the odometer, the nearest sign ahead and the ground truth."""
    spec = clip_spec(SEED, signs=True)
    states = [
        (scene.odometer, scene.signs, layout.sign)
        for _, scene, layout in simulate_clip(SEED, FRAMES, 10.0, *SIZE, spec)
    ]
    annotations = list(generate_annotations(SEED, FRAMES, width=SIZE[0], height=SIZE[1], spec=spec))
    return states, annotations


def test_the_limit_holds_the_last_signs_value_until_the_next_sign_and_none_before_the_first(drive):
    states, annotations = drive
    signs = states[0][1]
    passed = 0
    for (odometer, _, _), annotation in zip(states, annotations, strict=True):
        posted = [i for i, p in enumerate(signs.positions) if p - odometer <= READ_M]
        expected = signs.values[posted[-1]] if posted else NO_LIMIT
        assert annotation.answer("speed_limit") == expected
        passed = max(passed, len(posted))
    answers = [a.answer("speed_limit") for a in annotations]
    assert answers[0] == NO_LIMIT and passed >= 2  # the drive posts two signs or more
    changes = [i for i in range(1, FRAMES) if answers[i] != answers[i - 1]]
    assert len(changes) == passed
    assert all(answers[i] in SPEED_LIMITS and answers[i] != answers[i - 1] for i in changes)
    assert NO_LIMIT not in answers[changes[0] :]  # once a sign is posted, never "no limit" again


def test_the_value_outlives_the_sign_in_view(drive):
    _, annotations = drive
    in_view = [a.box("sign") is not None for a in annotations]
    limits = [a.answer("speed_limit") for a in annotations]
    assert any(in_view) and not all(in_view)
    remembered = [i for i in range(FRAMES) if limits[i] in SPEED_LIMITS and not in_view[i]]
    assert len(remembered) > 0.4 * FRAMES  # most of the drive the limit is known only from memory
    for i in range(1, FRAMES):  # a sign comes into view exactly when its value is posted
        if limits[i] != limits[i - 1]:
            assert in_view[i]


def test_a_posted_sign_is_sized_for_the_lvlm_and_drawn_where_its_box_is():
    spec = clip_spec(SEED, signs=True)
    widths = []
    for frame, annotation in generate_clip(SEED, 400, width=SIZE[0], height=SIZE[1], spec=spec):
        sign = annotation.box("sign")
        if sign is None:
            continue
        box = sign.box
        widths.append(box.width)
        plate = frame.image[round(box.y1) : round(box.y2), round(box.x1) : round(box.x2)].astype(int)
        red = (plate[:, :, 0] > 150) & (plate[:, :, 1] < 90) & (plate[:, :, 2] < 90)
        assert red.mean() > 0.1  # the red ring is in the box
    # px of 320: at the LVLM's 224 px input 17-28 px (digits legible), at the SVLM's 112 px 8-14 px (a blur)
    assert widths and min(widths) >= 24 and max(widths) <= 40


def test_signs_leave_the_rest_of_the_clip_unchanged():
    with_signs = generate_clip(SEED, 30, width=160, height=120, spec=clip_spec(SEED, signs=True))
    without = generate_clip(SEED, 30, width=160, height=120)
    for (frame_a, truth_a), (frame_b, truth_b) in zip(with_signs, without, strict=True):
        assert truth_a.answer("light") == truth_b.answer("light")
        assert truth_a.answer("cars") == truth_b.answer("cars")
        assert truth_b.answer("speed_limit") is None and truth_b.box("sign") is None
        assert truth_a.caption == truth_b.caption
        assert (frame_a.image != frame_b.image).any(axis=2).mean() < 0.02  # only the sign's pixels


def test_sign_draws_are_seeded_and_consecutive_signs_differ():
    one = SpeedSigns.draw(np.random.default_rng(3))
    assert one == SpeedSigns.draw(np.random.default_rng(3))
    assert all(b > a for a, b in zip(one.positions, one.positions[1:], strict=False))
    assert all(a != b for a, b in zip(one.values, one.values[1:], strict=False))
    assert set(one.values) == set(SPEED_LIMITS)
    assert sign_view(one, one.positions[-1] + 1.0, Camera.for_image(320, 240)) is None  # none left ahead


def test_sign_variants_repaint_only_the_digits_with_every_other_limit():
    spec = clip_spec(SEED, signs=True)
    clip = list(generate_clip(SEED, 400, width=SIZE[0], height=SIZE[1], spec=spec))
    variants = dict(generate_sign_variants(SEED, 400, width=SIZE[0], height=SIZE[1], spec=spec))
    in_view = [i for i, (_, truth) in enumerate(clip) if truth.box("sign") is not None]
    assert in_view and sorted(variants) == in_view  # every frame with a posted sign in view, no other
    for index, repainted in variants.items():
        frame, truth = clip[index]
        shown = truth.answer("speed_limit")
        assert sorted(a.answer("speed_limit") for _, a in repainted) == sorted(
            v for v in SPEED_LIMITS if v != shown
        )
        box = truth.box("sign").box
        for other, other_truth in repainted:
            assert other.stamp_ns == frame.stamp_ns and other_truth.box("sign") == truth.box("sign")
            assert (
                other_truth.answer("light") == truth.answer("light") and other_truth.caption == truth.caption
            )
            ys, xs = np.nonzero((other.image != frame.image).any(axis=2))
            assert len(xs) > 0.05 * box.width * box.height  # the digits changed
            assert xs.min() >= box.x1 - 1 and xs.max() <= box.x2 + 1  # nothing outside the plate
            assert ys.min() >= box.y1 - 1 and ys.max() <= box.y2 + 1
