"""Training data on clips with speed-limit signs: what each model is taught about the speed limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from spotvlm_ros.synthetic.signs import NO_LIMIT, SPEED_LIMITS
from spotvlm_ros.training.answers import SIGN_QUERIES, TaskQuery, queries_for, seen_limit
from spotvlm_ros.training.context_data import ScriptedBackend, context_samples
from spotvlm_ros.training.data import Processors, build_heldout, train_samples
from spotvlm_ros.training.modeling import build_processor
from spotvlm_ros.training.recipe import recipe_for
from spotvlm_ros.training.samples import crop_samples, full_frame_samples, iter_clips, keyframe_image
from spotvlm_ros.training.scenario import demo_model_dir, demo_models_present, scenario_config
from spotvlm_ros.training.vocab import answer_words, train_demo_tokenizer

SPEED = TaskQuery("vqa", "speed_limit")


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
def config():
    return scenario_config()


@pytest.fixture(scope="module")
def clip():
    """A 25 s clip with signs whose first sign is posted and then passes out of view."""
    for candidate in iter_clips(seed=5, clips=4, frames_per_clip=250, signs=True):
        seen = [seen_limit(a) for a in candidate.annotations]
        limits = [a.answer("speed_limit") for a in candidate.annotations]
        if any(s in SPEED_LIMITS for s in seen) and seen[-1] == NO_LIMIT and limits[-1] in SPEED_LIMITS:
            return candidate
    pytest.fail("no clip of seed 5 passes a sign")


def test_the_tokenizer_is_the_shipped_models_and_speed_limits_are_single_tokens(tokenizer):
    for word in (*SPEED_LIMITS, *answer_words()):
        assert len(tokenizer.tokenize(word)) == 1, word
    if not demo_models_present():
        pytest.skip("the demo models are not shipped in this checkout")
    for role in ("lvlm", "svlm"):  # --init-from keeps its embeddings under the same token ids
        assert AutoTokenizer.from_pretrained(demo_model_dir(role)).get_vocab() == tokenizer.get_vocab()


def test_the_lvlm_is_taught_the_sign_it_sees_and_none_without_one(processors, clip, config):
    rng = np.random.default_rng(0)
    taught = {}
    for frame, annotation in zip(clip.frames, clip.annotations, strict=True):
        for sample in full_frame_samples(config, frame, annotation, (0.7, 0.7), rng):
            if sample.group.startswith("vqa:speed_limit"):
                taught[frame.stamp_ns] = (sample.target.split("\n")[0], annotation)
    assert len(taught) == len(clip.frames)
    for answer, annotation in taught.values():
        in_view = annotation.box("sign") is not None
        assert answer == (annotation.answer("speed_limit") if in_view else NO_LIMIT)
    remembered = [
        a for a, ann in taught.values() if ann.answer("speed_limit") in SPEED_LIMITS and a == NO_LIMIT
    ]
    assert remembered  # frames where the limit is known only from before: the LVLM says it sees none
    crops = [
        s
        for f, a in zip(clip.frames, clip.annotations, strict=True)
        for s in crop_samples(config, f, a, (0.7, 0.7), rng)
    ]
    signs = [s for s in crops if s.group == "crop:sign"]
    assert signs and all(s.target in SPEED_LIMITS for s in signs)


def test_the_svlm_is_taught_the_posted_limit_from_its_history(processors, clip, config):
    rng = np.random.default_rng(1)
    svlm = ScriptedBackend("s", processors["svlm"], config.edge.image_max_side, rng, keep=1.0)
    lvlm = ScriptedBackend("l", processors["lvlm"], config.cloud.image_max_side, rng, sees=True)
    samples = context_samples(clip, config, svlm, lvlm, rng, 4, (0.5, 1.0), [SPEED], (1, 4, 8))
    truths = {f.stamp_ns: a for f, a in zip(clip.frames, clip.annotations, strict=True)}
    assert len(samples) > 100
    assert {s.target for s in samples} <= {*SPEED_LIMITS, NO_LIMIT}
    # the keyframe turns carry what the LVLM saw ("none" once the sign is gone) while the target is the limit
    gone = [s for s in samples if s.target in SPEED_LIMITS and f'"{NO_LIMIT}' in str(s.messages[1:-1])]
    assert gone
    turns = [sum(1 for m in s.messages[1:-1] if m["role"] == "assistant") for s in samples]
    assert max(turns) > 1  # histories longer than one turn were recorded
    assert set(truths)  # the clip's frames were the ones run


def test_svlm_sign_data_draws_the_speed_limit_often_and_base_clips_do_not_have_it(processors, config):
    recipe = recipe_for("svlm", micro=True, curriculum="signs")
    assert (
        recipe.data.speed_signs
        and recipe.stages[0].weights["vqa:speed_limit"] > recipe.stages[0].weights["vqa:light"]
    )
    both = Processors(processors["svlm"], processors["lvlm"])
    (clip,) = iter_clips(seed=2, clips=1, frames_per_clip=40, signs=True)
    groups = {
        s.group.split("@")[0] for s in train_samples(clip, recipe, config, both, np.random.default_rng(0))
    }
    assert "vqa:speed_limit" in groups
    (plain,) = iter_clips(seed=2, clips=1, frames_per_clip=40)
    assert all(q not in queries_for(plain.annotations[0]) for q in SIGN_QUERIES)
    assert recipe_for("lvlm", curriculum="signs").data.speed_signs
    assert not recipe_for("svlm").data.speed_signs  # the shipped recipes are unchanged


def test_lvlm_sign_data_teaches_each_sign_frame_repainted_with_every_limit(processors, config):
    recipe = recipe_for("lvlm", curriculum="signs")
    stride = recipe.data.sign_variant_stride
    assert stride > 0 and recipe_for("lvlm").data.sign_variant_stride == 0
    clip = next(c for c in iter_clips(5, 4, 80, signs=True, sign_variants=True) if c.sign_variants)
    lvlm = Processors(processors["lvlm"], processors["lvlm"])
    samples = train_samples(clip, recipe, config, lvlm, np.random.default_rng(2))
    taught = {
        (s.images[0].tobytes(), s.target.split("\n")[0])
        for s in samples
        if s.group.startswith("vqa:speed_limit")
    }
    for index in sorted(clip.sign_variants)[::stride]:
        versions = [(clip.frames[index], clip.annotations[index]), *clip.sign_variants[index]]
        assert {seen_limit(a) for _, a in versions} == set(SPEED_LIMITS)
        for frame, annotation in versions:  # the same view, taught with each limit its plate shows
            assert (keyframe_image(config, frame).tobytes(), seen_limit(annotation)) in taught
    assert {s.target for s in samples if s.group == "crop:sign"} == set(SPEED_LIMITS)


def test_lvlm_heldout_scores_reading_the_signs_apart(processors, config):
    recipe = recipe_for("lvlm", curriculum="signs")
    heldout = build_heldout(recipe, config, Processors(processors["lvlm"], processors["lvlm"]), 5, clips=4)
    read = [s for s in heldout if s.group == "vqa:speed_limit@sign_in_view"]
    rest = [s for s in heldout if s.group == "vqa:speed_limit"]
    assert read and rest
    assert all(s.truth in SPEED_LIMITS for s in read)  # only frames with a posted sign in view
    assert all(s.truth == NO_LIMIT for s in rest)  # the LVLM is taught what the frame shows
