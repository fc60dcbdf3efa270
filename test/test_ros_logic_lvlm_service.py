"""The LVLM server's logic without ROS: goal checks, queue limit, decode, backend, results, cancel."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from spotvlm_ros.core.config import config_from_dict
from spotvlm_ros.core.messages import lvlm_result_from_msg, query_goal
from spotvlm_ros.core.types import NS_PER_S, Box, Region
from spotvlm_ros.models.base import BackendError, Generation
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.image_codec import encode_jpeg
from spotvlm_ros.runtime.lvlm_service import ABORTED, CANCELED, SUCCEEDED, LvlmService, goal_view
from spotvlm_ros.runtime.typestore import build_message, spotvlm_typestore

STAMP = 1_700_000_000 * NS_PER_S + 5
IMAGE = np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)
JPEG = encode_jpeg(IMAGE, quality=80)


def goal(request_id: str = "bridge-1", data: bytes = JPEG, **kw) -> dict:
    fields = {"task": "vqa", "prompt": "What is the light?", "want_regions": False, **kw}
    return query_goal(data, STAMP, "cam", request_id=request_id, **fields)


def service(backend=None, **server) -> LvlmService:
    config = config_from_dict({"server": server, "system_prompt": "be brief"})
    return LvlmService(backend or ZeroCostBackend(name="zero:cloud"), config)


class GroundingBackend:
    """Test double of a grounding LVLM: fixed text and one region, records what it was asked."""

    name = "grounder"

    def __init__(self):
        self.calls = []

    def generate(self, messages, images, *, max_new_tokens=None, want_regions=False):
        self.calls.append((messages, images, max_new_tokens, want_regions))
        return Generation("the light is red", (Region(Box(1, 2, 30, 40), "light", 0.8),), 50, 20, 0.25)

    def count_tokens(self, text):
        return len(text.split())

    def image_tokens(self, width, height):
        return 1

    def close(self):
        pass


def test_checks_name_the_reason():
    svc = service(max_image_bytes=len(JPEG) + 10, max_image_pixels=128 * 96)
    assert svc.check(goal()) == ""
    assert "unknown task 'poetry'" in svc.check(goal(task="poetry"))
    assert svc.check(goal(prompt="  ")) == "empty prompt"
    assert svc.check(goal(request_id="")) == "empty request_id"
    assert svc.check(goal(data=b"")) == "no image data"
    assert "not a JPEG or PNG" in svc.check(goal(data=b"hello world"))
    big = encode_jpeg(np.zeros((200, 300, 3), np.uint8))
    assert "300x200 pixels exceeds server.max_image_pixels" in svc.check(goal(data=big))
    svc_small = service(max_image_bytes=1024)
    assert "exceeds server.max_image_bytes=1024" in svc_small.check(goal())


def test_admission_is_bounded_and_released():
    svc = service(max_queued_goals=1)
    first = goal("a")
    assert svc.admit(first) == "" and svc.running == 1
    assert svc.admit(goal("b")).startswith("busy")
    svc.release(first)
    assert svc.admit(goal("b")) == ""
    again = service(max_queued_goals=2)
    assert again.admit(goal("x")) == "" and "already running" in again.admit(goal("x"))
    assert svc.monitor.counts["rejected"] == 1 and svc.monitor.counts["accepted"] == 2


def test_run_builds_the_result_in_ros_layout():
    backend = GroundingBackend()
    svc = service(backend)
    g = goal(task="grounding", want_regions=True, max_new_tokens=7)
    assert svc.admit(g) == ""
    feedback = []
    outcome = svc.run(g, feedback=feedback.append)
    assert outcome.status == SUCCEEDED and outcome.result["success"] and outcome.seconds > 0
    assert svc.running == 0 and feedback == ["the light is red"]
    messages, images, max_new, want = backend.calls[0]
    assert (
        messages[0]["content"][0]["text"] == "be brief" and messages[1]["content"][1]["text"] == g["prompt"]
    )
    assert images[0].shape == IMAGE.shape and max_new == 7 and want is True
    context = lvlm_result_from_msg(outcome.result["context"])
    assert (context.request_id, context.stamp_ns, context.frame_id) == ("bridge-1", STAMP, "cam")
    assert context.image_size == (128, 96) and context.model == "grounder" and context.round_trip_s == 0.25
    assert context.regions == (Region(Box(1, 2, 30, 40), "light", 0.8),)
    built = build_message(spotvlm_typestore(), "spotvlm_msgs/action/QueryLVLM_Result", outcome.result)
    assert built.success and built.context.text == "the light is red"


def test_default_max_new_tokens_comes_from_the_cloud_config():
    backend = GroundingBackend()
    svc = service(backend)
    svc.run(goal())
    assert backend.calls[0][2] == 128


def test_backend_errors_and_bad_images_abort_with_a_reason():
    class Failing(GroundingBackend):
        def generate(self, *a, **k):
            raise BackendError("CUDA out of memory")

    outcome = service(Failing()).run(goal())
    assert outcome.status == ABORTED and outcome.error == "backend error: CUDA out of memory"
    truncated = service().run(goal(data=JPEG[: len(JPEG) // 2]))
    assert truncated.status == ABORTED and "undecodable image" in truncated.error

    class Broken(GroundingBackend):
        def generate(self, *a, **k):
            raise ZeroDivisionError("oops")

    broken = service(Broken())
    g = goal()
    broken.admit(g)
    outcome = broken.run(g)
    assert outcome.status == ABORTED and "ZeroDivisionError" in outcome.error and broken.running == 0
    assert broken.monitor.counts["aborted"] == 1


def test_cancel_before_and_after_generation():
    svc = service()
    assert svc.run(goal(), cancelled=lambda: True).status == CANCELED
    flag = threading.Event()

    class CancelDuring(GroundingBackend):
        def generate(self, *a, **k):
            flag.set()
            return super().generate(*a, **k)

    outcome = service(CancelDuring()).run(goal(), cancelled=flag.is_set)
    assert outcome.status == CANCELED and outcome.result["success"] is False


def test_cancel_reaches_backends_that_can_abort():
    class Abortable(GroundingBackend):
        def __init__(self):
            super().__init__()
            self.cancelled = []

        def generate(self, messages, images, *, max_new_tokens=None, want_regions=False, request_id=""):
            self.calls.append(request_id)
            return super().generate(messages, images, max_new_tokens=max_new_tokens)

        def cancel(self, request_id=""):
            self.cancelled.append(request_id)
            return 1

    backend = Abortable()
    svc = service(backend)
    svc.run(goal("r-9"))
    assert backend.calls[0] == "r-9"  # the request id names the HTTP request
    svc.cancel("r-9")
    assert backend.cancelled == ["r-9"]
    service().cancel("r-1")  # a backend without cancel: nothing to do


def test_zero_backend_end_to_end():
    outcome = service().run(goal())
    assert outcome.status == SUCCEEDED
    assert lvlm_result_from_msg(outcome.result["context"]).model == "zero:cloud"


def test_goal_view_reads_message_objects_without_copying_the_image():
    data = bytearray(JPEG)
    stamp = SimpleNamespace(sec=1_700_000_000, nanosec=5)
    msg = SimpleNamespace(
        image=SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id="cam"), format="jpeg", data=data),
        task="vqa",
        prompt="p",
        want_regions=False,
        max_new_tokens=0,
        request_id="bridge-3",
    )
    view = goal_view(msg)
    assert view["image"]["data"] is data and view["request_id"] == "bridge-3"
    assert service().check(view) == ""
    assert lvlm_result_from_msg(service().run(view).result["context"]).stamp_ns == STAMP


@pytest.mark.parametrize("tiny_model_dir", ["qwen2_5_vl"], indirect=True)
def test_tiny_local_model_serves_a_goal(tiny_model_dir):
    import torch

    from spotvlm_ros.models.hf_local import HfLocalBackend

    torch.set_num_threads(1)
    backend = HfLocalBackend(tiny_model_dir, max_new_tokens=4, image_max_side=64)
    try:
        svc = service(backend)
        outcome = svc.run(goal(max_new_tokens=3))
        assert outcome.status == SUCCEEDED, outcome.error
        context = lvlm_result_from_msg(outcome.result["context"])
        assert context.model == backend.name and context.image_size == (128, 96)
    finally:
        backend.close()


class GatedBackend(GroundingBackend):
    """Test double of a local model: one generation at a time, held until ``gate`` opens."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.started = threading.Event()
        self.entered = 0

    def generate(self, *args, **kwargs):
        self.entered += 1
        self.started.set()
        self.gate.wait(10)
        return super().generate(*args, **kwargs)


