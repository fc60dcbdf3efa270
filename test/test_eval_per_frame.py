"""Per-frame records of an evaluation and the switch oracle computed from them."""

from __future__ import annotations

import json
import math

import pytest

from spotvlm_ros.cli import main as cli_main
from spotvlm_ros.core.annotations import AnnotationIndex, FrameAnnotation, VqaItem
from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.types import Box, EdgeAnswer, Region
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.eval.frames import concat, frame_table, read_frames
from spotvlm_ros.runtime.eval.oracle import (
    breakdown_markdown,
    cold_start_share,
    context_breakdown,
    oracle_markdown,
    switch_oracle,
)
from spotvlm_ros.runtime.eval.runner import EvalPlan, prepare_eval, run_eval
from spotvlm_ros.runtime.eval.tasks import TaskItem
from spotvlm_ros.runtime.make_bag import make_synthetic_bag

ZERO = {"edge.backend": "zero", "cloud.backend": "zero", "edge.step_time_s": 0.15}


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "clips"
    make_synthetic_bag(path, frames=20, clips=2, width=160, height=120, seed=11)
    return path


def test_per_frame_records_agree_with_the_reported_scores(bag):
    config = load_config(None, ZERO)
    plan = EvalPlan(
        modes=["svlm", "lvlm", "spotvlm", "lvlm_blocking"],
        profiles=["constant:delay=0.4", "lognormal:mean=1,sigma=0.8"],
        tasks=["vqa"],
        draws=2,
        per_frame=True,
    )
    setup = prepare_eval(bag, config, plan)
    lights = [a.answer("light") for a in setup.annotations.items.values()]
    common = max(sorted(set(lights)), key=lights.count)
    results = run_eval(setup, ZeroCostBackend("zero:edge"), ZeroCostBackend("zero:cloud", answer=common))
    table = results.frames_table()
    assert table.num_rows == sum(r.metrics["frames_scored"] for r in results.runs)
    right = 0
    for run in results.runs:
        rows = run.frames.to_pydict()
        assert len(rows["correct"]) == run.metrics["frames_scored"] == 40  # 2 clips x 20 frames
        assert math.fsum(rows["correct"]) / len(rows["correct"]) == pytest.approx(run.score, abs=1e-12)
        assert len(set(rows["sequence"])) == 2
        assert set(rows["mode"]) == {run.mode} and set(rows["item"]) == {run.item.key}
        right += sum(rows["correct"])
        if run.mode == "lvlm":  # answers are the arrived LVLM text, and say which context they are
            used = [i for i, c in enumerate(rows["context_id"]) if c]
            assert used and all(rows["context_answer"][i] == common for i in used)
            if run.profile.startswith("constant"):  # an answer is at least the delay old
                assert all(rows["context_age_s"][i] >= 0.4 - 1e-9 for i in used)
            assert all(math.isnan(rows["context_age_s"][i]) for i in range(40) if i not in used)
    assert right > 0  # the cloud's commonest light state is right on some frames
    assert not results.runs[0].to_json().get("frames")  # records stay out of results.json


def test_eval_cli_writes_the_records_and_the_oracle(bag, tmp_path):
    out = tmp_path / "out"
    sets = [f"--set={k}={v}" for k, v in ZERO.items()]
    code = cli_main(
        [
            "eval",
            str(bag),
            "--out",
            str(out),
            "--modes",
            "svlm,lvlm,spotvlm",
            "--tasks",
            "vqa",
            "--questions",
            "light",
            "--profile",
            "constant:delay=0.4",
            "--per-frame",
            "--no-plots",
            "--quiet",
            *sets,
        ]
    )
    assert code == 0
    table = read_frames(out)
    data = json.loads((out / "results.json").read_text())
    assert data["per_frame"] == {"file": "frames.parquet", "rows": table.num_rows} and table.num_rows == 120
    (item_row, overall) = data["switch_oracle"]
    assert item_row["item"] == "vqa:light" and overall["item"] == "all"
    assert 0.0 <= data["cold_start_share"]["constant:delay=0.4"] < 1.0
    assert "## Switch oracle" in (out / "report.md").read_text()
    assert {r["item"] for r in data["context_breakdown"]} == {"vqa:light"}
    assert sum(r["frames"] for r in data["context_breakdown"]) == 40  # every scored frame of the spotvlm run
    assert (
        cli_main(
            [
                "eval",
                str(bag),
                "--out",
                str(tmp_path / "plain"),
                "--modes",
                "svlm",
                "--tasks",
                "vqa",
                "--questions",
                "light",
                "--profile",
                "constant:delay=0.4",
                "--no-plots",
                "--quiet",
                *sets,
            ]
        )
        == 0
    )
    assert not (tmp_path / "plain" / "frames.parquet").exists()


# A hand-built run: 5 frames, truth "go" everywhere; per mode, the answer held at each frame.
STAMPS = [0, 100, 200, 300, 400]
ANSWERS = {
    "svlm": ["go", "stop", "stop", "go", "stop"],  # right on frames 0, 3
    "lvlm": ["", "go", "stop", "stop", "go"],  # right on frames 1, 4
    "spotvlm": ["stop", "go", "stop", "go", "stop"],  # right on 1 (svlm wrong), 3; wrong on 0 (svlm right)
}


