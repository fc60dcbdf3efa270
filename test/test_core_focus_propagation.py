"""Region propagation: identity on a still scene, known translations recovered, frame bounds, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotvlm_ros.bench.core import panned_view, textured_frame
from spotvlm_ros.core.focus import RegionPropagator
from spotvlm_ros.core.types import NS_PER_S, Box, Frame, Region

W, H = 640, 480
SCENE = textured_frame(W + 200, H + 160, seed=3)
REGIONS = (
    Region(Box(100, 100, 180, 170), "car", 0.9),
    Region(Box(300, 200, 360, 300), "light", 0.8),
    Region(Box(480, 60, 590, 150), "sign", 0.7),
    Region(Box(60, 330, 160, 430), "dog", 0.9),
)
MODES = ("static", "flow", "template")


def frame_at(dx: float, dy: float, t_s: float) -> Frame:
    # panned_view moves the camera window by (dx, dy): scene content moves by (-dx, -dy) in the frame
    return Frame(int(round(t_s * NS_PER_S)), panned_view(SCENE, -dx, -dy, W, H))


KEYFRAME = frame_at(0, 0, 0.0)


def corners(region: Region) -> np.ndarray:
    return np.array(region.box.as_tuple())


@pytest.mark.parametrize("mode", MODES)
def test_identity_on_a_still_scene(mode):
    propagator = RegionPropagator(mode, growth_per_s=0.0)
    for step in range(1, 4):
        out = propagator.propagate(REGIONS, KEYFRAME, frame_at(0, 0, 0.1 * step), key="r")
        assert len(out) == len(REGIONS)
        for carried, source in zip(out, REGIONS, strict=True):
            np.testing.assert_allclose(corners(carried.region), corners(source), atol=0.25)
            assert carried.region.label == source.label


@pytest.mark.parametrize("mode", ["flow", "template"])
@pytest.mark.parametrize("shift", [(13.0, -7.0), (-20.5, 9.25), (3.0, 25.0)])
def test_a_known_translation_is_recovered_within_2_px(mode, shift):
    propagator = RegionPropagator(mode, growth_per_s=0.0)
    out = propagator.propagate(REGIONS, KEYFRAME, frame_at(*shift, 0.2), key="r")
    assert [p.method for p in out] == [mode] * len(REGIONS)
    for carried, source in zip(out, REGIONS, strict=True):
        expected = corners(source) + np.array([shift[0], shift[1], shift[0], shift[1]])
        assert np.abs(corners(carried.region) - expected).max() <= 2.0, (carried, expected)
        assert carried.shift == pytest.approx(shift, abs=2.0)


@pytest.mark.parametrize("mode", ["flow", "template"])
def test_chained_tracking_follows_a_long_pan(mode):
    propagator = RegionPropagator(mode, growth_per_s=0.0)
    for step in range(1, 31):  # 3 px right, 1.5 px down per frame: 90 x 45 px in all
        out = propagator.propagate(
            REGIONS[:2], KEYFRAME, frame_at(3.0 * step, 1.5 * step, step / 10), key="r"
        )
    for carried, source in zip(out, REGIONS[:2], strict=True):
        expected = corners(source) + np.array([90, 45, 90, 45])
        assert np.abs(corners(carried.region) - expected).max() <= 2.0


def test_flow_estimates_scale():
    zoomed = panned_view(SCENE, 0, 0, W, H)
    center = np.float32([[1.1, 0, -0.1 * W / 2], [0, 1.1, -0.1 * H / 2]])
    import cv2

    frame = Frame(NS_PER_S // 10, cv2.warpAffine(zoomed, center, (W, H)))
    box = Region(Box(260, 180, 380, 300), "center", 1.0)
    out = RegionPropagator("flow", growth_per_s=0.0).propagate((box,), KEYFRAME, frame, key="z")
    assert out[0].region.box.width == pytest.approx(120 * 1.1, abs=3.0)
    assert out[0].region.box.center == pytest.approx((320.0, 240.0), abs=2.0)


def test_static_keeps_coordinates_and_boxes_grow_with_age():
    propagator = RegionPropagator("static", growth_per_s=0.1, half_life_s=5.0)
    early = propagator.propagate(REGIONS, KEYFRAME, frame_at(0, 0, 1.0), key="r")
    late = propagator.propagate(REGIONS, KEYFRAME, frame_at(0, 0, 5.0), key="r")
    for a, b, source in zip(early, late, REGIONS, strict=True):
        assert a.region.box.center == pytest.approx(source.box.center)
        assert source.box.area < a.region.box.area < b.region.box.area
        assert b.confidence == pytest.approx(source.score * 0.5, rel=1e-6)  # one half-life later
        assert a.confidence > b.confidence


def test_tracked_boxes_grow_slower_than_static_ones():
    flow = RegionPropagator("flow", growth_per_s=0.2).propagate(
        REGIONS, KEYFRAME, frame_at(0, 0, 2.0), key="r"
    )
    static = RegionPropagator("static", growth_per_s=0.2).propagate(
        REGIONS, KEYFRAME, frame_at(0, 0, 2.0), key="r"
    )
    for f, s in zip(flow, static, strict=True):
        assert f.region.box.area < s.region.box.area


def test_boxes_are_clipped_and_dropped_when_they_leave_the_frame():
    edge = (Region(Box(590, 200, 660, 260), "half out", 1.0), Region(Box(10, 10, 60, 60), "leaves", 1.0))
    out = RegionPropagator("static").propagate(edge, KEYFRAME, frame_at(0, 0, 0.1), key="e")
    assert out[0].region.box.x2 == W and out[0].region.box.x1 >= 590 - 5
    propagator = RegionPropagator("flow", growth_per_s=0.0)
    for step in range(1, 12):  # content moves left and up by 80 px: the top-left box leaves
        out = propagator.propagate(edge[1:], KEYFRAME, frame_at(-8.0 * step, -8.0 * step, step / 10), key="l")
    assert out == []


def test_tracking_failure_falls_back_and_loses_confidence():
    rng = np.random.default_rng(0)
    noise = Frame(NS_PER_S // 10, rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    for mode in ("flow", "template"):
        out = RegionPropagator(mode, growth_per_s=0.0).propagate(REGIONS, KEYFRAME, noise, key="n")
        assert {p.method for p in out} == {"fallback"}
        for carried, source in zip(out, REGIONS, strict=True):
            assert carried.region.box.center == pytest.approx(source.box.center, abs=1e-6)
            assert carried.confidence < source.score * 0.9


def test_without_a_keyframe_image_regions_start_from_the_current_frame():
    out = RegionPropagator("flow").propagate(
        REGIONS, None, frame_at(10, 0, 0.5), keyframe_stamp_ns=0, key="k"
    )
    assert {p.method for p in out} == {"fallback"}
    assert all(p.confidence <= 0.5 * r.score for p, r in zip(out, REGIONS, strict=True))


def test_state_follows_the_context_and_repeats_are_cached():
    propagator = RegionPropagator("flow", growth_per_s=0.0)
    frame = frame_at(10, 0, 0.3)
    first = propagator.propagate(REGIONS, KEYFRAME, frame, key="a")
    assert propagator.propagate(REGIONS, KEYFRAME, frame, key="a") is first
    other = propagator.propagate(REGIONS[:1], KEYFRAME, frame, key="b")
    assert len(other) == 1 and other[0].region.box.x1 == pytest.approx(110, abs=2.0)


def test_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="propagation mode"):
        RegionPropagator("optical")


boxes = st.builds(
    lambda x, y, w, h: Box(x, y, x + w, y + h),
    st.floats(-100, W + 50),
    st.floats(-100, H + 50),
    st.floats(2, 300),
    st.floats(2, 300),
)


@settings(max_examples=40, deadline=None)
@given(
    regions=st.lists(boxes.map(lambda b: Region(b, "x", 0.9)), min_size=1, max_size=4),
    shift=st.tuples(st.floats(-40, 40), st.floats(-40, 40)),
    mode=st.sampled_from(MODES),
    age_s=st.floats(0.05, 30.0),
)
def test_property_boxes_stay_inside_the_frame(regions, shift, mode, age_s):
    out = RegionPropagator(mode).propagate(tuple(regions), KEYFRAME, frame_at(*shift, age_s), key="p")
    assert len(out) <= len(regions)
    for carried in out:
        box = carried.region.box
        assert 0 <= box.x1 < box.x2 <= W and 0 <= box.y1 < box.y2 <= H
        assert 0.0 <= carried.confidence <= 1.0


@settings(max_examples=25, deadline=None)
@given(
    box=st.builds(
        lambda x, y, s: Box(x, y, x + s, y + s * 0.8),
        st.floats(80, 440),
        st.floats(80, 300),
        st.floats(60, 110),
    ),
    mode=st.sampled_from(MODES),
)
def test_property_identity_on_a_still_scene(box, mode):
    region = Region(box, "x", 1.0)
    out = RegionPropagator(mode, growth_per_s=0.0).propagate(
        (region,), KEYFRAME, frame_at(0, 0, 0.1), key="i"
    )
    np.testing.assert_allclose(corners(out[0].region), corners(region), atol=0.25)  # sub-pixel


@settings(max_examples=40, deadline=None)
@given(
    box=st.builds(
        lambda x, y, s: Box(x, y, x + s, y + s * 0.8),
        st.floats(80, 440),
        st.floats(80, 300),
        st.floats(60, 110),
    ),
    shift=st.tuples(st.floats(-30, 30), st.floats(-30, 30)),
    mode=st.sampled_from(["flow", "template"]),
)
def test_property_synthetic_translation_within_2_px(box, shift, mode):
    region = Region(box, "x", 1.0)
    out = RegionPropagator(mode, growth_per_s=0.0).propagate(
        (region,), KEYFRAME, frame_at(*shift, 0.1), key="t"
    )
    expected = corners(region) + np.array([shift[0], shift[1], shift[0], shift[1]])
    assert out[0].method == mode
    assert np.abs(corners(out[0].region) - expected).max() <= 2.0


def test_static_mode_needs_no_keyframe_image():
    out = RegionPropagator("static").propagate(
        REGIONS, None, frame_at(0, 0, 0.1), keyframe_stamp_ns=0, key="s"
    )
    assert {p.method for p in out} == {"static"}
    assert out[0].confidence == pytest.approx(0.9 * 0.5 ** (0.1 / 5.0))
