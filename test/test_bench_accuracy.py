"""``spotvlm bench accuracy``: gap and ablation figures, and a quick end-to-end run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from spotvlm_ros.bench import BENCHMARKS, parse_bench_line
from spotvlm_ros.bench.accuracy import (
    RANDOM_NOTE,
    accuracy_figures,
    gap_closed,
    gap_closed_by_draw,
    main,
    profile_spec,
)
from spotvlm_ros.core.latency import parse_latency_profile
from spotvlm_ros.training.scenario import demo_models_present


def test_gap_closed():
    assert gap_closed(0.5, 0.9, 0.8) == pytest.approx(0.75)
    assert gap_closed(0.5, 0.9, 0.4) == pytest.approx(-0.25)
    assert gap_closed(0.5, 0.5, 0.9) is None  # no gap to close
    assert gap_closed(0.6, 0.5, 0.9) is None
    assert gap_closed(float("nan"), 0.5, 0.9) is None


def test_profiles_are_lognormal_with_the_asked_mean():
    assert profile_spec(1.5) == "lognormal:mean=1.5,sigma=0.8"
    assert parse_latency_profile(profile_spec(5.0)).mean_s == pytest.approx(5.0)


def _row(mode, mean_s, score):
    return SimpleNamespace(mode=mode, profile_mean_s=mean_s, scores={"exact_match": score})


def test_figures_from_summary_rows():
    rows = [
        _row("svlm", 1.5, 0.4),
        _row("lvlm_blocking", 1.5, 0.9),
        _row("spotvlm", 1.5, 0.8),
        _row("spotvlm_no_focus", 1.5, 0.7),
        _row("spotvlm_no_replacement", 1.5, 0.85),
        _row("svlm", 5.0, 0.4),
        _row("lvlm_blocking", 5.0, 0.9),
        _row("spotvlm", 5.0, 0.6),
    ]
    figures = accuracy_figures(rows, [1.5, 5.0])
    assert figures["gap_closed_mean1p5s"] == pytest.approx(0.8)
    assert figures["gap_closed_mean5s"] == pytest.approx(0.4)
    assert figures["ablation_delta_no_focus_mean1p5s"] == pytest.approx(0.1)
    assert figures["ablation_delta_no_replacement_mean1p5s"] == pytest.approx(-0.05)
    assert figures["ablation_delta_no_focus_mean5s"] is None  # that run is missing
    assert figures["vqa_curve"]["spotvlm"] == {"1.5": 0.8, "5": 0.6}
    assert figures["vqa_curve"]["offload"] == {"1.5": None, "5": None}


def test_gap_closed_per_delay_sequence():
    vqa, caption = SimpleNamespace(task="vqa"), SimpleNamespace(task="caption")

    def run(draw, mode, score, mean_s=1.5, item=vqa):
        return SimpleNamespace(
            draw=draw, mode=mode, profile_mean_s=mean_s, item=item, metrics={"exact_match": score}
        )

    runs = [
        *(run(0, m, s) for m, s in (("svlm", 0.5), ("lvlm_blocking", 0.9), ("spotvlm", 0.7))),
        *(run(1, m, s) for m, s in (("svlm", 0.4), ("lvlm_blocking", 0.9), ("spotvlm", 0.9))),
        run(1, "spotvlm", 0.4),  # a second VQA item of draw 1: spotvlm averages 0.65 there
        run(0, "spotvlm", 0.0, mean_s=5.0),
        run(0, "spotvlm", 0.0, item=caption),
    ]
    assert gap_closed_by_draw(runs, 1.5) == [pytest.approx(0.5), pytest.approx(0.5)]
    runs[4] = run(1, "lvlm_blocking", 0.3)  # the LVLM is not better under draw 1
    assert gap_closed_by_draw(runs, 1.5) == [pytest.approx(0.5), None]


def test_quick_run_prints_figures_and_writes_the_plot(tmp_path, capsys):
    assert "accuracy" in BENCHMARKS
    before = torch.get_num_threads()
    try:
        assert main(["--quick", "--out", str(tmp_path), "--set", "context.history_length=2"]) == 0
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    name, figures = parse_bench_line(out)
    assert name == "accuracy"
    for key in ("gap_closed_mean1p5s", "gap_closed_mean5s", "latency_vs_svlm_ratio", "trained_models"):
        assert key in figures
    assert len(figures["gap_closed_mean1p5s_by_draw"]) == 1  # --quick runs one delay sequence
    assert figures["latency_vs_svlm_ratio"] > 0 and figures["frames"] == 20
    overall = [
        f"ablation_delta_{a}_{d}" for a in ("no_focus", "no_replacement") for d in ("mean1p5s", "mean5s")
    ]
    per_question = [k.replace("ablation_delta_no_focus_", "ablation_delta_no_focus_light_") for k in overall]
    per_question = [k.replace("_no_replacement_", "_no_replacement_light_") for k in per_question]
    assert sorted(k for k in figures if k.startswith("ablation_delta_")) == sorted(overall + per_question)
    for key in ("gap_closed_light_mean1p5s", "switch_oracle_mean5s", "oracle_share_light_mean1p5s"):
        assert key in figures
    assert 0.0 <= figures["cold_start_share_mean5s"] <= 1.0
    assert (tmp_path / "frames.parquet").stat().st_size > 0  # the per-frame records are always written
    assert "generated held-out bag: 1 drives of 2 s with speed-limit signs" in out
    assert "context.history_length 2 (history_keeps changes)," in out  # --set reaches the runtime settings
    assert (tmp_path / "accuracy_vs_delay.png").stat().st_size > 0
    assert "spotvlm_no_replacement" in (tmp_path / "accuracy_curve.json").read_text()
    assert figures["trained_models"] == demo_models_present()
    assert (RANDOM_NOTE in out) == (not demo_models_present())


def test_cloud_modes_are_not_asked_for_regions(tmp_path):
    """SpotVLM's keyframes ask the LVLM for regions (focus crops); the cloud baselines' VQA does not."""
    from spotvlm_ros.bench.accuracy import evaluate_modes
    from spotvlm_ros.bench.accuracy_timing import RecordingBackend
    from spotvlm_ros.models.zero import ZeroCostBackend
    from spotvlm_ros.runtime.make_bag import make_synthetic_bag
    from spotvlm_ros.training.scenario import scenario_config

    bag = tmp_path / "bag"
    make_synthetic_bag(bag, frames=30, seed=5, width=320, height=240, transport="compressed")
    cloud = RecordingBackend(ZeroCostBackend("zero:cloud"))
    plan = {"tasks": ["vqa"], "profiles": [profile_spec(0.5)], "questions": ["light"], "max_frames": 30}
    results = evaluate_modes(scenario_config(), bag, plan, ZeroCostBackend("zero:edge"), cloud)
    assert {r.mode for r in results.runs} == {
        "svlm", "lvlm", "lvlm_blocking", "offload", "spotvlm", "spotvlm_no_focus", "spotvlm_no_replacement"
    }  # fmt: skip
    asked = [call.want_regions for call in cloud.calls]
    assert any(asked) and not all(asked)
    blocking = results.run(profile_spec(0.5), results.items[0], "lvlm_blocking")
    assert blocking.cloud["requests"] == 30


def test_the_held_out_drives_are_no_training_clips():
    """The generated bag's clip seeds are not among the clips of any recipe's training or held-out sets."""
    from spotvlm_ros.bench.accuracy import DRIVES, HELDOUT_BAG_SEED
    from spotvlm_ros.synthetic import dataset_clips
    from spotvlm_ros.training.recipe import RECIPES, SIGN_DATA
    from spotvlm_ros.training.targets import UNSEEN_CLIPS, UNSEEN_SEED

    drives = set(range(HELDOUT_BAG_SEED, HELDOUT_BAG_SEED + 10 * DRIVES))
    for recipe in RECIPES.values():
        for data in (recipe.data, SIGN_DATA[recipe.role]):
            for seed, clips in (
                (recipe.seed, data.train_clips),
                (recipe.seed + data.heldout_seed_offset, data.heldout_clips),
            ):
                assert not drives & {clip_seed for clip_seed, _ in dataset_clips(seed, clips)}
    assert not drives & {clip_seed for clip_seed, _ in dataset_clips(UNSEEN_SEED, UNSEEN_CLIPS)}
