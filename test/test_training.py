"""Training data and evaluation of the demo models: tokens, pixels, runtime-recorded prompts, scoring."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from spotvlm_ros.core.annotations import FrameAnnotation, GroundingItem, VqaItem
from spotvlm_ros.core.context_store import ContextStore
from spotvlm_ros.core.focus import VisualFocus
from spotvlm_ros.core.metrics import answer_part
from spotvlm_ros.core.prompt import ContextReplacement
from spotvlm_ros.core.types import Box
from spotvlm_ros.models.base import Generation
from spotvlm_ros.runtime.eval.modes import MODES, mode_config
from spotvlm_ros.training.answers import TaskQuery, answer_text
from spotvlm_ros.training.context_data import (
    ScriptedBackend,
    context_samples,
    light_context,
    single_call,
    wrong_light,
)
from spotvlm_ros.training.data import Processors, train_samples
from spotvlm_ros.training.encoding import Encoder, ImageStore, collate
from spotvlm_ros.training.evaluate import Prediction, accuracy_by_group, class_prior, evaluate
from spotvlm_ros.training.modeling import build_processor, to_model_input
from spotvlm_ros.training.recipe import recipe_for
from spotvlm_ros.training.samples import Sample, crop_samples, full_frame_samples, iter_clips
from spotvlm_ros.training.scenario import scenario_config
from spotvlm_ros.training.trainer import learning_rate
from spotvlm_ros.training.vocab import answer_words, train_demo_tokenizer


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer():
    return train_demo_tokenizer()


@pytest.fixture(scope="module")
def processors(tokenizer):
    return {role: build_processor(recipe_for(role).model, tokenizer) for role in ("lvlm", "svlm")}


@pytest.fixture(scope="module")
def clip():
    return next(iter_clips(seed=3, clips=1, frames_per_clip=60))


@pytest.fixture(scope="module")
def config():
    return scenario_config()


def _scripted(processor, config, seed=0, **kwargs):
    return ScriptedBackend(
        "scripted", processor, config.edge.image_max_side, np.random.default_rng(seed), **kwargs
    )


def test_every_answer_word_is_one_token(tokenizer):
    for word in answer_words():
        assert len(tokenizer.tokenize(word)) == 1, word


def test_encoded_sample_is_the_chat_template_with_the_answer(processors, clip, config):
    processor = processors["lvlm"]
    sample = full_frame_samples(
        config, clip.frames[0], clip.annotations[0], (0.7, 0.7), np.random.default_rng(0)
    )[0]
    encoder = Encoder(processor, config.cloud.image_max_side)
    encoded = encoder.encode(sample, ImageStore())
    messages = [*sample.messages, {"role": "assistant", "content": [{"type": "text", "text": sample.target}]}]
    rendered = processor.apply_chat_template(messages, tokenize=False)
    assert rendered.endswith("<|im_end|>\n")
    images = [to_model_input(i, processor, config.cloud.image_max_side) for i in sample.images]
    expected = processor(text=[rendered[: -len("\n")]], images=images)["input_ids"][0]
    assert encoded.input_ids.tolist() == list(expected)
    answer = processor.tokenizer.decode(encoded.input_ids[encoded.prompt_len :].tolist())
    assert answer == sample.target + "<|im_end|>"


def test_cached_model_input_gives_the_processors_pixels(processors, clip, config):
    processor = processors["svlm"]
    frame = clip.frames[10].image
    for image in (frame, frame[20:220, 40:260], np.ascontiguousarray(frame[::2, ::2])):
        cached = to_model_input(image, processor, config.edge.image_max_side)
        direct = processor.image_processor(images=[image], return_tensors="np")
        again = processor.image_processor(images=[cached], return_tensors="np")
        assert np.array_equal(direct["pixel_values"], again["pixel_values"])
        assert np.array_equal(direct["image_grid_thw"], again["image_grid_thw"])


def test_collate_trains_on_answer_tokens_only(processors, clip, config):
    processor = processors["svlm"]
    store = ImageStore()
    encoder = Encoder(processor, config.edge.image_max_side)
    rng = np.random.default_rng(0)
    samples = crop_samples(config, clip.frames[0], clip.annotations[0], (0.35, 0.35), rng)
    items = [encoder.encode(s, store) for s in samples]
    assert len(store) < sum(len(i.image_keys) for i in items)  # the full frame is stored once
    batch = collate(items, store, processor)
    for row, item in enumerate(items):
        labels = batch["labels"][row]
        kept = labels[labels != -100].tolist()
        assert kept == item.input_ids[item.prompt_len :].tolist()
        assert int(batch["attention_mask"][row].sum()) == len(item.input_ids)
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(dim=1).sum())
    # image tokens typed as the processor types them at inference (Qwen2.5-VL's 3D positions need them)
    first = processor(
        text=[encoder.prompt_text(samples[0].messages)], images=[store.get(k) for k in items[0].image_keys]
    )
    n = items[0].prompt_len
    assert batch["mm_token_type_ids"][0, :n].tolist() == list(first["mm_token_type_ids"][0])
    assert int(batch["mm_token_type_ids"].sum()) == int(batch["image_grid_thw"].prod(dim=1).sum()) // 4


def test_svlm_prompt_is_built_by_context_replacement(processors, clip, config):
    """A recorded SVLM prompt is exactly what Context Replacement and Visual Focus make of the store."""
    frame, annotation = clip.frames[30], clip.annotations[30]
    rng = np.random.default_rng(1)
    backend = _scripted(processors["svlm"], config)
    context = light_context(
        frame, annotation, True, 0.8, wrong_light(annotation, rng), rng, processors["lvlm"]
    )
    query = TaskQuery("vqa", "light")
    sample = single_call(backend, config, "spotvlm", query, frame, annotation, context, "g")
    cfg = mode_config(config, MODES["spotvlm"])
    store = ContextStore.from_config(cfg.context)
    store.add(context)
    view = VisualFocus(cfg.focus, count_image_tokens=backend.image_tokens).prepare(frame, context, None)
    plan = ContextReplacement(cfg.context, cfg.system_prompt, count_tokens=backend.count_tokens).build(
        frame.stamp_ns, "vqa", query.prompt, store, len(view.images), focus_note=view.note
    )
    assert sample.messages == plan.messages
    assert len(sample.images) == 2  # the frame and a close-up of the light
    assert sample.target == annotation.answer("light")
    assert context.text.split("\n")[0] != sample.target  # the context contradicts the frame
    assert any(context.text.split("\n")[0] in str(m["content"]) for m in sample.messages[1:-1])


def test_simulated_runs_record_context_turns_with_true_targets(processors, clip, config):
    rng = np.random.default_rng(4)
    svlm = _scripted(processors["svlm"], config, keep=1.0, error_rate=0.25)
    lvlm = ScriptedBackend("l", processors["lvlm"], config.cloud.image_max_side, rng, error_rate=0.5)
    queries = [TaskQuery("vqa", "light")]
    samples = context_samples(clip, config, svlm, lvlm, rng, 3, (0.2, 0.5), queries)
    assert len(samples) > 20
    truths = {f.stamp_ns: a for f, a in zip(clip.frames, clip.annotations, strict=True)}
    with_history = [s for s in samples if len(s.messages) > 2]
    assert len(with_history) > len(samples) // 2
    for sample in samples:
        assert sample.kind == "context" and sample.target in ("red", "yellow", "green")
    answers = {s.target for s in samples}
    assert answers <= {a.answer("light") for a in truths.values()}
    contradicted = [
        s
        for s in with_history
        if any(f'"{w}' in str(s.messages[1:-1]) for w in {"red", "yellow", "green"} - {s.target})
    ]
    assert contradicted  # wrong context (LVLM corruption or own errors) appears in the history


def test_scripted_lvlm_leaves_boxes_out_at_its_region_drop(processors, config):
    with_cars = [c for c in iter_clips(seed=3, clips=2, frames_per_clip=5)][1]  # the second clip has cars
    frame, annotation = with_cars.frames[0], with_cars.annotations[0]
    cars = annotation.answer("cars")
    assert int(cars) >= 1

    def boxes(region_drop: float, calls: int) -> list[int]:
        lvlm = _scripted(processors["lvlm"], config, region_drop=region_drop)
        lvlm.query, lvlm.truth = TaskQuery("vqa", "cars"), (annotation, frame.width, frame.height)
        generations = [lvlm.generate([], [frame.image], want_regions=True) for _ in range(calls)]
        assert all(answer_part(g.text) == cars for g in generations)  # the answer is kept
        return [len(g.regions) for g in generations]

    (located,) = set(boxes(0.0, 5))  # every located car, every time
    assert located >= 1
    assert boxes(1.0, 5) == [0] * 5
    kept = sum(boxes(0.5, 200)) / (200 * located)
    assert 0.35 < kept < 0.65


def test_scripted_lvlm_misplaces_boxes_along_their_row_at_their_region_miss(processors, config):
    """A miss keeps the box's size and row but moves it along the row; other objects are not missed."""
    with_cars = [c for c in iter_clips(seed=3, clips=2, frames_per_clip=5)][1]
    frame, annotation = with_cars.frames[0], with_cars.annotations[0]
    truth = annotation.box("car").box

    def car_boxes(region_miss: dict[str, float], calls: int) -> list:
        lvlm = _scripted(processors["lvlm"], config, box_jitter=0.0, region_miss=region_miss)
        lvlm.query, lvlm.truth = TaskQuery("vqa", "cars"), (annotation, frame.width, frame.height)
        return [lvlm.generate([], [frame.image], want_regions=True).regions[0].box for _ in range(calls)]

    def kept(box) -> bool:
        return box.iou(truth) > 0.99

    assert all(kept(box) for box in car_boxes({"pedestrian": 1.0}, 20))  # only the named object
    missed = car_boxes({"car": 1.0}, 20)
    assert all((box.y1, box.y2) == pytest.approx((truth.y1, truth.y2)) for box in missed)
    assert all(box.width == pytest.approx(truth.width) and box.x2 <= frame.width for box in missed)
    assert all(box.iou(truth) < 0.5 for box in missed)  # well away from the car
    half = car_boxes({"car": 0.5}, 200)
    assert 0.3 < sum(not kept(box) for box in half) / 200 < 0.7


