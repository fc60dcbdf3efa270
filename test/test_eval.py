"""Evaluation: modes x profiles x tasks on a generated bag, scoring rules, report outputs, determinism."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.types import EdgeAnswer, Region
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.eval.modes import MODES, mode_config
from spotvlm_ros.runtime.eval.plots import write_plots
from spotvlm_ros.runtime.eval.report import markdown_report, results_json, summary_rows
from spotvlm_ros.runtime.eval.runner import EvalError, EvalPlan, prepare_eval, run_eval
from spotvlm_ros.runtime.eval.tasks import held_answers
from spotvlm_ros.runtime.events import FrameRecord
from spotvlm_ros.runtime.make_bag import make_synthetic_bag

ZERO = {"edge.backend": "zero", "cloud.backend": "zero", "edge.step_time_s": 0.1}


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "clip"
    make_synthetic_bag(path, frames=30, width=160, height=120, seed=7)
    return path


def _evaluate(bag, plan: EvalPlan, cloud_answer: str = "unknown", **overrides):
    config = load_config(None, {**ZERO, **overrides})
    setup = prepare_eval(bag, config, plan)
    return run_eval(setup, ZeroCostBackend("zero:edge"), ZeroCostBackend("zero:cloud", answer=cloud_answer))


def test_mode_configs_switch_context_focus_and_replacement():
    config = load_config(None)
    assert not mode_config(config, MODES["svlm"]).context.enabled
    assert mode_config(config, MODES["spotvlm_no_focus"]).focus.mode == "off"
    assert mode_config(config, MODES["spotvlm_no_replacement"]).context.replacement is False
    spot = mode_config(config, MODES["spotvlm"])
    assert spot.context.enabled and spot.context.replacement and spot.focus.mode == config.focus.mode


def test_all_modes_run_and_use_the_cloud_as_they_should(bag):
    plan = EvalPlan(profiles=["constant:delay=0.3"], tasks=["vqa"], questions=["light"])
    results = _evaluate(bag, plan, **{"eval.deadline_s": 0.5})
    by_mode = {r.mode: r for r in results.runs}
    assert set(by_mode) == set(MODES) and results.frames == 30
    assert by_mode["svlm"].cloud["requests"] == 0
    assert by_mode["svlm"].counts["answered"] == 30  # 0.1 s steps keep up with 10 Hz
    blocking = by_mode["lvlm_blocking"]
    assert blocking.cloud["requests"] == 30 and blocking.latency.p50_s == pytest.approx(0.3)
    assert by_mode["offload"].cloud["cloud_fraction"] == 1.0  # 0.3 s fits the 0.5 s deadline
    assert by_mode["lvlm"].latency.max_s == 0.0 and by_mode["lvlm"].age.mean_s >= 0.3
    assert 0 < by_mode["spotvlm"].cloud["requests"] < 30
    assert by_mode["spotvlm"].age.with_context > 0


def test_offload_falls_back_to_the_svlm_when_the_cloud_is_too_slow(bag):
    plan = EvalPlan(modes=["offload"], profiles=["constant:delay=2.0"], tasks=["vqa"], questions=["light"])
    (run,) = _evaluate(bag, plan, **{"eval.deadline_s": 0.5}).runs
    assert run.cloud["cloud_fraction"] == 0.0 and run.cloud["requests"] == 0
    assert run.cloud["pings"] >= 2  # it keeps measuring the cloud
    assert run.latency.max_s == pytest.approx(0.1)


def test_scores_follow_the_answers(bag):
    """A cloud always giving the commonest light state: blocking EM = its share; the SVLM never says it."""
    plan = EvalPlan(
        modes=["svlm", "lvlm_blocking", "spotvlm"],
        profiles=["constant:delay=0"],
        tasks=["vqa"],
        questions=["light"],
    )
    setup = prepare_eval(bag, load_config(None, ZERO), plan)
    truths = [a.answer("light") for a in setup.annotations.items.values() if a.answer("light") is not None]
    common = max(sorted(set(truths)), key=truths.count)
    share = truths.count(common) / len(truths)
    results = _evaluate(bag, plan, cloud_answer=common, **{"eval.deadline_s": 0.5})
    (light,) = results.items
    profile = plan.profiles[0]
    assert results.run(profile, light, "lvlm_blocking").metrics["exact_match"] == pytest.approx(share)
    assert results.run(profile, light, "svlm").metrics["exact_match"] == 0.0
    # zero-delay cloud: spotvlm's echoing SVLM carries the fresh answer on every frame
    assert results.run(profile, light, "spotvlm").metrics["exact_match"] == pytest.approx(share)


def test_skipped_frames_are_scored_with_the_answer_held_at_their_time():
    def record(stamp, latency, text):
        return FrameRecord(EdgeAnswer(stamp, "vqa", text), stamp, stamp + latency, latency / 1e9)

    records = [record(0, 250, "a"), record(200, 300, "b")]  # "b" is ready at 500 ns
    held = held_answers([0, 100, 200, 300, 600], records)
    assert [(s, a.text if a else None) for s, a in held] == [
        (0, "a"),
        (100, None),
        (200, "b"),
        (300, "a"),
        (600, "b"),
    ]


def test_same_seed_same_numbers_and_report_outputs(bag, tmp_path):
    profiles = ["lognormal:mean=0.8,sigma=0.8", "gilbert:good=0.2,bad=2.0,p_gb=0.2,p_bg=0.3"]
    plan = EvalPlan(profiles=profiles, questions=["light"])
    first = _evaluate(bag, plan, **{"eval.max_frames": 20})
    second = _evaluate(bag, plan, **{"eval.max_frames": 20})
    rows = summary_rows(first)
    assert results_json(first, rows) == results_json(second, summary_rows(second))
    assert len(rows) == 2 * len(MODES) and first.frames == 20
    data = json.loads(results_json(first, rows))
    assert {r["mode"] for r in data["summary"]} == set(MODES)
    assert {r["task"] for r in data["runs"]} == {"vqa", "caption", "grounding"}
    report = markdown_report(first, rows)
    assert report.count("| spotvlm |") == 2 and "latest frame wins" in report
    plots = write_plots(first, rows, tmp_path)
    assert sorted(p.name for p in plots) == ["accuracy_vs_delay.png", "context_age.png", "latency_cdf.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in plots)
    assert not any(isinstance(v, float) and math.isnan(v) for v in _leaves(data))


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def test_bad_plans_are_clear_errors(bag, tmp_path):
    config = load_config(None, ZERO)
    with pytest.raises(EvalError, match="unknown mode"):
        prepare_eval(bag, config, EvalPlan(modes=["magic"]))
    with pytest.raises(EvalError, match="nothing for tasks"):
        prepare_eval(bag, config, EvalPlan(questions=["no-such-id"], tasks=["vqa"]))
    with pytest.raises(ValueError):
        prepare_eval(bag, config, EvalPlan(profiles=["warp:speed=9"]))
    unannotated = tmp_path / "plain"
    make_synthetic_bag(unannotated, frames=2, width=32, height=24)
    (unannotated / "annotations.jsonl").unlink()
    with pytest.raises(EvalError, match="no ground truth"):
        prepare_eval(unannotated, config)


def test_a_partial_cloud_override_keeps_the_cloud_defaults():
    config = load_config(None, {"cloud.backend": "zero"})  # as `--set cloud.backend=zero` does
    assert config.cloud.backend == "zero"
    assert (config.cloud.max_new_tokens, config.cloud.image_max_side) == (128, 896)


class FixedRegionBackend(ZeroCostBackend):
    """Test double of an LVLM that always finds the same region (pixels of the image it was given)."""

    def __init__(self, name: str, region):
        super().__init__(name=name, answer=region.label)
        self.region = region

    def generate(self, messages, images, **kwargs):
        generation = super().generate(messages, images, **kwargs)
        return replace(generation, regions=(self.region,) if kwargs.get("want_regions") else ())


def test_lvlm_regions_reach_the_grounding_answers_through_visual_focus(bag):
    plan = EvalPlan(
        modes=["svlm", "lvlm_blocking", "spotvlm", "spotvlm_no_focus"],
        profiles=["constant:delay=0.3"],
        tasks=["grounding"],
        questions=["light"],
    )
    config = load_config(None, ZERO)
    setup = prepare_eval(bag, config, plan)
    first = setup.annotations.items[min(setup.annotations.items)].box("light")
    cloud = FixedRegionBackend("fixed:cloud", Region(first.box, first.label))
    results = run_eval(setup, ZeroCostBackend("zero:edge"), cloud)
    acc = {r.mode: r.metrics["acc_iou50"] for r in results.runs}
    assert acc["lvlm_blocking"] >= 0.9  # the light hardly moves from where the fixed box says
    assert acc["svlm"] == 0.0 and acc["spotvlm_no_focus"] == 0.0  # the zero SVLM grounds nothing itself
    spot = next(r for r in results.runs if r.mode == "spotvlm")
    assert acc["spotvlm"] == pytest.approx(spot.age.coverage, abs=0.1) and acc["spotvlm"] > 0.5


def test_vqa_is_scored_without_the_region_json_the_model_appended():
    from spotvlm_ros.core.types import Box, EdgeAnswer, Region
    from spotvlm_ros.runtime.eval.tasks import vqa_answer_text

    boxes = '[{"bbox_2d": [10, 20, 30, 60], "label": "traffic light"}]'
    region = (Region(Box(10, 20, 30, 60), "traffic light"),)
    with_regions = EdgeAnswer(1, "vqa", f"red\n{boxes}", regions=region)
    assert vqa_answer_text(with_regions) == "red"
    assert vqa_answer_text(EdgeAnswer(1, "vqa", f"red\n{boxes}")) == f"red\n{boxes}"  # nothing parsed: whole
    assert vqa_answer_text(EdgeAnswer(1, "vqa", "Red.")) == "Red." and vqa_answer_text(None) == ""


def test_a_profile_gets_the_same_delays_alone_or_in_a_sweep_and_draws_are_pooled(bag):
    lognormal = "lognormal:mean=0.8,sigma=0.8"
    plan = {"modes": ["lvlm_blocking"], "tasks": ["vqa"], "questions": ["light"], "max_frames": 20}
    alone = _evaluate(bag, EvalPlan(profiles=[lognormal], **plan))
    swept = _evaluate(bag, EvalPlan(profiles=["constant:delay=0.3", lognormal], **plan))
    item = alone.items[0]
    waited = alone.run(lognormal, item, "lvlm_blocking").latencies_s
    assert len(waited) > 5 and len(set(waited)) > 1  # the answer waits for each lognormal delay
    assert swept.run(lognormal, item, "lvlm_blocking").latencies_s == waited
    drawn = _evaluate(bag, EvalPlan(profiles=[lognormal], draws=3, **plan))
    runs = [drawn.run(lognormal, item, "lvlm_blocking", draw) for draw in range(3)]
    assert runs[0].latencies_s == waited and len({tuple(r.latencies_s) for r in runs}) == 3
    (row,) = summary_rows(drawn)
    assert row.answered == sum(r.counts["answered"] for r in runs)
    assert json.loads(results_json(drawn, [row]))["runs"][2]["draw"] == 2
    with pytest.raises(EvalError, match="draws"):
        _evaluate(bag, EvalPlan(profiles=[lognormal], draws=0, **plan))


def _without_sequences(bag):
    """The same bag as one recording: its ground truth without the ``sequence`` field."""
    truth = bag / "annotations.jsonl"
    lines = [json.loads(line) for line in truth.read_text().splitlines()]
    stripped = [{k: v for k, v in d.items() if k != "sequence"} for d in lines]
    truth.write_text("".join(json.dumps(d) + "\n" for d in stripped))


def test_each_recorded_sequence_is_run_as_a_fresh_drive(tmp_path):
    two_clips = tmp_path / "two_clips"
    make_synthetic_bag(two_clips, frames=15, clips=2, width=160, height=120, seed=7)
    modes, profiles = ["spotvlm", "lvlm_blocking", "offload"], ["constant:delay=0.3"]
    plan = EvalPlan(modes=modes, profiles=profiles, tasks=["vqa"], questions=["light"])
    results = _evaluate(two_clips, plan, **{"eval.deadline_s": 0.5})
    spot, blocking, offload = results.runs
    assert spot.counts["sequences"] == blocking.counts["sequences"] == 2
    assert spot.counts["frames"] == 30 and blocking.cloud["requests"] == 30  # cloud figures of both clips
    assert offload.cloud["cloud_fraction"] == 1.0  # a share of both clips' frames, not a sum
    first_clip = [age for t, age in spot.age_timeline if t < 1.5]
    at_the_cut = [age for t, age in spot.age_timeline if 1.5 <= t < 1.75]  # clip 2's answers are 0.3 s late
    after = [age for t, age in spot.age_timeline if t >= 1.9]
    assert max(first_clip) >= 0 and at_the_cut and after
    assert all(age < 0 for age in at_the_cut)  # no context: nothing of clip 1 carries over
    assert all(0 <= age < 1.5 for age in after)
    report = markdown_report(results, summary_rows(results))
    assert "30 camera messages per run in 2 recording(s)" in report

    _without_sequences(two_clips)
    whole = _evaluate(two_clips, plan, **{"eval.deadline_s": 0.5}).runs[0]
    assert whole.counts["sequences"] == 1
    assert all(age >= 0 for t, age in whole.age_timeline if 1.5 <= t < 1.75)  # clip 1's answers held
