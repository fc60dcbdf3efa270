"""Training runs on the micro recipe: overfitting, resume, export through the normal backend, the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spotvlm_ros.cli import main
from spotvlm_ros.core.config import ModelConfig
from spotvlm_ros.models.factory import create_backend
from spotvlm_ros.training.export import prompt_fingerprint, read_training_info
from spotvlm_ros.training.scenario import scenario_config
from spotvlm_ros.training.trainer import CurriculumSampler, Trainer, TrainError, TrainOptions, family


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lvlm_run(tmp_path_factory):
    """A micro LVLM run of 6 steps, exported (data built once for the module)."""
    out = tmp_path_factory.mktemp("micro_lvlm")
    options = TrainOptions(role="lvlm", out_dir=out / "run", steps=6, micro=True, eval_every_steps=3)
    trainer = Trainer(options, log=lambda _: None)
    result = trainer.run()
    return trainer, result


def test_loss_falls_on_a_fixed_batch(lvlm_run, tmp_path):
    trainer, _ = lvlm_run
    fresh = Trainer(
        TrainOptions(role="lvlm", out_dir=tmp_path / "overfit", steps=40, micro=True), log=lambda _: None
    )
    fresh.recipe = fresh.recipe.__class__(**{**fresh.recipe.__dict__, "warmup_steps": 1, "lr": 1e-2})
    batch = list(range(min(4, len(fresh.data.items))))
    losses = [fresh.train_step(batch) for _ in range(40)]
    assert losses[-1] < 0.4 * losses[0], losses


def test_run_logs_evaluates_and_exports(lvlm_run):
    trainer, result = lvlm_run
    assert result.steps == 6
    log = [json.loads(line) for line in (trainer.run_dir / "train_log.jsonl").read_text().splitlines()]
    events = [r["event"] for r in log]
    assert events[0] == "prior" and events.count("step") == 6 and events.count("eval") == 2
    groups = set(log[-1]["accuracy"])
    assert {"vqa:light", "vqa:cars", "vqa:pedestrian", "crop:light", "grounding:light"} <= groups
    header = (trainer.run_dir / "train_log.csv").read_text().splitlines()[0]
    assert "acc:vqa:light" in header and header.startswith("event,step,elapsed_s,stage,loss,lr")
    info = read_training_info(result.export_dir)
    assert info["role"] == "lvlm" and info["steps"] == 6 and info["heldout_accuracy"] == result.accuracy
    assert info["prompt_fingerprint"] == prompt_fingerprint(scenario_config())
    assert (result.export_dir / "model.safetensors").is_file()
    assert (result.export_dir / "train_log.csv").is_file()


def test_exported_model_answers_through_create_backend(lvlm_run):
    trainer, result = lvlm_run
    backend = create_backend(ModelConfig(backend="hf", model=str(result.export_dir), max_new_tokens=4))
    try:
        sample = next(s for s in trainer.data.heldout if s.group == "vqa:light")
        generation = backend.generate(sample.messages, sample.images)
        assert isinstance(generation.text, str) and generation.image_tokens > 0
        reloaded = backend.model.state_dict()
        for name, value in trainer.model.state_dict().items():
            assert torch.equal(reloaded[name], value), name
    finally:
        backend.close()


def test_resume_continues_exactly(lvlm_run, tmp_path):
    """Interrupted after 3 steps and resumed, a run ends with the weights of an uninterrupted one."""
    trainer, _ = lvlm_run
    straight_dir, split_dir = tmp_path / "straight", tmp_path / "split"
    for run_dir in (straight_dir, split_dir):
        shutil.copytree(trainer.run_dir / "data", run_dir / "data")  # reuse the built data

    def options(run_dir, resume=False):
        return TrainOptions(role="lvlm", out_dir=run_dir, steps=5, micro=True, resume=resume)

    straight = Trainer(options(straight_dir), log=lambda _: None)
    straight.run()
    first = Trainer(options(split_dir), log=lambda _: None)
    for _ in range(3):
        stage = first.recipe.stage_at(first.progress())
        batch = first.sampler.batch(stage.mix, first.recipe.batch_size, first.recipe.weights_at(stage))
        first.train_step(batch)
    first.checkpoint()
    with pytest.raises(TrainError, match="--resume"):
        Trainer(options(split_dir), log=lambda _: None)
    second = Trainer(options(split_dir, resume=True), log=lambda _: None)
    assert second.state.step == 3
    second.run()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[name], value), name


def test_cli_trains_a_micro_svlm(tmp_path, capsys):
    out = tmp_path / "svlm"
    code = main(
        ["train-demo", "--role", "svlm", "--micro", "--steps", "2", "--out", str(out), "--eval-every", "0"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "held-out accuracy" in captured.out and "light:focus_ctx_wrong" in captured.out
    info = read_training_info(out / "model")
    assert info["command"].startswith("spotvlm train-demo --role svlm") and "--micro" in info["command"]
    assert info["data"]["train_kinds"]["context"] > 0
    assert main(["train-demo", "--role", "svlm", "--out", str(tmp_path / "none"), "--resume", "--micro"]) == 2
    light = ["train-demo", "--role", "svlm", "--curriculum", "light", "--micro", "--out", str(tmp_path / "l")]
    assert main(light) == 2 and "the LVLM's" in capsys.readouterr().err


def test_sampler_follows_the_stage_mix_and_family_weights(lvlm_run):
    trainer, _ = lvlm_run
    items = trainer.data.items
    sampler = CurriculumSampler(trainer.data, np.random.default_rng(0))
    weights = {"vqa": 1.0, "caption": 0.0, "grounding": 0.0}
    assert {items[i].kind for i in sampler.batch({"crop": 1.0, "full": 0.0}, 40, weights)} == {"crop"}
    drawn = sampler.batch({"full": 1.0}, 60, weights)
    assert {items[i].kind for i in drawn} == {"full"} and {family(items[i].group) for i in drawn} == {"vqa"}
    only_light = sampler.batch({"crop": 1.0}, 30, {"crop:light": 1.0})
    assert {items[i].group for i in only_light} == {"crop:light"}
    with pytest.raises(TrainError, match="draw nothing"):
        sampler.batch({"crop": 1.0}, 2, {"caption": 1.0})
    assert (
        family("vqa:light+regions@svlm") == "vqa"
        and family("crop:light") == "crop"
        and family("caption") == "caption"
    )


def test_second_phase_starts_from_an_exported_model_and_records_the_first(lvlm_run, tmp_path):
    trainer, first = lvlm_run
    run_dir = tmp_path / "phase2"
    shutil.copytree(trainer.run_dir / "data", run_dir / "data")
    options = TrainOptions(
        role="lvlm",
        out_dir=run_dir,
        steps=2,
        micro=True,
        curriculum="answers",
        init_from=first.export_dir,
        eval_every_steps=0,
    )
    second = Trainer(options, log=lambda _: None)
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[name], value), name
    assert [stage.name for stage in second.recipe.stages] == ["answers"]
    result = second.run()
    info = read_training_info(result.export_dir)
    assert info["curriculum"] == "answers"
    assert (Path.cwd() / info["init_from"]).resolve() == first.export_dir.resolve()  # recorded relative
    assert [phase["steps"] for phase in info["earlier_phases"]] == [first.steps]
    assert info["total"]["steps"] == first.steps + 2
    assert [(p["phase"], p["curriculum"], p["steps"]) for p in info["phases"]] == [
        (1, "staged", first.steps),
        (2, "answers", 2),
    ]
    assert info["phases"][1]["heldout_accuracy"] == info["heldout_accuracy"]
    # one log for both phases: the first phase's rows tagged 1, then this phase's tagged 2
    with (result.export_dir / "train_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    with (first.export_dir / "train_log.csv").open() as handle:
        first_rows = list(csv.DictReader(handle))
    assert [r["phase"] for r in rows] == ["1"] * len(first_rows) + ["2"] * (len(rows) - len(first_rows))
    assert [r["step"] for r in rows[: len(first_rows)]] == [r["step"] for r in first_rows]
    assert not list(result.export_dir.glob("phase*_train_log.*"))


def test_init_from_needs_an_exported_model(lvlm_run, tmp_path):
    trainer, _ = lvlm_run
    shutil.copytree(trainer.run_dir / "data", tmp_path / "run" / "data")
    options = TrainOptions(role="lvlm", out_dir=tmp_path / "run", micro=True, init_from=tmp_path / "nothing")
    with pytest.raises(TrainError, match="init-from"):
        Trainer(options, log=lambda _: None)


def test_demo_runs_the_trained_models_when_they_are_there(lvlm_run, tmp_path, monkeypatch, capsys):
    """With models in demo_models/{lvlm,svlm} (here: the micro export), the demo loads them through hf."""
    from spotvlm_ros import cli_run
    from spotvlm_ros.training import scenario

    _, result = lvlm_run
    monkeypatch.setattr(scenario, "DEMO_MODELS_DIR", tmp_path / "demo_models")
    assert cli_run.demo_settings()[2] is False  # nothing there: the random stand-ins
    for role in ("lvlm", "svlm"):
        shutil.copytree(result.export_dir, tmp_path / "demo_models" / role)
    settings, questions, trained = cli_run.demo_settings()
    assert trained and questions == ("light", "cars", "pedestrian")
    assert settings["edge.backend"] == "hf"
    assert settings["edge.model"] == str(tmp_path / "demo_models" / "svlm")
    code = main(["demo", "--out", str(tmp_path / "out"), "--quiet", "--set", "eval.max_frames=4"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "models: trained demo SVLM" in captured.out and "RANDOMLY" not in captured.out.upper()
    for item in ("vqa:light", "vqa:cars", "vqa:pedestrian"):
        assert item in captured.out
    assert (tmp_path / "out" / "report.md").is_file()