def test_svlm_data_adds_the_focus_light_prompts_at_their_stride(processors, clip, config):
    """Every n-th frame gets the light's crop beside the frame, with fresh context that agrees or not."""
    both = Processors(processors["svlm"], processors["lvlm"])
    base = recipe_for("svlm", micro=True)

    def light_context_samples(stride: int) -> list[Sample]:
        data = replace(base.data, context_runs_per_clip=0, light_context_stride=stride)
        samples = train_samples(clip, replace(base, data=data), config, both, np.random.default_rng(0))
        return [s for s in samples if "@" in s.group]

    assert light_context_samples(0) == []
    samples = light_context_samples(20)
    frames = range(0, len(clip.frames), 20)
    assert [s.group for s in samples] == ["vqa:light@focus", "vqa:light@focus_ctx_wrong"] * len(frames)
    assert [s.target for s in samples] == [clip.annotations[i].answer("light") for i in frames for _ in "ab"]
    for sample in samples:
        assert sample.kind == "context" and len(sample.images) == 2  # the frame and the light's crop
        agrees = f'"{sample.target}' in str(sample.messages[1:-1])
        assert agrees == (sample.group == "vqa:light@focus")


def test_answers_with_regions_and_answer_part(clip):
    annotation = clip.annotations[0]
    text = answer_text(TaskQuery("vqa", "light"), annotation, want_regions=True, scale=(0.7, 0.7))
    word, boxes = text.split("\n")
    assert word == annotation.answer("light") and '"label": "traffic light"' in boxes
    assert answer_part(text) == word
    assert answer_part("green") == "green"


