"""``spotvlm bench targets`` on micro-trained exports: figures, verdicts, and no models."""

from __future__ import annotations

import pytest
import torch

from spotvlm_ros.bench import TARGETS, parse_bench_line
from spotvlm_ros.cli import main
from spotvlm_ros.training.targets import TARGETS as MODEL_TARGETS
from spotvlm_ros.training.targets import recorded_recipe
from spotvlm_ros.training.trainer import Trainer, TrainOptions


@pytest.fixture(scope="module")
def micro_pair(tmp_path_factory):
    """Micro LVLM and SVLM trained for two steps and exported (random-ish models, real export path)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("micro_pair")
    dirs = {}
    for role in ("lvlm", "svlm"):
        options = TrainOptions(role=role, out_dir=out / role, steps=2, micro=True, eval_every_steps=0)
        dirs[role] = Trainer(options, log=lambda _: None).run().export_dir
    torch.set_num_threads(before)
    return dirs


def test_recorded_recipe_is_the_one_the_model_was_trained_with(micro_pair):
    recipe = recorded_recipe(micro_pair["svlm"])
    assert recipe.role == "svlm"
    assert (recipe.data.train_clips, recipe.data.frames_per_clip) == (1, 40)  # the micro recipe's data


def test_targets_bench_measures_every_target_from_both_models(micro_pair, capsys):
    args = ["--lvlm", str(micro_pair["lvlm"]), "--svlm", str(micro_pair["svlm"])]
    assert main(["bench", "targets", *args, "--clips", "1", "--per-group", "2"]) == 0
    out = capsys.readouterr().out
    name, figures = parse_bench_line(out)
    assert name == "targets" and figures["trained_models"] is True
    for target in MODEL_TARGETS:
        assert target.figure in TARGETS
        assert figures[target.figure] is not None and -1.0 <= figures[target.figure] <= 1.0
        assert f"{target.figure}: {figures[target.figure]} (target" in out
    assert figures["lvlm_vqa_light"] == figures["lvlm:vqa:light"]
    assert "svlm_light_gap" not in figures and 0.0 <= figures["svlm:vqa:light"] <= 1.0  # reported, no target
    assert figures["svlm_focus_light"] == figures["svlm:light:focus_ctx_wrong"]
    assert figures["samples"] > 0 and "svlm:caption" not in figures  # captions are the LVLM's


def test_targets_bench_without_models_says_so(tmp_path, capsys):
    assert main(["bench", "targets", "--lvlm", str(tmp_path), "--svlm", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no trained models" in out
    assert parse_bench_line(out) == ("targets", {"trained_models": False})


def test_targets_bench_refuses_an_empty_set(capsys):
    with pytest.raises(SystemExit, match="--clips"):
        main(["bench", "targets", "--clips", "0"])
