"""Extractive compression: budget never exceeded, deterministic, numbers and boxes never cut."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotvlm_ros.core.compression import (
    Compressor,
    Doc,
    estimate_tokens,
    protected_spans,
    split_units,
    truncate_chars,
)

TEXT = (
    "The traffic light is red. A car at [12, 40, 88, 120] waits, approx. 3.5 m away; a cyclist, "
    "wearing a helmet, crosses from (300,200),(340,260) to the left. The sky is cloudy, e.g. grey. "
    "Two pedestrians wait at 12:30 near the bus stop."
)
NUMBER_OR_BOX = re.compile(
    r"\[[^\[\]]*\d[^\[\]]*\]|\([^()]*\d[^()]*\)(?:,\([^()]*\d[^()]*\))?|\d+(?:[.,:]\d+)*"
)


def chars_per_token_counter(text: str) -> int:
    """A stand-in for a subword tokenizer: about one token per 3 characters, at least one per word."""
    return sum(max(1, -(-len(w) // 3)) for w in text.split())


def test_estimate_counts_words_and_punctuation():
    assert estimate_tokens("") == 0
    assert estimate_tokens("The light is red.") == 5
    assert estimate_tokens("[12, 40]") == 5


def test_sentences_split_but_not_inside_numbers_boxes_or_abbreviations():
    units = split_units(TEXT, max_unit_tokens=100)
    assert units == [
        "The traffic light is red.",
        "A car at [12, 40, 88, 120] waits, approx. 3.5 m away; a cyclist, wearing a helmet, crosses from "
        "(300,200),(340,260) to the left.",
        "The sky is cloudy, e.g. grey.",
        "Two pedestrians wait at 12:30 near the bus stop.",
    ]


def test_long_sentences_split_into_clauses_then_word_runs():
    units = split_units(TEXT, max_unit_tokens=12)
    assert "approx. 3.5 m away;" in units and "wearing a helmet," in units
    assert all(estimate_tokens(u) <= 12 or NUMBER_OR_BOX.fullmatch(u) for u in units)
    assert " ".join(units) == TEXT  # nothing lost or reordered
    for box in ("[12, 40, 88, 120]", "(300,200),(340,260)"):
        assert any(box in u for u in units)


def test_protected_spans_cover_boxes_points_json_and_numbers():
    text = 'at {"bbox_2d": [1, 2, 3, 4], "label": "car"} and [[1, 2, 3, 4], [5, 6, 7, 8]] or 1,200.5 m'
    spans = [text[a:b] for a, b in protected_spans(text)]
    assert '{"bbox_2d": [1, 2, 3, 4], "label": "car"}' in spans
    assert "[[1, 2, 3, 4], [5, 6, 7, 8]]" in spans
    assert "1,200.5" in spans


def test_relevant_units_win_over_irrelevant_ones():
    compressor = Compressor()
    text = "The sky is cloudy. The traffic light is red. Birds fly south."
    out = compressor.compress(text, budget=7, query="What colour is the traffic light?")
    assert out == "The traffic light is red."
    assert compressor.compress(text, budget=100) == text  # fits: unchanged


def test_gaps_are_marked_and_order_is_kept():
    compressor = Compressor()
    text = "Traffic light is red. Sky is blue. Grass is green. Car light is on."
    out = compressor.compress(text, budget=12, query="traffic light car light")
    assert out == "Traffic light is red. … Car light is on."


def test_select_pays_overhead_once_per_doc_and_prefers_recent_and_bonus():
    compressor = Compressor()
    docs = [Doc("Old answer here.", rank=2, overhead=5), Doc("New answer here.", rank=0, overhead=5)]
    kept = compressor.select(docs, budget=9, query="")
    assert kept == [None, "New answer here."]
    boosted = [Doc("Old answer here.", rank=2, overhead=5, bonus=1.0), docs[1]]
    assert compressor.select(boosted, budget=9, query="") == ["Old answer here.", None]
    assert compressor.select(docs, budget=18, query="") == ["Old answer here.", "New answer here."]


def test_custom_measure_is_honoured_exactly():
    compressor = Compressor()
    docs = [Doc("a b c. d e f. g h i.")]
    measured: list[int] = []

    def measure(texts):
        cost = 3 * sum(estimate_tokens(t) for t in texts if t is not None)
        measured.append(cost)
        return cost

    kept = compressor.select(docs, budget=12, query="", measure=measure)
    assert measure(kept) <= 12 and kept[0]
    assert len(measured) >= 2  # over budget at first, trimmed until it fit


def test_truncate_chars_keeps_numbers_whole():
    assert truncate_chars("short", 10) == "short"
    out = truncate_chars("speed 12.75 m/s and 13.5", 10)
    assert out == "speed…" and len(out) <= 10
    assert truncate_chars("x" * 50, 5) == "…"


def test_token_counts_and_units_are_memoised():
    calls = []

    def counter(text: str) -> int:
        calls.append(text)
        return estimate_tokens(text)

    compressor = Compressor(counter)
    compressor.compress(TEXT, 20, "traffic light")
    first = len(calls)
    compressor.compress(TEXT, 20, "traffic light")
    assert len(calls) == first
    assert compressor.count("The light is red.") == compressor.count_once("The light is red.") == 5
    assert len(calls) == first + 1  # count_once used the memoised count
    assert compressor.count_once("Ages now: K1 2.4 s.") == compressor.count_once("Ages now: K1 2.4 s.") == 9
    assert calls[-2:] == ["Ages now: K1 2.4 s."] * 2 and compressor.count_once("") == 0  # not memoised


words = st.sampled_from(
    [
        "red",
        "light",
        "car",
        "the",
        "is",
        "3.5",
        "12:30",
        "1,200",
        "[1, 2, 3, 4]",
        "(10,20),(30,40)",
        "e.g.",
        "approx.",
        "left",
        "traffic",
        "a",
        "cyclist",
        '{"bbox_2d": [5, 6, 7, 8]}',
    ]
)
punct = st.sampled_from(["", "", ",", ";", ".", "!", "?", ":", " -"])
sentences = st.lists(st.tuples(words, punct).map("".join), min_size=1, max_size=40).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(
    text=sentences,
    budget=st.integers(min_value=0, max_value=60),
    query=st.sampled_from(["", "What is the traffic light?", "Where is the car?"]),
    subword=st.booleans(),
)
def test_property_budget_never_exceeded_deterministic_and_spans_whole(text, budget, query, subword):
    count = chars_per_token_counter if subword else estimate_tokens
    out = Compressor(count).compress(text, budget, query)
    assert count(out) <= budget
    assert out == Compressor(count).compress(text, budget, query)  # deterministic, fresh caches
    source = {text[a:b] for a, b in protected_spans(text)}
    for a, b in protected_spans(out):
        assert out[a:b] in source or out[a:b] == "...", (out[a:b], text)


@settings(max_examples=100, deadline=None)
@given(
    texts=st.lists(sentences, min_size=1, max_size=5),
    overheads=st.lists(st.integers(min_value=0, max_value=12), min_size=5, max_size=5),
    budget=st.integers(min_value=0, max_value=80),
)
def test_property_multi_doc_selection_fits_budget(texts, overheads, budget):
    docs = [Doc(t, rank=i, overhead=overheads[i]) for i, t in enumerate(texts)]
    compressor = Compressor()
    kept = compressor.select(docs, budget, "traffic light")
    total = sum(estimate_tokens(t) + docs[i].overhead for i, t in enumerate(kept) if t is not None)
    assert total <= budget
    assert kept == Compressor().select(docs, budget, "traffic light")


@pytest.mark.parametrize("budget", [0, 1, 3])
def test_tiny_budgets_still_hold(budget):
    assert estimate_tokens(Compressor().compress(TEXT, budget)) <= budget
