"""Property-based fuzzing of what crosses a trust boundary: messages, config loading, image headers.

The grounding parsers and the prompt sanitizer have their own fuzz tests (test_grounding.py,
test_core_sanitize.py). Here: domain values survive dict and CDR round trips; malformed message dicts
fail with KeyError/TypeError/ValueError only; any nested dict, YAML text or ROS parameter set gives a
valid config or a :class:`ConfigError`; any raw or compressed image header gives an RGB image or an
:class:`ImageDecodeError`, never another exception or an oversized allocation.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from spotvlm_ros.core import messages as M
from spotvlm_ros.core.config import ConfigError, SpotVlmConfig, config_from_dict, from_ros_params, load_config
from spotvlm_ros.core.types import Box, EdgeAnswer, LvlmResult, Region
from spotvlm_ros.runtime.image_codec import (
    ImageDecodeError,
    decode_compressed,
    decode_raw,
    encode_jpeg,
    supported_encodings,
)
from spotvlm_ros.runtime.typestore import build_message, message_to_dict, spotvlm_typestore

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STORE = spotvlm_typestore()
MAX_STAMP_NS = (2**31 - 1) * 10**9  # builtin_interfaces/Time.sec is int32

# ROS strings are UTF-8: no lone surrogates (the HTTP backend replaces them at the network boundary)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
coords = st.floats(-1e6, 1e6, allow_nan=False)
sizes = st.floats(0.0, 1e6, allow_nan=False)


@st.composite
def regions(draw) -> Region:
    x, y, w, h = draw(coords), draw(coords), draw(sizes), draw(sizes)
    return Region(Box(x, y, x + w, y + h), draw(texts), draw(st.floats(0, 1)))


def lvlm_results() -> st.SearchStrategy[LvlmResult]:
    return st.builds(
        LvlmResult,
        request_id=texts,
        stamp_ns=st.integers(0, MAX_STAMP_NS),
        task=texts,
        prompt=texts,
        text=texts,
        regions=st.lists(regions(), max_size=4).map(tuple),
        image_size=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
        summary=texts,
        model=texts,
        round_trip_s=st.floats(0, 1e6),
        frame_id=texts,
    )


def edge_answers() -> st.SearchStrategy[EdgeAnswer]:
    counts = st.integers(0, 2**32 - 1)
    return st.builds(
        EdgeAnswer,
        stamp_ns=st.integers(0, MAX_STAMP_NS),
        task=texts,
        text=texts,
        frame_id=texts,
        regions=st.lists(regions(), max_size=3).map(tuple),
        context_id=texts,
        context_age_s=st.floats(-1, 1e6),
        context_status=texts,
        focus_regions=st.lists(regions(), max_size=3).map(tuple),
        focus_mode=texts,
        inference_s=st.floats(0, 1e6),
        prompt_tokens=counts,
        image_tokens=counts,
        skipped_frames=counts,
    )


def same_regions(a: tuple[Region, ...], b: tuple[Region, ...]) -> bool:
    """Equal up to the float rounding of the centre/size box layout."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        scale = max(1.0, *(abs(v) for v in ra.box.as_tuple()))
        if ra.label != rb.label or ra.score != rb.score:
            return False
        if any(abs(p - q) > 1e-9 * scale for p, q in zip(ra.box.as_tuple(), rb.box.as_tuple(), strict=True)):
            return False
    return True


def through_cdr(msgtype: str, msg: dict) -> dict:
    raw = STORE.serialize_cdr(build_message(STORE, msgtype, msg), msgtype)
    return message_to_dict(STORE.deserialize_cdr(raw, msgtype))


@FUZZ
@given(lvlm_results(), st.booleans())
def test_lvlm_results_survive_dict_and_cdr_round_trips(result, via_cdr):
    msg = M.lvlm_result_to_msg(result)
    if via_cdr:
        msg = through_cdr("spotvlm_msgs/msg/LvlmContext", msg)
    back = M.lvlm_result_from_msg(msg)
    assert same_regions(back.regions, result.regions)
    assert back == LvlmResult(**{**_fields(result), "regions": back.regions})


@FUZZ
@given(edge_answers(), st.booleans())
def test_edge_answers_survive_dict_and_cdr_round_trips(answer, via_cdr):
    msg = M.edge_answer_to_msg(answer)
    if via_cdr:
        msg = through_cdr("spotvlm_msgs/msg/EdgeAnswer", msg)
    back = M.edge_answer_from_msg(msg)
    assert same_regions(back.regions, answer.regions) and same_regions(
        back.focus_regions, answer.focus_regions
    )
    fields = {**_fields(answer), "regions": back.regions, "focus_regions": back.focus_regions}
    assert back == EdgeAnswer(**fields)


def _fields(value) -> dict:
    return {name: getattr(value, name) for name in value.__slots__}


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*prefix, index)
            yield from _paths(child, (*prefix, index))


def check_malformed_context(result: LvlmResult, data) -> None:
    """Break 1-3 places of a context message: it converts (sanely) or fails with a clear error type."""
    msg = M.lvlm_result_to_msg(result)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(msg))
        path = data.draw(st.sampled_from(paths))
        parent = msg
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(junk)
    try:
        back = M.lvlm_result_from_msg(msg)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError):
        return
    for region in back.regions:  # accepted: boxes are never NaN or negative-sized
        assert region.box.width >= 0 and region.box.height >= 0
        assert all(math.isfinite(v) for v in region.box.as_tuple())