def test_local_models_queue_goals_and_a_cancel_ends_a_queued_one_at_once():
    backend = GatedBackend()
    svc = service(backend)  # cloud.backend defaults to tiny: one generation at a time
    outcomes = {}
    first = threading.Thread(target=lambda: outcomes.setdefault("a", svc.run(goal("a"))))
    first.start()
    assert backend.started.wait(5)
    cancel_b = threading.Event()
    second = threading.Thread(
        target=lambda: outcomes.setdefault("b", svc.run(goal("b"), cancelled=cancel_b.is_set))
    )
    second.start()
    second.join(0.3)
    assert second.is_alive() and backend.entered == 1  # queued behind the running generation
    cancel_b.set()
    second.join(2)
    assert not second.is_alive() and outcomes["b"].status == CANCELED and "queued" in outcomes["b"].error
    backend.gate.set()
    first.join(5)
    assert outcomes["a"].status == SUCCEEDED and len(backend.calls) == 1


def test_close_aborts_queued_goals():
    backend = GatedBackend()
    svc = service(backend)
    outcomes = {}
    first = threading.Thread(target=lambda: outcomes.setdefault("a", svc.run(goal("a"))))
    first.start()
    assert backend.started.wait(5)
    second = threading.Thread(target=lambda: outcomes.setdefault("b", svc.run(goal("b"))))
    second.start()
    svc.close()
    second.join(2)
    assert outcomes["b"].status == ABORTED and outcomes["b"].error == "server shutting down"
    backend.gate.set()
    first.join(5)


def test_http_backends_run_goals_concurrently():
    backend = GatedBackend()
    config = config_from_dict({"cloud": {"backend": "openai", "base_url": "http://127.0.0.1:1/v1"}})
    svc = LvlmService(backend, config)
    threads = [threading.Thread(target=svc.run, args=(goal(str(i)),)) for i in range(2)]
    for thread in threads:
        thread.start()
    threading.Event().wait(0.3)
    assert backend.entered == 2  # both generate at once (the endpoint batches them)
    backend.gate.set()
    for thread in threads:
        thread.join(5)
    assert len(backend.calls) == 2
