"""``spotvlm eval`` on imported DriveLM bags: every group answered or counted as skipped, metrics per group,
``--jobs 2`` equal to ``--jobs 1``; with the zero-cost backend and with tiny random models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from drivelm_support import load, sample_dir, split_scene, write_json
from rosbags.rosbag2 import Reader

from spotvlm_ros.cli import main
from spotvlm_ros.core.annotations import load_annotations
from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.drivelm_metrics import GPT_NOT_COMPUTED
from spotvlm_ros.datasets.drivelm import CAMERAS
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.eval.drivelm import run_drivelm_eval

GROUPS = ("perception", "prediction", "planning", "behavior")
ZERO = ["--set", "edge.backend=zero", "--set", "cloud.backend=zero"]
SIX_TOPICS = [f"/{c}/image_raw/compressed" for c in CAMERAS]
SIX = ["--set", f"camera.topics=[{', '.join(SIX_TOPICS)}]"]
FIXED = ["--set", "edge.step_time_s=0.2", "--set", "cloud.step_time_s=0.0", "--profile", "constant:delay=1.0"]


def _import(out: Path, qa: Path, *extra: str) -> Path:
    sample = sample_dir()
    assert main(["import-drivelm", str(qa), "--images", str(sample), "--out", str(out), *extra]) == 0
    return out


@pytest.fixture(scope="module")
def eval_form_bag(tmp_path_factory) -> Path:
    """The evaluation form (35 questions, multiple choice among them), split into two drives."""
    root = tmp_path_factory.mktemp("drivelm_eval")
    qa = write_json(root / "two_scenes.json", split_scene(load("test_eval.json"), 3))
    return _import(root / "bag", qa)


def _eval(bag: Path, out: Path, capsys, *extra: str) -> tuple[dict[str, Any], str]:
    rc = main(["eval", str(bag), "--out", str(out), "--quiet", *extra])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    return json.loads((out / "results.json").read_text()), printed.out


def _check_groups(results: dict[str, Any], questions: int) -> None:
    assert results["questions"] == questions
    for modes in results["metrics"].values():
        for table in modes.values():
            assert set(table) == {*GROUPS, "all"}
            for group in GROUPS:
                row = table[group]
                assert row["questions"] > 0 and row["answered"] + row["skipped"] == row["questions"]
                for key in ("accuracy", "bleu", "rouge_l", "match_f1", "gpt_n", "accuracy_n", "language_n"):
                    assert key in row
            assert table["all"]["questions"] == questions


def test_zero_backend_scores_every_group(eval_form_bag: Path, tmp_path: Path, capsys) -> None:
    results, printed = _eval(
        eval_form_bag, tmp_path / "out", capsys, *ZERO, *FIXED, "--modes", "svlm,spotvlm"
    )
    _check_groups(results, 35)
    assert results["drives"] == 2 and results["topics"] == ["/CAM_FRONT/image_raw/compressed"]
    assert results["gpt_score"] == GPT_NOT_COMPUTED and GPT_NOT_COMPUTED in printed
    assert "CIDEr is not computed" in printed
    (modes,) = results["metrics"].values()
    svlm = modes["svlm"]
    assert svlm["all"]["answered"] == 35  # key frames are seconds apart: the SVLM answers each one
    # the zero backend answers nothing useful: every scored figure is 0, and the counts are DriveLM's tags
    assert svlm["all"]["accuracy"] == 0.0 and svlm["all"]["accuracy_n"] == 15
    assert svlm["planning"]["gpt_n"] == 15 and svlm["perception"]["language_n"] == 5
    assert svlm["perception"]["match_n"] == 5 and svlm["perception"]["match_f1"] == 0.0
    answers = results["answers"]
    assert len(answers) == 2 * 35 and {a["mode"] for a in answers} == {"svlm", "spotvlm"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "GPT score is not computed" in report and "| spotvlm | behavior |" in report


def test_six_cameras_zero_backend(eval_form_bag: Path, tmp_path: Path, capsys) -> None:
    args = [*ZERO, *FIXED, *SIX, "--modes", "svlm,spotvlm", "--per-group", "1"]
    results, printed = _eval(eval_form_bag, tmp_path / "six", capsys, *args)
    _check_groups(results, 20)
    assert results["topics"] == SIX_TOPICS and "/CAM_BACK_RIGHT/image_raw/compressed" in printed
    for mode in ("svlm", "spotvlm"):
        assert results["metrics"]["constant:delay=1.0"][mode]["all"]["answered"] == 20


def test_cached_frames_change_nothing(eval_form_bag: Path) -> None:
    config = load_config(None, {"edge.step_time_s": 0.2, "camera.topics": SIX_TOPICS[:3]})

    def run(cache_bytes: int):
        return run_drivelm_eval(
            eval_form_bag,
            config,
            modes=["spotvlm"],
            profiles=["constant:delay=1.0"],
            groups=["perception", "behavior"],
            per_group=1,
            cache_bytes=cache_bytes,
            backends=lambda: (ZeroCostBackend("zero:edge"), ZeroCostBackend("zero:cloud")),
        )

    cached, reread = run(1 << 30), run(0)
    assert len(cached.answers) == 10 and cached.answers == reread.answers
    assert cached.table() == reread.table()


def test_jobs_2_equals_jobs_1(eval_form_bag: Path, tmp_path: Path, capsys) -> None:
    args = [*ZERO, *FIXED, "--modes", "spotvlm,lvlm", "--per-group", "1"]
    one, _ = _eval(eval_form_bag, tmp_path / "one", capsys, *args, "--jobs", "1")
    two, _ = _eval(eval_form_bag, tmp_path / "two", capsys, *args, "--jobs", "2")
    assert one["drives"] == 2 and one["questions"] == 20
    assert one["answers"] == two["answers"] and one["metrics"] == two["metrics"]
    assert two["jobs"] == 2


def test_train_form_object_match_family(tmp_path: Path, capsys) -> None:
    bag = _import(tmp_path / "bag", sample_dir() / "train_sample.json")
    ids = "planning-6,planning-10,behavior-0,perception-24"
    args = [*ZERO, *FIXED, "--modes", "lvlm", "--groups", "planning,behavior", "--questions", ids]
    results, _ = _eval(bag, tmp_path / "out", capsys, *args)
    (modes,) = results["metrics"].values()
    table = modes["lvlm"]
    truth = load_annotations(bag)
    planning = [q for a in truth.items.values() for q in a.vqa if q.id in ("planning-6", "planning-10")]
    assert table["planning"]["questions"] == len(planning) == 10 and table["behavior"]["questions"] == 5
    assert table["perception"]["questions"] == 0  # not asked
    assert table["planning"]["language_n"] == 10
    assert table["planning"]["match_n"] == sum(bool(q.objects) for q in planning) > 0
    assert table["planning"]["match_f1"] == 0.0  # the zero backend names no object


def test_tasks_drivelm_on_a_bag_without_it(tmp_path: Path, capsys) -> None:
    bag = tmp_path / "synthetic"
    assert main(["make-bag", str(bag), "--frames", "3"]) == 0
    capsys.readouterr()
    assert main(["eval", str(bag), "--tasks", "drivelm", *ZERO, "--out", str(tmp_path / "o")]) == 2
    assert "no DriveLM ground truth" in capsys.readouterr().err
    assert main(["eval", str(bag), "--jobs", "0", *ZERO, "--out", str(tmp_path / "o")]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_tiny_models_answer_every_group(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SPOTVLM_CACHE_DIR", str(tmp_path / "cache"))
    ((token, scene),) = load("test_eval.json").items()
    two = dict(list(scene["key_frames"].items())[:2])  # two key frames, each its own drive
    qa = write_json(tmp_path / "qa.json", split_scene({token: {**scene, "key_frames": two}}, 1))
    bag = _import(tmp_path / "bag", qa)
    tiny = {
        "edge.backend": "tiny",
        "cloud.backend": "tiny",
        "edge.max_new_tokens": 6,
        "cloud.max_new_tokens": 8,
        "edge.image_max_side": 224,
        "cloud.image_max_side": 224,
    }
    settings = [part for key, value in tiny.items() for part in ("--set", f"{key}={value}")]
    args = [*settings, *FIXED, *SIX, "--modes", "spotvlm", "--per-group", "1"]
    one, _ = _eval(bag, tmp_path / "one", capsys, *args)
    _check_groups(one, 8)
    assert one["drives"] == 2
    table = one["metrics"]["constant:delay=1.0"]["spotvlm"]
    assert table["all"]["answered"] == 8
    texts = [a["answer"] for a in one["answers"]]
    assert all(isinstance(t, str) for t in texts) and any(t.strip() for t in texts)
    assert "tiny" in one["edge_model"] and "tiny" in one["cloud_model"]
    two_jobs, _ = _eval(bag, tmp_path / "two", capsys, *args, "--jobs", "2")
    assert two_jobs["answers"] == one["answers"] and two_jobs["metrics"] == one["metrics"]


def test_replay_of_the_six_cameras(eval_form_bag: Path, tmp_path: Path) -> None:
    from spotvlm_ros.runtime.replay import replay_bag

    config = load_config(None, {"edge.backend": "zero", "cloud.backend": "zero", "camera.topics": SIX_TOPICS})
    summary = replay_bag(eval_form_bag, config, out_dir=tmp_path / "replay")
    assert summary.read["messages"] == 30 and summary.read["groups"] == 5
    assert summary.counts["answered"] == 5
    with Reader(tmp_path / "replay" / "bag") as reader:
        topics = {c.topic for c in reader.connections}
    assert set(SIX_TOPICS) <= topics
