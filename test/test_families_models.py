"""Today's families through the real backends: tiny Qwen3-VL, Qwen3.5, Gemma 4, InternVL and SmolVLM2 models.

Each tiny model is built offline from its family's real config class and loaded back through
``from_pretrained``; the tests cover one generate, streaming, visual tokens against the processor's real
count, the prefix-reuse decision, and grounding round trips through both backends.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch

from spotvlm_ros.core.config import ModelConfig
from spotvlm_ros.models.families import family_for_model_type
from spotvlm_ros.models.hf_local import HfLocalBackend
from spotvlm_ros.models.openai_http import OpenAiHttpBackend
from spotvlm_ros.testing.fault_server import FaultyOpenAiServer, Reply

torch.set_num_threads(1)

NEW_FAMILIES = ("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "gemma4", "internvl", "smolvlm")
SIZES = ((640, 480), (1280, 960))


@pytest.fixture
def spotvlm_log(log_records):
    """The ``spotvlm`` log from DEBUG on (the conftest capture, which works under ROS's launch logging)."""
    log_records.set_level(logging.DEBUG)
    return log_records


def chat(question: str = "What is the state of the traffic light?", n_images: int = 1) -> list[dict]:
    return [
        {
            "role": "system",
            "content": [{"type": "text", "text": "You are the perception assistant of a robot."}],
        },
        {"role": "user", "content": [*([{"type": "image"}] * n_images), {"type": "text", "text": question}]},
    ]


def frame(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module", params=NEW_FAMILIES)
def backend(request, tiny_model_factory):
    model = HfLocalBackend(tiny_model_factory(request.param), max_new_tokens=5)
    yield model
    model.close()


def test_generates_streams_and_counts_its_visual_tokens(backend) -> None:
    partial: list[str] = []
    streamed = backend.generate(chat(), [frame()], on_text=partial.append)
    plain = backend.generate(chat(), [frame()])
    assert streamed.text == plain.text and plain.text
    assert partial and partial[-1] == plain.text
    assert all(plain.text.startswith(p) or p.endswith("\ufffd") for p in partial[:-1])
    # the backend's estimate is the processor's real count of image placeholders in the prompt
    assert plain.image_tokens > 0
    assert backend.image_tokens(640, 480) == plain.image_tokens
    two = backend.generate(chat(n_images=2), [frame(), frame(320, 320, seed=1)])
    assert two.image_tokens == backend.image_tokens(640, 480) + backend.image_tokens(320, 320)


def test_prefix_reuse_is_on_by_crop_or_by_snapshot(backend) -> None:
    family = family_for_model_type(backend.model_type)
    no_crop = {"qwen3_5": "linear-attention", "gemma4": "sliding-window"}
    assert backend.prefix_reuse
    if backend.model_type in no_crop:
        assert backend.prefix_reuse_mode == "snapshot" and not family.prefix_reuse
        assert no_crop[backend.model_type] in backend.prefix_reuse_note
    else:
        assert backend.prefix_reuse_mode == "crop" and family.prefix_reuse
    backend.generate(chat(), [frame(seed=3)])
    assert backend.generate(chat(), [frame(seed=4)]).cached_prefix_tokens > 0


def test_snapshot_reason_and_convention_are_logged_once_at_start(tiny_model_factory, spotvlm_log) -> None:
    model = HfLocalBackend(tiny_model_factory("qwen3_5"), max_new_tokens=2, name="tiny-qwen3.5")
    try:
        model.generate(chat(), [frame()])
        model.generate(chat(), [frame(seed=1)])
    finally:
        model.close()
    convention = [m for m in spotvlm_log.messages if "boxes read as" in m]
    snapshot = [m for m in spotvlm_log.messages if "prefix KV reuse by snapshot" in m]
    assert len(convention) == 1 and "qwen2_1000" in convention[0] and "Qwen3.5" in convention[0]
    assert len(snapshot) == 1 and "recurrent state" in snapshot[0]


def test_qwen3_5_thinking_is_switched_off_by_its_template(tiny_model_factory) -> None:
    model = HfLocalBackend(tiny_model_factory("qwen3_5"), max_new_tokens=2)
    try:
        ids = model._encode(chat(), [frame()])["input_ids"][0].tolist()
    finally:
        model.close()
    prompt = model.tokenizer.decode(ids)
    assert prompt.rstrip().endswith("<think>\n\n</think>")


# ---- grounding round trips: a box as the family writes it -> frame pixels, at two input resolutions ----

RIGHT_HALF = {
    "qwen3_vl": '[{"bbox_2d": [500, 0, 1000, 1000], "label": "car"}]',
    "qwen3_5": '[{"bbox_2d": [500, 0, 1000, 1000], "label": "car"}]',
    "qwen2_vl": "<|object_ref_start|>car<|object_ref_end|><|box_start|>(500,0),(1000,1000)<|box_end|>",
    "gemma4": '[{"box_2d": [0, 500, 1000, 1000], "label": "car"}]',
    "internvl": "<ref>car</ref><box>[[500, 0, 1000, 1000]]</box>",
}


def _answering(model: HfLocalBackend, text: str) -> None:
    """TEST DOUBLE for a trained model's output: the random tiny model's generate returns ``text``."""
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    model._generate = lambda *args, **kwargs: (ids, 0)  # type: ignore[method-assign]


@pytest.mark.parametrize("family", sorted(RIGHT_HALF))
def test_hf_backend_maps_the_family_box_to_frame_pixels(family, tiny_model_factory) -> None:
    model = HfLocalBackend(tiny_model_factory(family), max_new_tokens=4)
    try:
        _answering(model, RIGHT_HALF[family])
        for width, height in SIZES:
            result = model.generate(chat("Where is the car?"), [frame(width, height)], want_regions=True)
            assert result.region_error == ""
            (region,) = result.regions
            box = region.box
            assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx((width / 2, 0, width, height), abs=1.0)
    finally:
        model.close()


def test_qwen2_5_vl_pixels_of_its_resized_input_map_to_the_frame(tiny_model_factory) -> None:
    model = HfLocalBackend(tiny_model_factory("qwen2_5_vl"), max_new_tokens=4, image_max_side=448)
    try:
        # 640x480 and 1280x960 both reach the model as 448x336 (fit to 448, then 28 px multiples)
        _answering(model, '[{"bbox_2d": [224, 0, 448, 336], "label": "car"}]')
        for width, height in SIZES:
            (region,) = model.generate(chat(), [frame(width, height)], want_regions=True).regions
            assert (region.box.x1, region.box.x2, region.box.y2) == pytest.approx(
                (width / 2, width, height), abs=1
            )
    finally:
        model.close()


def test_explicit_coord_format_in_config_wins(tiny_model_factory, spotvlm_log) -> None:
    model = HfLocalBackend(tiny_model_factory("qwen3_vl"), max_new_tokens=4, coord_format="normalized")
    try:
        _answering(model, '[{"bbox_2d": [0.5, 0, 1, 1], "label": "car"}]')
        (region,) = model.generate(chat(), [frame()], want_regions=True).regions
    finally:
        model.close()
    assert (region.box.x1, region.box.x2) == pytest.approx((320, 640), abs=1)
    assert any("normalized" in m and "set in config" in m for m in spotvlm_log.messages)


@pytest.mark.parametrize(
    ("served", "answer", "expected_x1"),
    [
        ("Qwen/Qwen3-VL-235B-A22B-Instruct", '[{"bbox_2d": [500, 0, 1000, 1000], "label": "car"}]', 0.5),
        ("Qwen/Qwen3.5-397B-A17B", '[{"bbox_2d": [500, 0, 1000, 1000], "label": "car"}]', 0.5),
        ("google/gemma-4-31B-it", '[{"box_2d": [0, 500, 1000, 1000], "label": "car"}]', 0.5),
        # Qwen2.5-VL: pixels of its input; 640 px sent -> smart_resize to 644x476 -> x 322 is the middle
        ("Qwen/Qwen2.5-VL-72B-Instruct", '[{"bbox_2d": [322, 0, 644, 476], "label": "car"}]', 0.5),
    ],
)
def test_openai_backend_picks_the_convention_from_the_served_name(served, answer, expected_x1) -> None:
    with FaultyOpenAiServer(default=Reply.ok(answer)) as server:
        for width, height in SIZES:
            config = ModelConfig(
                backend="openai", base_url=server.base_url, model=served, image_max_side=640, timeout_s=10
            )
            backend = OpenAiHttpBackend(config)
            try:
                result = backend.generate(chat(), [frame(width, height)], want_regions=True)
            finally:
                backend.close()
            (region,) = result.regions
            assert region.box.x1 == pytest.approx(expected_x1 * width, abs=width / 320)
            assert region.box.x2 == pytest.approx(width, abs=1) and region.box.y2 == pytest.approx(
                height, abs=1
            )
            instruction = server.requests[-1].json()["messages"][-1]["content"][-1]["text"]
            assert ("0-1000" in instruction) == ("2.5" not in served)


def test_openai_token_estimate_follows_the_served_family() -> None:
    def tokens(model: str) -> int:
        config = ModelConfig(
            backend="openai", base_url="http://127.0.0.1:9/v1", model=model, image_max_side=640
        )
        backend = OpenAiHttpBackend(config)
        try:
            return backend.image_tokens(640, 480)
        finally:
            backend.close()

    assert tokens("Qwen/Qwen3-VL-2B-Instruct") == (480 // 32) * (640 // 32)  # 32 px per token: 300
    assert tokens("Qwen/Qwen2.5-VL-7B-Instruct") == 17 * 23  # 28 px per token after smart_resize: 391
    assert tokens("google/gemma-4-E2B-it") == 266  # pooled budget of 280


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "qwen3_5"])
def test_a_normal_run_warns_of_no_deprecation(family, tiny_model_factory) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = HfLocalBackend(tiny_model_factory(family), max_new_tokens=3)
        try:
            for seed in (1, 2):  # the second call goes through the reused prefix where it is on
                model.generate(chat(), [frame(seed=seed)], on_text=lambda text: None, want_regions=True)
        finally:
            model.close()
    deprecations = [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert not deprecations, [str(w.message) for w in deprecations]