@FUZZ
@given(lvlm_results(), st.data())
def test_malformed_context_messages_fail_with_a_clear_error_type(result, data):
    check_malformed_context(result, data)


# ---- configuration --------------------------------------------------------------------------------------

SECTIONS = {name: type(value) for name, value in SpotVlmConfig() if isinstance(value, BaseModel)}
LEAVES = [name for name in SpotVlmConfig.model_fields if name not in SECTIONS] + [
    f"{section}.{field}" for section, kind in SECTIONS.items() for field in kind.model_fields
]
values = st.one_of(
    junk,
    st.sampled_from(["vqa", "grounding", "crop", "openai", "lognormal:mean=1,sigma=0.5", "raw", "", "auto"]),
    st.floats(-10, 10000),
    st.lists(st.sampled_from(["svlm", "spotvlm", "bogus", "constant:delay=0.5"]), max_size=3),
)


@FUZZ
@given(
    st.dictionaries(st.sampled_from([*LEAVES, "bogus", "edge.bogus", "camera.depth.x"]), values, max_size=6)
)
def test_any_parameter_set_gives_a_config_or_a_config_error(params):
    try:
        config = from_ros_params(params)
    except ConfigError as err:
        assert str(err).startswith("invalid config")
        return
    assert isinstance(config, SpotVlmConfig)
    for key, value in params.items():  # accepted values are kept exactly, never coerced
        if key not in LEAVES:
            continue  # e.g. camera.depth.x replaced by a later camera.depth
        section, _, name = key.rpartition(".")
        held = getattr(getattr(config, section) if section else config, name)
        assert held == value or (isinstance(value, float) and math.isnan(value))


nested = st.recursive(
    values,
    lambda children: st.dictionaries(
        st.sampled_from([*LEAVES, *SECTIONS, "ros__parameters", "/**", "x"]), children, max_size=4
    ),
    max_leaves=12,
)


@FUZZ
@given(nested)
def test_any_nested_value_gives_a_config_or_a_config_error(data):
    try:
        config = config_from_dict(data)
    except ConfigError:
        return
    assert isinstance(config, SpotVlmConfig)


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_yaml_text_gives_a_config_or_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("yaml") / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    with contextlib.suppress(ConfigError):
        load_config(path)


# ---- image headers ----------------------------------------------------------------------------------------

encodings = st.one_of(st.sampled_from(supported_encodings()), st.text(max_size=12))


@FUZZ
@given(
    width=st.integers(-5, 70_000),
    height=st.integers(-5, 70_000),
    encoding=encodings,
    step=st.integers(-5, 300_000),
    big_endian=st.booleans(),
    data=st.binary(max_size=4096),
)
def test_any_raw_image_header_decodes_or_raises_image_decode_error(
    width, height, encoding, step, big_endian, data
):
    try:
        image = decode_raw(
            data, width=width, height=height, encoding=encoding, step=step, is_bigendian=big_endian
        )
    except ImageDecodeError as err:
        assert err.reason and err.detail
        return
    assert image.shape == (height, width, 3) and image.dtype == np.uint8


BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "8UC3": 3, "rgba8": 4, "bgra8": 4, "8UC4": 4, "mono8": 1, "8UC1": 1}
BYTES_PER_PIXEL |= {"yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2, "mono16": 2, "16UC1": 2}


@FUZZ
@given(st.data())
def test_consistent_raw_images_of_every_encoding_and_size_decode(data):
    encoding = data.draw(st.sampled_from(supported_encodings()))
    width, height = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    channels = BYTES_PER_PIXEL.get(encoding) or (2 if encoding.endswith("16") else 1)  # bayer_*16 / bayer_*8
    padding = data.draw(st.integers(0, 3))
    step = width * channels + padding
    pixels = data.draw(st.binary(min_size=step * height, max_size=step * height))
    try:
        image = decode_raw(pixels, width=width, height=height, encoding=encoding, step=step)
    except ImageDecodeError as err:  # a size the format cannot have (e.g. odd YUV widths) is refused clearly
        assert err.reason in ("bad_size", "size_mismatch", "bad_step")
        return
    assert image.shape == (height, width, 3) and image.dtype == np.uint8


JPEG = encode_jpeg(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8))


@FUZZ
@given(st.data())
def test_any_mutated_or_random_compressed_image_decodes_or_raises(data):
    if data.draw(st.booleans()):
        blob = bytearray(JPEG)
        for _ in range(data.draw(st.integers(1, 8))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(blob[: data.draw(st.integers(0, len(blob)))])
    else:
        blob = data.draw(st.binary(max_size=512))
    try:
        image = decode_compressed(
            blob, data.draw(st.sampled_from(["jpeg", "png", "", "rgb8; jpeg compressed bgr8"]))
        )
    except ImageDecodeError as err:
        assert err.reason
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assume(image.size > 0)
    assert image.shape[0] * image.shape[1] <= 24 * 32 * 64


@pytest.mark.slow
@settings(max_examples=5000, deadline=None)
@given(lvlm_results(), st.data())
def test_malformed_context_messages_long_run(result, data):
    check_malformed_context(result, data)
