"""Grounding parsers: every box dialect mapped to original-image pixels, and garbage never raises."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotvlm_ros.models.grounding import COORD_FORMATS, grounding_instruction, parse_regions

W, H = 640, 480


def boxes(parse):
    return [tuple(round(v, 2) for v in r.box.as_tuple()) for r in parse.regions]


def labels(parse):
    return [r.label for r in parse.regions]


# (name, text, image_size, model_input_size, coord_format, expected boxes, expected labels)
CASES = [
    (
        "qwen25 json, model input half size",
        '[{"bbox_2d": [10, 20, 110, 220], "label": "car"}]',
        (640, 480),
        (320, 240),
        "auto",
        [(20, 40, 220, 440)],
        ["car"],
    ),
    (
        "qwen25 json in fence with prose after",
        'Here you go:\n```json\n[\n {"bbox_2d": [0, 0, 64, 48], "label": "sign"},\n'
        ' {"bbox_2d": [320, 240, 640, 480], "label": "light"}\n]\n```\nThe light is red.',
        (640, 480),
        None,
        "auto",
        [(0, 0, 64, 48), (320, 240, 640, 480)],
        ["sign", "light"],
    ),
    (
        "json with score and nested list key",
        '{"objects": [{"bbox_2d": [1, 2, 30, 40], "label": "cone", "score": 0.4}]}',
        (100, 100),
        None,
        "qwen25_abs",
        [(1, 2, 30, 40)],
        ["cone"],
    ),
    (
        "malformed json: single quotes, trailing comma, unclosed",
        "[{'bbox_2d': [1, 2, 30, 40], 'label': 'x',}, {'bbox_2d': [5, 5, 50, 50], 'label': 'y'",
        (100, 100),
        None,
        "auto",
        [(1, 2, 30, 40), (5, 5, 50, 50)],
        ["x", "y"],
    ),
    (
        "json objects one per line, no list",
        '{"bbox_2d": [10, 10, 20, 20], "label": "a"}\n{"bbox_2d": [30, 30, 40, 40], "label": "b"}',
        (100, 100),
        None,
        "auto",
        [(10, 10, 20, 20), (30, 30, 40, 40)],
        ["a", "b"],
    ),
    (
        "json normalized coordinates (auto)",
        '[{"bbox_2d": [0.1, 0.25, 0.5, 0.75], "label": "dog"}]',
        (200, 100),
        None,
        "auto",
        [(20, 25, 100, 75)],
        ["dog"],
    ),
    (
        "json on 0-1000 grid when told (qwen3 style)",
        '[{"bbox_2d": [100, 200, 500, 1000], "label": "bus"}]',
        (1000, 500),
        None,
        "qwen2_1000",
        [(100, 100, 500, 500)],
        ["bus"],
    ),
    (
        "json swapped corners are ordered, overflow clipped",
        '[{"bbox_2d": [700, 500, 600, 400], "label": "t"}]',
        (640, 480),
        None,
        "absolute",
        [(600, 400, 640, 480)],
        ["t"],
    ),
    (
        "qwen2 points with object ref",
        "<|object_ref_start|>cat<|object_ref_end|><|box_start|>(100,200),(500,600)<|box_end|>",
        (1000, 500),
        None,
        "auto",
        [(100, 100, 500, 300)],
        ["cat"],
    ),
    (
        "qwen2 points with special tokens stripped",
        "the cat (100,200),(500,600) and a dog (0,0),(1000,1000)",
        (1000, 1000),
        None,
        "auto",
        [(100, 200, 500, 600), (0, 0, 1000, 1000)],
        ["the cat", "and a dog"],
    ),
    (
        "florence loc tokens, label before",
        "</s><s>car<loc_100><loc_200><loc_300><loc_400>dog<loc_0><loc_0><loc_999><loc_999></s>",
        (1000, 1000),
        None,
        "auto",
        [(100.5, 200.5, 300.5, 400.5), (0.5, 0.5, 999.5, 999.5)],
        ["car", "dog"],
    ),
    (
        "florence loc tokens scaled to the image",
        "person<loc_0><loc_0><loc_499><loc_999>",
        (640, 480),
        None,
        "auto",
        [(0.32, 0.24, 319.68, 479.76)],
        ["person"],
    ),
    (
        "paligemma yxyx tokens, label after, ; separated",
        "<loc0256><loc0512><loc0768><loc1023> cat ; <loc0000><loc0000><loc0512><loc0512> dog",
        (1024, 1024),
        None,
        "auto",
        [(512, 256, 1023, 768), (0, 0, 512, 512)],
        ["cat", "dog"],
    ),
    (
        "paligemma scaled to a non-square image",
        "<loc0000><loc0000><loc0512><loc1024> bus",
        (640, 480),
        None,
        "auto",
        [(0, 0, 640, 240)],
        ["bus"],
    ),
    (
        "plain lists, normalized and absolute",
        "car: [0.1, 0.2, 0.5, 0.6]\nperson - [10, 10, 20, 20]",
        (100, 100),
        None,
        "auto",
        [(10, 20, 50, 60), (10, 10, 20, 20)],
        ["car", "person"],
    ),
    (
        "plain list absolute through the model resize",
        "The box is [28, 28, 56, 84].",
        (640, 480),
        (448, 336),
        "auto",
        [(40, 40, 80, 120)],
        ["The box is"],
    ),
    (
        "plain list forced normalized",
        "[0, 0, 1, 1]",
        (64, 32),
        None,
        "normalized",
        [(0, 0, 64, 32)],
        [""],
    ),
]


@pytest.mark.parametrize(
    ("text", "image_size", "input_size", "fmt", "want_boxes", "want_labels"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_formats(text, image_size, input_size, fmt, want_boxes, want_labels):
    parse = parse_regions(text, image_size, input_size, fmt)
    assert parse.reason == ""
    assert boxes(parse) == [tuple(float(v) for v in b) for b in want_boxes]
    assert labels(parse) == want_labels


def test_scores_read_and_clamped():
    text = '[{"bbox_2d": [1,1,9,9], "label": "a", "score": 0.3}, {"bbox_2d": [1,1,9,9], "confidence": 7}]'
    parse = parse_regions(text, (10, 10))
    assert [r.score for r in parse.regions] == [0.3, 1.0]
    loose = parse_regions("{'bbox_2d': [1,1,9,9], 'label': 'b', 'score': 0.25", (10, 10))
    assert [(r.label, r.score) for r in loose.regions] == [("b", 0.25)]


def test_degenerate_and_non_finite_dropped_with_reason():
    text = '[{"bbox_2d": [5, 5, 5, 50]}, {"bbox_2d": [1e999, 0, 10, 10]}, {"bbox_2d": [900, 900, 950, 950]}]'
    parse = parse_regions(text, (100, 100))
    assert parse.regions == ()
    assert parse.dropped == 3
    assert "degenerate" in parse.reason and "json" in parse.reason
    mixed = parse_regions('[{"bbox_2d": [5, 5, 5, 50]}, {"bbox_2d": [10, 10, 40, 40]}]', (100, 100))
    assert boxes(mixed) == [(10.0, 10.0, 40.0, 40.0)] and mixed.dropped == 1 and mixed.reason == ""


@pytest.mark.parametrize(
    ("text", "image_size", "input_size", "fmt", "reason_part"),
    [
        ("", (10, 10), None, "auto", "empty"),
        ("   \n", (10, 10), None, "auto", "empty"),
        ("The light is red.", (10, 10), None, "auto", "no boxes"),
        ('[{"bbox_2d": [1, 2, 3]}]', (10, 10), None, "auto", "no boxes"),
        ("[1, 2, 3, 4]", (0, 10), None, "auto", "image_size"),
        ("[1, 2, 3, 4]", ("a", 10), None, "auto", "image_size"),
        ("[1, 2, 3, 4]", (10, 10), (0, 5), "auto", "model_input_size"),
        ("[1, 2, 3, 4]", (10, 10), None, "yolo", "coord_format"),
        (None, (10, 10), None, "auto", "expected text"),
    ],
)
def test_garbage_gives_reason(text, image_size, input_size, fmt, reason_part):
    parse = parse_regions(text, image_size, input_size, fmt)
    assert parse.regions == ()
    assert reason_part in parse.reason


def test_all_explicit_formats_accepted():
    for fmt in COORD_FORMATS:
        parse = parse_regions('[{"bbox_2d": [0.1, 0.1, 0.6, 0.6]}]', (100, 100), None, fmt)
        assert "coord_format" not in parse.reason


def test_paligemma_format_reorders_plain_numbers():
    parse = parse_regions("[0, 256, 512, 768]", (1024, 1024), None, "paligemma_1024")
    assert boxes(parse) == [(256.0, 0.0, 768.0, 512.0)]


def test_runaway_output_is_bounded():
    text = "".join(f'{{"bbox_2d": [{i % 50}, 0, {i % 50 + 10}, 10], "label": "o{i}"}}\n' for i in range(500))
    parse = parse_regions(text, (100, 100))
    assert len(parse.regions) == 100


def test_instruction_names_json_format_and_hint():
    assert "bbox_2d" in grounding_instruction()
    assert "traffic light" in grounding_instruction("the traffic light")


def test_gemma4_box_2d_is_y_first_on_a_1000_grid():
    parse = parse_regions(
        '[{"box_2d": [100, 500, 900, 1000], "label": "car"}]', (640, 480), None, "gemini_yxyx_1000"
    )
    assert boxes(parse) == [(320.0, 48.0, 640.0, 432.0)] and parse.regions[0].label == "car"


def test_qwen3_vl_json_on_the_1000_grid_ignores_the_model_input_size():
    text = '[{"bbox_2d": [500, 0, 1000, 1000], "label": "car"}]'
    for size in ((640, 480), (1280, 960)):
        parse = parse_regions(text, size, (448, 336), "qwen2_1000")
        assert boxes(parse) == [(size[0] / 2, 0.0, float(size[0]), float(size[1]))]
    # the same answer read the Qwen2.5-VL way lands elsewhere: why the family's convention matters
    assert boxes(parse_regions(text, (640, 480), (640, 480), "qwen25_abs")) == [(500.0, 0.0, 640.0, 480.0)]


def test_instruction_asks_each_family_for_its_own_convention():
    assert "0-1000 grid relative to the image" in grounding_instruction(coord_format="qwen2_1000")
    assert '"box_2d": [y1, x1, y2, x2]' in grounding_instruction(coord_format="gemini_yxyx_1000")
    assert "pixel coordinates" in grounding_instruction(coord_format="qwen25_abs")


def _assert_inside(parse, size):
    width, height = size
    assert isinstance(parse.reason, str)
    for region in parse.regions:
        x1, y1, x2, y2 = region.box.as_tuple()
        assert all(math.isfinite(v) for v in (x1, y1, x2, y2))
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert 0.0 <= region.score <= 1.0
        assert isinstance(region.label, str)


_JUNK = [
    *"[]{},:\"'()\n-.e;",
    "```json\n",
    "```",
    '"bbox_2d"',
    '"label"',
    '"score"',
    "<loc_",
    "<loc",
    ">",
    "<|box_start|>",
    "<|box_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    " ; ",
    "car",
    "1e999",
    "nan",
    "NaN",
    "Infinity",
]


def _fragment_pool(seed: int = 0, per_syntax: int = 120) -> list[str]:
    """Box fragments of every syntax with wild numbers (drawn once: cheaper than composite strategies)."""
    rng = random.Random(seed)

    def num() -> str:
        roll = rng.random()
        if roll < 0.4:
            return str(rng.randint(-200, 5000))
        if roll < 0.7:
            return f"{rng.uniform(-0.5, 1.5):.3f}"
        return rng.choice(["nan", "inf", "-inf", "1e999", "1e-400", "-0", "0", "12.", ".5", "3e2"])

    def label() -> str:
        return rng.choice(["car", "a b", "x;y", "'q'", '"z"', "", "<|im_end|>"])

    def bins(high: int) -> list[int]:
        return [rng.randint(0, high) for _ in range(4)]

    pool = [str(v) for v in range(-20, 1100, 7)]
    for _ in range(per_syntax):
        pool += [
            f'{{"bbox_2d": [{num()}, {num()}, {num()}, {num()}], "label": "{label()}"}}',
            f"<|box_start|>({num()},{num()}),({num()},{num()})<|box_end|>",
            "{}<loc_{}><loc_{}><loc_{}><loc_{}>".format(label(), *bins(1300)),
            "<loc{:04d}><loc{:04d}><loc{:04d}><loc{:04d}> {} ;".format(*bins(1300), label()),
            f"[{num()}, {num()}, {num()}, {num()}]",
        ]
    return pool


_GRAMMARISH = st.lists(st.sampled_from(_JUNK + _fragment_pool()), max_size=40).map("".join)
_SIZES = st.tuples(st.integers(1, 4000), st.integers(1, 4000))
_FORMATS = st.sampled_from(COORD_FORMATS)


@settings(max_examples=8000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_GRAMMARISH, size=_SIZES, input_size=st.one_of(st.none(), _SIZES), fmt=_FORMATS)
def test_fuzz_grammar_like_strings(text, size, input_size, fmt):
    _assert_inside(parse_regions(text, size, input_size, fmt), size)


@settings(max_examples=2000, deadline=None)
@given(text=st.text(max_size=300), size=_SIZES)
def test_fuzz_arbitrary_text(text, size):
    _assert_inside(parse_regions(text, size), size)