def _annotation() -> FrameAnnotation:
    return FrameAnnotation(
        0,
        (VqaItem("light", "q", "red"),),
        "A road with no cars, a red traffic light and no pedestrians.",
        (GroundingItem("light", "the traffic light", "traffic light", Box(100, 40, 120, 80)),),
    )


def test_accuracy_per_group_from_known_predictions():
    image = np.zeros((240, 320, 3), np.uint8)
    vqa = Sample("full", "vqa:light", [], [image], "red")
    ground = Sample(
        "full", "grounding:light", [], [image], "", "x", meta={"box": (100, 40, 120, 80), "size": (320, 240)}
    )
    cap = Sample("full", "caption", [], [image], _annotation().caption)
    predictions = [
        Prediction(vqa, "red"),
        Prediction(vqa, "Red.\n[]"),  # normalized, region JSON ignored
        Prediction(vqa, "green"),
        Prediction(vqa, ""),
        Prediction(ground, '[{"bbox_2d": [70, 28, 84, 56], "label": "traffic light"}]', (224, 168)),  # IoU 1
        Prediction(ground, '[{"bbox_2d": [0, 0, 10, 10], "label": "traffic light"}]', (224, 168)),
        Prediction(cap, "a road with no cars, a red traffic light and no pedestrians"),
        Prediction(cap, "A road with 1 car, a red traffic light and no pedestrians."),
    ]
    assert accuracy_by_group(predictions) == {"caption": 0.5, "grounding:light": 0.5, "vqa:light": 0.5}
    assert class_prior([vqa, vqa, Sample("full", "vqa:light", [], [image], "green")]) == {"vqa:light": 2 / 3}


