"""DriveLM metric families on hand-made answer/truth pairs: right, wrong, partly right, the wrong camera."""

from __future__ import annotations

import math

import pytest

from spotvlm_ros.core.drivelm_metrics import (
    ScoredItem,
    TagRef,
    accuracy,
    match_f1,
    option_letter,
    parse_tags,
    score_by_group,
    score_items,
)

OPTIONS = ("Stopped.", "Back up.", "Turn left.", "Going ahead.")
TRUTH = (TagRef("c1", "CAM_FRONT", 714.3, 503.6), TagRef("c2", "CAM_BACK", 993.3, 503.3))


def test_parse_tags() -> None:
    tags = parse_tags("Watch <c1,CAM_FRONT,714.3,503.6> and <c12,CAM_BACK_LEFT,5,6.5>, not <c3,CAM_FRONT>.")
    assert tags == [TagRef("c1", "CAM_FRONT", 714.3, 503.6), TagRef("c12", "CAM_BACK_LEFT", 5.0, 6.5)]


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("D", "D"),
        ("D.", "D"),
        ("(D) Going ahead.", "D"),
        ("D. Going ahead.", "D"),
        ("The answer is D.", "D"),
        ("going ahead", "D"),
        ("B", "B"),
        ("A car is ahead.", ""),  # an article is not an answer
        ("E", ""),  # no option E
        ("", ""),
    ],
)
def test_option_letter(answer: str, letter: str) -> None:
    assert option_letter(answer, OPTIONS) == letter


def test_accuracy_right_and_wrong() -> None:
    assert accuracy("D. Going ahead.", "D", OPTIONS) == 1.0
    assert accuracy("C", "D", OPTIONS) == 0.0
    assert accuracy("No.", "No.") == 1.0 and accuracy("no", "No.") == 1.0  # yes/no: normalized exact match
    assert accuracy("Yes.", "No.") == 0.0


def test_match_right_wrong_partly_and_wrong_camera() -> None:
    right = "<c1,CAM_FRONT,714.3,503.6> and <c2,CAM_BACK,993.3,503.3>"
    assert match_f1(right, TRUTH) == 1.0
    assert match_f1("<c1,CAM_FRONT,720.0,510.0> and <c2,CAM_BACK,990.0,500.0>", TRUTH) == 1.0  # within 16 px
    assert match_f1("<c1,CAM_FRONT,300.0,200.0>", TRUTH) == 0.0  # wrong place
    assert match_f1("no objects", TRUTH) == 0.0
    # partly right: one of two found (precision 1, recall 0.5)
    assert match_f1("<c1,CAM_FRONT,714.3,503.6>", TRUTH) == pytest.approx(2 / 3)
    # one right, one extra wrong (precision 0.5, recall 0.5)
    assert match_f1("<c1,CAM_FRONT,714.3,503.6> <c7,CAM_FRONT,10.0,10.0>", TRUTH) == pytest.approx(0.5)
    # the right pixels in the wrong camera do not match (DriveLM's own match_result would count them)
    assert match_f1("<c1,CAM_BACK,714.3,503.6> and <c2,CAM_FRONT,993.3,503.3>", TRUTH) == 0.0
    # L1 distance: 10 + 10 = 20 px is too far although each axis is within 16
    assert match_f1("<c1,CAM_FRONT,724.3,513.6>", TRUTH[:1]) == 0.0
    # each truth tag matches once
    assert match_f1("<c1,CAM_FRONT,714.3,503.6> <c1,CAM_FRONT,714.3,503.6>", TRUTH[:1]) == pytest.approx(
        2 / 3
    )


def _items() -> list[ScoredItem]:
    return [
        ScoredItem("perception", "q", "D", "D", ("accuracy",), OPTIONS),
        ScoredItem("perception", "q", "A", "B", ("accuracy",), OPTIONS),
        ScoredItem("planning", "q", "Brake gently to a stop.", "Brake gently to a stop.", ("language",)),
        ScoredItem(
            "planning",
            "q",
            "Watch <c1,CAM_FRONT,714.3,503.6>.",
            "Watch <c1,CAM_FRONT,714.3,503.6>.",
            ("language", "match"),
            (),
            TRUTH[:1],
        ),
        ScoredItem("planning", "q", "Keep going.", None, ("gpt",)),
        ScoredItem("behavior", "q", "D", None, ("accuracy",), OPTIONS),
    ]


def test_score_items_per_family() -> None:
    table = score_items(_items())
    assert table["questions"] == 6 and table["answered"] == 4 and table["skipped"] == 2
    assert table["accuracy_n"] == 3 and table["accuracy"] == pytest.approx(1 / 3)  # a skipped one is wrong
    assert table["language_n"] == 2 and table["rouge_l"] == pytest.approx(1.0) and table["bleu"] > 99
    assert table["match_n"] == 1 and table["match_f1"] == 1.0
    assert table["gpt_n"] == 1 and table["gpt_score"] is None


def test_score_by_group_lists_every_group() -> None:
    table = score_by_group(_items(), ("perception", "prediction", "planning", "behavior"))
    assert list(table) == ["perception", "prediction", "planning", "behavior", "all"]
    assert table["perception"]["accuracy"] == 0.5 and table["perception"]["accuracy_n"] == 2
    assert table["prediction"]["questions"] == 0 and math.isnan(table["prediction"]["accuracy"])
    assert table["behavior"]["skipped"] == 1 and table["behavior"]["accuracy"] == 0.0
    assert table["planning"]["language_n"] == 2 and table["planning"]["gpt_n"] == 1


def test_wrong_language_scores_low() -> None:
    wrong = [
        ScoredItem(
            "planning", "q", "Brake gently to a stop.", "Accelerate hard and turn left.", ("language",)
        )
    ]
    table = score_items(wrong)
    assert table["rouge_l"] < 0.2 and table["bleu"] < 10
    partly = [ScoredItem("planning", "q", "Brake gently to a stop.", "Brake gently.", ("language",))]
    assert 0.2 < score_items(partly)["rouge_l"] < 1.0