def _hand_built(item: TaskItem, draw: int, truth: str = "go"):
    annotations = AnnotationIndex(
        {s: FrameAnnotation(s, (VqaItem(item.item_id, item.prompt, truth),), sequence="d") for s in STAMPS}
    )
    tables = []
    for mode, texts in ANSWERS.items():
        held = []
        for stamp, text in zip(STAMPS, texts, strict=True):
            context = "req-1" if mode != "svlm" and stamp >= 100 else ""
            focus = (Region(Box(1, 2, 3, 4), "sign"),) if mode == "spotvlm" else ()
            held.append(
                (
                    stamp,
                    EdgeAnswer(
                        stamp,
                        "vqa",
                        text,
                        context_id=context,
                        context_age_s=0.5 if context else -1.0,
                        focus_regions=focus,
                    ),
                )
            )
        tables.append(
            frame_table(
                profile="p",
                profile_mean_s=1.5,
                draw=draw,
                mode=mode,
                item=item,
                annotations=annotations,
                held=held,
                own=STAMPS[::2],
                contexts=(),
            )
        )
    return tables


def test_switch_oracle_and_share_on_a_hand_built_run():
    one, two = TaskItem("vqa", "one", "Q1?"), TaskItem("vqa", "two", "Q2?")
    # item two: the truth is "stop", so every answer flips
    table = concat([*_hand_built(one, 0), *_hand_built(one, 1), *_hand_built(two, 0, truth="stop")])
    rows = {r["item"]: r for r in switch_oracle(table)}
    first = rows["vqa:one"]
    # svlm right 2/5, lvlm 2/5, oracle (0,1,3,4) 4/5, spotvlm 2/5 -> share (0.4-0.4)/(0.8-0.4) = 0
    assert (first["svlm"], first["lvlm"], first["switch_oracle"], first["spotvlm"]) == (0.4, 0.4, 0.8, 0.4)
    assert first["oracle_share"] == 0.0 and first["frames"] == 10
    assert first["right_where_svlm_wrong"] == 2 and first["wrong_where_svlm_right"] == 2  # summed over draws
    second = rows["vqa:two"]
    # truth "stop": svlm right on 1,2,4 (0.6), lvlm on 2,3 and "" wrong (0.4), oracle 1,2,3,4 (0.8),
    # spotvlm on 0,2,4 (0.6): share (0.6-0.6)/(0.8-0.6) = 0; wins frame 0, losses frame 1
    assert (second["svlm"], second["lvlm"], second["switch_oracle"], second["spotvlm"]) == (
        0.6,
        0.4,
        0.8,
        0.6,
    )
    assert second["right_where_svlm_wrong"] == 1 and second["wrong_where_svlm_right"] == 1
    overall = rows["all"]  # runs (one, d0), (one, d1), (two, d0) averaged
    assert overall["svlm"] == pytest.approx((0.4 + 0.4 + 0.6) / 3, abs=1e-4)
    assert overall["switch_oracle"] == 0.8 and overall["frames"] == 15
    # a SpotVLM that is right wherever the oracle is takes its whole gain
    better = concat(
        [t if t["mode"][0].as_py() != "spotvlm" else _oracle_like(t) for t in _hand_built(one, 0)]
    )
    (item_row, _) = switch_oracle(better)
    assert item_row["oracle_share"] == 1.0
    assert "| 1.50 | vqa:one |" in oracle_markdown(switch_oracle(table))


def _oracle_like(table):
    import pyarrow as pa

    data = table.to_pydict()
    data["correct"] = [1.0, 1.0, 0.0, 1.0, 1.0]
    return pa.table(data, schema=table.schema)


def test_hand_built_records_keep_context_and_focus_and_the_cold_start_share():
    (svlm, lvlm, spot) = _hand_built(TaskItem("vqa", "one", "Q1?"), 0)
    rows = spot.to_pydict()
    assert rows["answer"] == ANSWERS["spotvlm"] and rows["reference"] == ["go"] * 5
    assert rows["own_answer"] == [True, False, True, False, True]
    assert rows["context_id"] == ["", "req-1", "req-1", "req-1", "req-1"]
    assert json.loads(rows["focus_regions"][0]) == [[1, 2, 3, 4, "sign"]]
    assert math.isnan(rows["context_age_s"][0]) and rows["context_age_s"][1] == 0.5
    assert cold_start_share(concat([svlm, lvlm, spot])) == {"p": pytest.approx(1 / 5)}


def test_context_breakdown_splits_frames_by_the_age_of_the_context_used():
    table = concat(_hand_built(TaskItem("vqa", "one", "Q1?"), 0))
    rows = context_breakdown(table)
    assert [(r["context_age"], r["frames"], r["spotvlm"], r["svlm"]) for r in rows] == [
        ("none", 1, 0.0, 1.0),  # frame 0: no context yet; the SVLM alone was right, SpotVLM was not
        ("<1 s", 4, 0.5, 0.25),  # frames 1-4 with a 0.5 s old context
    ]
    assert "| 1.50 | vqa:one | <1 s | 4 | 0.500 | 0.250 |" in breakdown_markdown(rows)