class _ScriptedAnswers:
    """Test double of a VlmBackend answering from a list (stands in for a model to check the scoring)."""

    name = "scripted-answers"

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def generate(self, messages, images, *, max_new_tokens=None, want_regions=False):
        self.calls.append((messages, len(images), max_new_tokens))
        return Generation(self.answers.pop(0))


def test_evaluate_asks_every_sample_and_scores_it():
    image = np.zeros((24, 32, 3), np.uint8)
    samples = [
        Sample("full", "vqa:cars", [{"role": "user", "content": "q"}], [image], str(n)) for n in (0, 1, 2, 3)
    ]
    backend = _ScriptedAnswers(["0", "1", "3", "two"])
    assert evaluate(backend, samples, max_new_tokens=5) == {"vqa:cars": 0.5}
    assert [c[2] for c in backend.calls] == [5] * 4


def test_curriculum_stages_and_learning_rate():
    recipe = recipe_for("lvlm")
    first = recipe.stage_at(0.0)
    assert (
        first.name == "light"
        and first.mix == {"crop": 1.0}
        and recipe.weights_at(first) == {"crop:light": 1.0}
    )
    assert recipe.stage_at(0.1).name == "crops" and recipe.stage_at(0.2).name == "mixed"
    assert recipe.weights_at(recipe.stage_at(0.5)) == recipe.family_weights
    assert recipe.stage_at(0.99).name == "full" and recipe.stage_at(1.5).name == "full"
    assert learning_rate(recipe, 0, 0.0) == pytest.approx(recipe.lr / recipe.warmup_steps)
    assert learning_rate(recipe, recipe.warmup_steps, 0.0) == pytest.approx(recipe.lr)
    assert learning_rate(recipe, 10_000, 1.0) == pytest.approx(recipe.lr * recipe.min_lr_fraction)
    assert recipe_for("svlm").model.input_width == 112 and recipe.model.text_layers == 4


def test_answers_curriculum_weights_the_vqa_questions():
    for role, kinds in (("lvlm", {"full", "crop"}), ("svlm", {"context", "full", "crop"})):
        recipe = recipe_for(role, curriculum="answers")
        (stage,) = recipe.stages
        weights = recipe.weights_at(stage)
        assert stage.name == "answers" and set(stage.mix) == kinds
        assert min(weights[f"vqa:{q}"] for q in ("light", "cars", "pedestrian")) > weights["grounding"]
        assert weights["grounding"] > weights["caption"] > 0 and recipe.lr < recipe_for(role).lr
        assert recipe.model == recipe_for(role).model and recipe.data == recipe_for(role).data
    with pytest.raises(ValueError, match="curriculum"):
        recipe_for("lvlm", curriculum="naive")


def _light_drawn_most(w: dict[str, float]) -> bool:
    return w["vqa:light"] >= 4 * max(w["vqa:cars"], w["vqa:pedestrian"])


def _cars_and_pedestrian_drawn_most(w: dict[str, float]) -> bool:
    return min(w["vqa:cars"], w["vqa:pedestrian"]) >= 2 * w["vqa:light"]


def _context_and_light_drawn_most(w: dict[str, float]) -> bool:
    return w["vqa:light"] >= 2 * max(w["vqa:cars"], w["vqa:pedestrian"])


@pytest.mark.parametrize(
    ("curriculum", "role", "stage_name", "kinds", "drawn_most"),
    [
        ("light", "lvlm", "lightmix", {"full", "crop"}, _light_drawn_most),
        ("objects", "lvlm", "objects", {"full", "crop"}, _cars_and_pedestrian_drawn_most),
        ("focus", "svlm", "focus", {"context", "full", "crop"}, _context_and_light_drawn_most),
    ],
)
def test_one_role_curricula_weight_their_questions_and_keep_the_rest(
    curriculum, role, stage_name, kinds, drawn_most
):
    recipe = recipe_for(role, curriculum=curriculum)
    (stage,) = recipe.stages
    weights = recipe.weights_at(stage)
    assert stage.name == stage_name and set(stage.mix) == kinds
    assert drawn_most(weights)
    if "context" in kinds:
        assert stage.mix["context"] > stage.mix["full"] + stage.mix["crop"]
    kept = ("vqa:light", "vqa:cars", "vqa:pedestrian", "grounding", "caption", "crop")
    assert min(weights[key] for key in kept) > 0
    assert recipe.lr < recipe_for(role).lr and recipe.data == recipe_for(role).data
    other = "svlm" if role == "lvlm" else "lvlm"
    with pytest.raises(ValueError, match=f"the {role.upper()}'s"):
        recipe_for(other, curriculum=curriculum)
