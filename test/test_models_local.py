"""HfLocalBackend on the tiny models of every family: real from_pretrained, real processors, real generate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spotvlm_ros.models.base import BackendError, Generation, VlmBackend
from spotvlm_ros.models.grounding import grounding_instruction
from spotvlm_ros.models.hf_local import HfLocalBackend, fit_image, with_grounding_request
from spotvlm_ros.models.tiny import TINY_FAMILIES

torch.set_num_threads(1)

SYSTEM = "You are the perception assistant of a robot. Answer briefly."


def chat(n_images: int, question: str = "What is the state of the traffic light?", system: str = SYSTEM):
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "(2.4 s ago) What is the state of the traffic light?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
        {"role": "user", "content": [{"type": "text", "text": "(1.2 s ago) Is there a pedestrian?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "yes, on the left"}]},
        {"role": "user", "content": [*([{"type": "image"}] * n_images), {"type": "text", "text": question}]},
    ]


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(480, 640), (224, 224), (150, 300)]
    return [rng.integers(0, 256, (*sizes[i % 3], 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture(scope="module", params=TINY_FAMILIES)
def backend(request, tiny_model_factory):
    backend = HfLocalBackend(
        tiny_model_factory(request.param), max_new_tokens=8, name=f"tiny:{request.param}"
    )
    yield backend
    backend.close()


def test_is_a_vlm_backend(backend) -> None:
    assert isinstance(backend, VlmBackend)
    assert backend.name.startswith("tiny:")


@pytest.mark.parametrize("n_images", [1, 3])
def test_generates_on_images_and_multi_turn_history(backend, n_images: int) -> None:
    images = frames(n_images)
    result = backend.generate(chat(n_images), images)
    assert isinstance(result, Generation)
    assert isinstance(result.text, str) and result.text
    assert result.image_tokens == sum(backend.image_tokens(im.shape[1], im.shape[0]) for im in images)
    assert result.prompt_tokens > result.image_tokens > 0
    assert result.seconds > 0
    assert result.regions == () and result.region_error == ""


def test_deterministic_for_a_fixed_seed(backend, tiny_model_factory) -> None:
    images = frames(2, seed=7)
    first = backend.generate(chat(2), images)
    assert backend.generate(chat(2), images).text == first.text
    family = backend.name.split(":", 1)[1]
    fresh = HfLocalBackend(tiny_model_factory(family), max_new_tokens=8, prefix_cache=False)
    try:
        assert fresh.generate(chat(2), images).text == first.text
    finally:
        fresh.close()


def test_prompt_tokens_grow_by_the_counted_text(backend) -> None:
    images = frames(1)
    base = backend.generate(chat(1), images)
    extra = " red car and green traffic light"
    longer = backend.generate(chat(1, system=SYSTEM + extra), images)
    assert longer.prompt_tokens - base.prompt_tokens == backend.count_tokens(extra)
    assert longer.image_tokens == base.image_tokens


def test_count_tokens_uses_the_real_tokenizer(backend) -> None:
    assert backend.count_tokens("") == 0
    text = "The traffic light is red."
    assert backend.count_tokens(text) == len(backend.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert backend.count_tokens(text * 4) > backend.count_tokens(text)


@pytest.mark.parametrize("size", [(640, 480), (1920, 1080), (100, 30), (5, 7), (448, 448), (3000, 40)])
def test_image_tokens_match_what_generate_puts_in_the_prompt(backend, size) -> None:
    width, height = size
    image = np.full((height, width, 3), 128, np.uint8)
    result = backend.generate(chat(1), [image], max_new_tokens=1)
    assert result.image_tokens == backend.image_tokens(width, height) > 0


def test_text_only_turn(backend) -> None:
    result = backend.generate(chat(0), [])
    assert result.image_tokens == 0
    assert result.prompt_tokens > 0


def test_max_new_tokens_bounds_the_answer(backend) -> None:
    images = frames(1, seed=3)
    short = backend.generate(chat(1), images, max_new_tokens=2).text.rstrip("\ufffd")
    long = backend.generate(chat(1), images, max_new_tokens=12).text
    assert long.startswith(short)
    assert len(short) < len(long) or short == long  # eos may end both early


def test_want_regions_asks_for_json_boxes_and_reports_why_none(backend) -> None:
    images = frames(1)
    plain = backend.generate(chat(1), images)
    grounded = backend.generate(chat(1), images, want_regions=True)
    # the instruction is appended to the last user turn: exactly its tokens (plus a separator) more
    assert grounded.prompt_tokens - plain.prompt_tokens >= backend.count_tokens(grounding_instruction())
    if not grounded.regions:  # a random tiny model rarely writes boxes
        assert grounded.region_error
    for region in grounded.regions:
        assert 0 <= region.box.x1 < region.box.x2 <= images[0].shape[1]
        assert 0 <= region.box.y1 < region.box.y2 <= images[0].shape[0]


def test_want_regions_without_image_reports_why(backend) -> None:
    result = backend.generate(chat(0), [], want_regions=True)
    assert result.regions == () and "no image" in result.region_error


def test_image_count_mismatch_is_a_backend_error(backend) -> None:
    with pytest.raises(BackendError, match="2 image part.*1 image"):
        backend.generate(chat(2), frames(1))


@pytest.mark.parametrize(
    "bad",
    [np.zeros((32, 32), np.uint8), np.zeros((32, 32, 3), np.float32), np.zeros((0, 32, 3), np.uint8), "img"],
)
def test_bad_images_are_backend_errors(backend, bad) -> None:
    with pytest.raises(BackendError):
        backend.generate(chat(1), [bad])


def test_fit_image_bounds_the_longest_side_and_keeps_aspect() -> None:
    big = np.zeros((1080, 1920, 3), np.uint8)
    assert fit_image(big, 448).shape == (252, 448, 3)
    small = np.zeros((120, 160, 3), np.uint8)
    assert fit_image(small, 448).shape == small.shape
    assert fit_image(np.zeros((40, 3000, 3), np.uint8), 448).shape == (6, 448, 3)


def test_grounding_request_goes_to_the_last_user_turn_without_mutating() -> None:
    messages = chat(1)
    out = with_grounding_request(messages, "Give boxes.")
    assert out[-1]["content"][-1] == {"type": "text", "text": "Give boxes."}
    assert len(messages[-1]["content"]) == 2
    with pytest.raises(BackendError, match="no user turn"):
        with_grounding_request([{"role": "system", "content": "x"}], "Give boxes.")


def test_unusable_model_paths_are_clear_errors(tmp_path) -> None:
    with pytest.raises(BackendError, match="cannot load a vision-language model from"):
        HfLocalBackend(tmp_path / "missing")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(BackendError, match="cannot load"):
        HfLocalBackend(tmp_path / "broken")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tiny_model_factory) -> None:
    with pytest.raises(BackendError, match="CUDA is not available"):
        HfLocalBackend(tiny_model_factory("llava"), device="cuda")
    with pytest.raises(BackendError, match="invalid torch device"):
        HfLocalBackend(tiny_model_factory("llava"), device="gpu-please")


def test_dtype_from_config(tiny_model_factory) -> None:
    backend = HfLocalBackend(tiny_model_factory("llava"), dtype="bfloat16", max_new_tokens=4)
    try:
        assert backend.model.dtype == torch.bfloat16
        assert backend.generate(chat(1), frames(1)).text is not None
    finally:
        backend.close()


def test_close_frees_the_model_and_later_calls_fail(tiny_model_factory) -> None:
    backend = HfLocalBackend(tiny_model_factory("llava"), max_new_tokens=4)
    backend.generate(chat(1), frames(1))
    backend.close()
    assert backend.closed and backend.model is None
    backend.close()  # idempotent
    with pytest.raises(BackendError, match="closed"):
        backend.generate(chat(1), frames(1))


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl"])
def test_qwen_image_tokens_agree_with_core_visual_tokens(tiny_model_factory, family: str) -> None:
    from spotvlm_ros.core.focus.tokens import visual_tokens

    backend = HfLocalBackend(tiny_model_factory(family), image_max_side=448)
    try:
        for width, height in [(640, 480), (1920, 1080), (224, 224), (100, 60), (448, 100), (3000, 40)]:
            expected = visual_tokens(width, height, max_side=448)
            assert backend.image_tokens(width, height) == expected, (width, height)
    finally:
        backend.close()


def test_chat_template_problems_are_backend_errors(tiny_model_factory, tmp_path) -> None:
    import shutil

    path = tmp_path / "llava"
    shutil.copytree(tiny_model_factory("llava"), path)
    (path / "chat_template.jinja").write_text("{{ raise_exception('System role not supported') }}")
    backend = HfLocalBackend(path)
    try:
        with pytest.raises(BackendError, match="cannot build the model input: System role not supported"):
            backend.generate(chat(1), frames(1))
    finally:
        backend.close()
    (path / "chat_template.jinja").unlink()
    with pytest.raises(BackendError, match="no chat template"):
        HfLocalBackend(path)


def test_token_counting_from_another_thread_during_generate(tiny_model_factory) -> None:
    import threading

    backend = HfLocalBackend(tiny_model_factory("qwen2_5_vl"), max_new_tokens=4)
    errors: list[BaseException] = []

    def answer() -> None:
        try:
            for seed in range(3):
                backend.generate(chat(1), frames(1, seed))
        except Exception as err:  # reported to the main thread
            errors.append(err)

    try:
        worker = threading.Thread(target=answer)
        worker.start()
        counts = {backend.count_tokens("The traffic light is red.") for _ in range(200)}
        sizes = {backend.image_tokens(320 + i, 240) for i in range(5)}
        worker.join(timeout=60)
        assert not worker.is_alive() and not errors
        assert len(counts) == 1 and all(size > 0 for size in sizes)
    finally:
        backend.close()


def test_qwen2_5_vl_regions_map_from_the_model_input_to_frame_pixels(tiny_model_factory) -> None:
    from spotvlm_ros.models.grounding import parse_regions
    from spotvlm_ros.models.hf_local import model_input_size

    backend = HfLocalBackend(tiny_model_factory("qwen2_5_vl"), image_max_side=448)
    try:
        frame = np.zeros((480, 640, 3), np.uint8)
        fitted = fit_image(frame, backend.image_max_side)
        inputs = backend._encode(chat(1), [fitted])
        size = model_input_size(inputs, backend.processor, fitted)
        assert size == (448, 336)  # 640x480 -> 448x336 (image_max_side) -> 32x24 patches of 14 px
        answer = '[{"bbox_2d": [112, 84, 224, 336], "label": "car"}]'
        (region,) = parse_regions(answer, (640, 480), size, backend.coord_format).regions
        assert region.box.as_tuple() == (160.0, 120.0, 320.0, 480.0) and region.label == "car"
    finally:
        backend.close()


def test_each_family_reads_boxes_in_its_own_coordinates(backend) -> None:
    expected = {
        "qwen2_5_vl": "qwen25_abs",
        "qwen2_vl": "qwen2_1000",
        "qwen3_vl": "qwen2_1000",
        "qwen3_vl_moe": "qwen2_1000",
        "qwen3_5": "qwen2_1000",
        "internvl": "qwen2_1000",
        "gemma4": "gemini_yxyx_1000",
    }
    assert backend.coord_format == expected.get(backend.model_type, "auto")
