"""OpenAI-compatible HTTP backend: a real `transformers serve` process on loopback, plus loopback doubles.

The real server (a tiny random LLaVA from the offline factory) covers the happy path, images, timeouts
through the delay proxy, a server killed mid-request and the API-key check (through the auth gateway).
The scripted fault server (a test double) covers answers real servers rarely give: 5xx, malformed
JSON, empty choices, oversized bodies.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest
from time_scale import scaled

from spotvlm_ros.core.config import ModelConfig
from spotvlm_ros.models.base import BackendError, VlmBackend
from spotvlm_ros.models.openai_http import (
    OpenAiHttpBackend,
    RequestCancelledError,
    RequestTimeoutError,
)
from spotvlm_ros.testing.auth_gateway import AuthGateway
from spotvlm_ros.testing.delay_proxy import DelayProxy
from spotvlm_ros.testing.fault_server import FaultyOpenAiServer, Reply
from spotvlm_ros.testing.serve import ServeError, TransformersServe

SECRET = "sk-test-7f3a9c0d2b4e6f81"
KEY_ENV = "SPOTVLM_TEST_API_KEY"


def chat(text: str = "What color is the light?", n_images: int = 1) -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]},
        {"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]},
    ]


def frame(width: int = 160, height: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def make_backend(openai_backends):
    return functools.partial(openai_backends, timeout_s=10.0)


@pytest.fixture(scope="module")
def llava_dir(tiny_model_factory):
    return tiny_model_factory("llava")


@pytest.fixture(scope="module")
def served(llava_dir):
    with TransformersServe(llava_dir) as server:
        yield server


@pytest.fixture
def fault_server():
    with FaultyOpenAiServer() as server:
        yield server


def _in_thread(fn):
    """Run ``fn`` in a thread; returns (thread, outcome dict with 'result' or 'error' and 'end')."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = err
        outcome["end"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


# ---- against a real transformers serve process --------------------------------------------------------


def test_answers_with_image_through_real_server(served, make_backend):
    backend = make_backend(served.base_url, model=served.model, max_new_tokens=6)
    assert isinstance(backend, VlmBackend)
    with_image = backend.generate(chat(), [frame()])
    again = backend.generate(chat(), [frame()])
    text_only = backend.generate(chat(n_images=0), [])
    assert isinstance(with_image.text, str) and with_image.text == again.text  # temperature 0
    assert with_image.seconds > 0 and with_image.image_tokens > 0
    assert with_image.prompt_tokens > text_only.prompt_tokens > 0  # the image reached the model
    assert text_only.image_tokens == 0


def test_regions_wanted_from_random_model_give_reason_not_crash(served, make_backend):
    backend = make_backend(served.base_url, model=served.model, max_new_tokens=6)
    plain = backend.generate(chat(), [frame()])
    grounded = backend.generate(chat(), [frame()], want_regions=True)
    assert grounded.prompt_tokens > plain.prompt_tokens  # the grounding instruction was appended
    assert grounded.regions == () and grounded.region_error


def test_wrong_model_name_is_a_clear_4xx(served, make_backend):
    backend = make_backend(served.base_url, model="not-this-model", max_new_tokens=4)
    with pytest.raises(BackendError, match=r"HTTP 400 .*pinned"):
        backend.generate(chat(), [frame()])


def test_timeout_through_delay_proxy_then_recovery(served, make_backend):
    with DelayProxy("127.0.0.1", served.port, downstream_delay_s=3.0) as proxy:
        backend = make_backend(proxy.url(path="/v1"), model=served.model, max_new_tokens=4, timeout_s=0.6)
        start = time.monotonic()
        with pytest.raises(RequestTimeoutError, match="timeout_s=0.6"):
            backend.generate(chat(), [frame()])
        assert 0.6 <= time.monotonic() - start < 0.6 + scaled(2.0)
        proxy.set_delay(downstream_s=0.0)
        assert isinstance(backend.generate(chat(), [frame()]).text, str)


def test_stalled_link_times_out(served, make_backend):
    with DelayProxy("127.0.0.1", served.port) as proxy:
        proxy.set_fault("stall")
        backend = make_backend(proxy.url(path="/v1"), model=served.model, timeout_s=0.5)
        start = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            backend.generate(chat(), [frame()])
        assert time.monotonic() - start < 0.5 + scaled(2.0)


def test_server_killed_mid_request_fails_fast(llava_dir, make_backend):
    """The server is frozen (SIGSTOP) when its first streamed text arrives, so it is surely mid-answer when
    it is killed; the caller then fails at once with a connection error, not a timeout."""
    with TransformersServe(llava_dir) as server:
        backend = make_backend(server.base_url, model=server.model, timeout_s=scaled(60.0), retries=1)
        generating = threading.Event()

        def freeze_on_first_text(_text: str) -> None:
            if not generating.is_set():
                os.kill(server.pid, signal.SIGSTOP)
                generating.set()

        thread, outcome = _in_thread(
            lambda: backend.generate(chat(), [frame()], max_new_tokens=4000, on_text=freeze_on_first_text)
        )
        assert generating.wait(scaled(60.0)), f"no streamed text: {outcome}\n{server.log_tail()}"
        assert thread.is_alive(), f"generation finished before the kill: {outcome}"
        server.kill()
        killed_at = time.monotonic()
        thread.join(timeout=scaled(10.0))
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, BackendError) and not isinstance(error, RequestTimeoutError), outcome
    assert outcome["end"] - killed_at < scaled(5.0)
    start = time.monotonic()
    with pytest.raises(BackendError, match="cannot connect.*gave up after 2 attempts"):
        backend.generate(chat(), [frame()])
    assert time.monotonic() - start < scaled(5.0)


def test_api_key_checked_by_gateway_and_never_leaked(served, make_backend, monkeypatch):
    with AuthGateway(f"http://127.0.0.1:{served.port}", SECRET) as gateway:
        backend = make_backend(gateway.base_url, model=served.model, max_new_tokens=4, api_key_env=KEY_ENV)
        monkeypatch.setenv(KEY_ENV, SECRET)
        assert isinstance(backend.generate(chat(), [frame()]).text, str)
        wrong = SECRET[::-1]
        monkeypatch.setenv(KEY_ENV, wrong)
        with pytest.raises(BackendError) as caught:
            backend.generate(chat(), [frame()])
        message = str(caught.value)
        assert "HTTP 401" in message and "invalid API key" in message and KEY_ENV in message
        for text in (message, repr(backend), backend.name, repr(caught.value.__cause__)):
            assert SECRET not in text and wrong not in text
        monkeypatch.delenv(KEY_ENV)
        with pytest.raises(BackendError, match=f"{KEY_ENV}.*not set"):
            backend.generate(chat(), [frame()])
        assert gateway.rejected == 1


# ---- against the scripted fault server (test double) --------------------------------------------------


def test_request_carries_model_images_and_settings(fault_server, make_backend, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    backend = make_backend(
        fault_server.base_url, model="big-vlm", image_max_side=64, max_new_tokens=9, api_key_env=KEY_ENV
    )
    backend.generate(chat("Where is it?"), [frame(160, 120)], want_regions=True, request_id="kf-42")
    received = fault_server.requests[-1]
    body = received.json()
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {SECRET}"
    assert received.headers["x-request-id"] == "kf-42"
    assert body["model"] == "big-vlm" and body["max_tokens"] == 9 and body["temperature"] == 0.0
    system, user = body["messages"]
    assert system == {"role": "system", "content": "Answer briefly."}
    image_part, question, instruction = user["content"]
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    jpeg = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert jpeg.shape == (48, 64, 3)  # downscaled to image_max_side
    assert question == {"type": "text", "text": "Where is it?"}
    assert "bbox_2d" in instruction["text"]


def test_regions_mapped_from_sent_image_to_original_pixels(fault_server, make_backend):
    fault_server.default = Reply.ok('```json\n[{"bbox_2d": [32, 24, 160, 120], "label": "car"}]\n```')
    backend = make_backend(fault_server.base_url, image_max_side=320)
    result = backend.generate(chat(), [frame(640, 480)], want_regions=True)
    assert [(r.label, r.box.as_tuple()) for r in result.regions] == [("car", (64.0, 48.0, 320.0, 240.0))]
    assert result.region_error == "" and result.prompt_tokens == 7


def test_prompt_tokens_estimated_without_usage(fault_server, make_backend):
    fault_server.default = Reply.ok("fine", prompt_tokens=0)
    backend = make_backend(fault_server.base_url)
    result = backend.generate(chat("x" * 400), [frame(448, 448)])
    assert result.image_tokens == 256
    assert result.prompt_tokens == 256 + 100 + backend.count_tokens("Answer briefly.")


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (Reply.error(500, "boom"), "HTTP 500 .*boom"),
        (Reply.error(400, "bad image"), "HTTP 400 .*bad image"),
        (Reply.raw(b'{"choices": [{"message": '), "malformed JSON"),
        (Reply.raw(b"<html>oops</html>"), "malformed JSON"),
        (Reply.json([1, 2]), "expected a JSON object"),
        (Reply.json({"choices": []}), "no choices"),
        (Reply.json({"error": {"message": "overloaded"}}), "no choices: overloaded"),
        (Reply.json({"choices": [{"message": {"role": "assistant"}, "finish_reason": "stop"}]}), "no text"),
    ],
)
def test_bad_answers_are_clear_errors_without_retry(fault_server, make_backend, reply, match):
    fault_server.default = reply
    backend = make_backend(fault_server.base_url, retries=3)
    with pytest.raises(BackendError, match=match):
        backend.generate(chat(), [frame()])
    assert len(fault_server.requests) == 1


def test_transient_errors_retried_with_backoff(fault_server, make_backend):
    fault_server.script(Reply.error(503), Reply.error(502), Reply.ok("green"))
    backend = make_backend(fault_server.base_url, retries=2)
    start = time.monotonic()
    assert backend.generate(chat(), [frame()]).text == "green"
    assert len(fault_server.requests) == 3
    assert time.monotonic() - start >= 0.2 + 0.4  # base backoff 0.2 s, doubled, plus jitter


def test_retries_are_bounded(fault_server, make_backend):
    fault_server.default = Reply.error(504)
    backend = make_backend(fault_server.base_url, retries=1)
    with pytest.raises(BackendError, match="HTTP 504 .*gave up after 2 attempts"):
        backend.generate(chat(), [frame()])
    assert len(fault_server.requests) == 2


def test_retry_after_honoured(fault_server, make_backend):
    fault_server.script(Reply.error(429, "slow down", retry_after="1"), Reply.ok("later"))
    backend = make_backend(fault_server.base_url, retries=1)
    start = time.monotonic()
    assert backend.generate(chat(), [frame()]).text == "later"
    assert time.monotonic() - start >= 1.0


def test_retry_never_outlives_the_timeout(fault_server, make_backend):
    fault_server.default = Reply.error(503, retry_after="5")
    backend = make_backend(fault_server.base_url, retries=5, timeout_s=1.0)
    start = time.monotonic()
    with pytest.raises(BackendError, match="no time left"):
        backend.generate(chat(), [frame()])
    assert time.monotonic() - start < scaled(1.0)


def test_connection_refused_retried_then_clear_error(make_backend):
    backend = make_backend("http://127.0.0.1:9/v1", retries=2)
    start = time.monotonic()
    with pytest.raises(BackendError, match="cannot connect .*gave up after 3 attempts"):
        backend.generate(chat(), [frame()])
    assert 0.6 <= time.monotonic() - start < scaled(5.0)


@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_response_dropped(fault_server, make_backend, chunked):
    fault_server.default = Reply.ok("y" * 50_000, chunked=chunked)
    backend = make_backend(fault_server.base_url, max_response_bytes=10_000)
    with pytest.raises(BackendError, match="max_response_bytes=10000"):
        backend.generate(chat(), [frame()])
    fault_server.default = Reply.ok("small")
    assert backend.generate(chat(), [frame()]).text == "small"  # the pool survives


def test_oversized_request_refused_before_sending(fault_server, make_backend):
    backend = make_backend(fault_server.base_url, max_request_bytes=2048, image_max_side=512)
    with pytest.raises(BackendError, match="exceeds max_request_bytes=2048"):
        backend.generate(chat(), [frame(512, 512)])
    assert fault_server.requests == []


def test_truncated_answer_is_an_error(fault_server, make_backend):
    with DelayProxy("127.0.0.1", fault_server.port) as proxy:
        proxy.set_fault("truncate", truncate_after_bytes=60)
        backend = make_backend(proxy.url(path="/v1"), retries=3)
        with pytest.raises(BackendError, match="failed"):
            backend.generate(chat(), [frame()])
    assert len(fault_server.requests) == 1


def test_cancel_drops_the_in_flight_request(fault_server, make_backend):
    fault_server.default = Reply.ok("late", delay_s=scaled(30.0))
    backend = make_backend(fault_server.base_url, timeout_s=scaled(60.0))
    thread, outcome = _in_thread(lambda: backend.generate(chat(), [frame()], request_id="stale"))
    while not fault_server.requests:
        time.sleep(0.01)
    assert backend.cancel("other") == 0
    cancelled_at = time.monotonic()
    assert backend.cancel("stale") == 1
    thread.join(timeout=scaled(10.0))
    assert isinstance(outcome.get("error"), RequestCancelledError)
    assert outcome["end"] - cancelled_at < scaled(10.0)  # the server would answer after scaled(30) s


def test_close_cancels_and_refuses_new_requests(fault_server, make_backend):
    fault_server.default = Reply.ok("late", delay_s=scaled(30.0))
    backend = make_backend(fault_server.base_url, timeout_s=scaled(60.0))
    thread, outcome = _in_thread(lambda: backend.generate(chat(), [frame()]))
    while not fault_server.requests:
        time.sleep(0.01)
    backend.close()
    thread.join(timeout=scaled(10.0))
    assert isinstance(outcome.get("error"), RequestCancelledError)
    with pytest.raises(BackendError, match="closed"):
        backend.generate(chat(), [frame()])


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command not available to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=scaled(60),
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_tls_verified_by_default(tls_context, make_backend):
    with FaultyOpenAiServer(ssl_context=tls_context) as server:
        assert server.base_url.startswith("https://")
        strict = make_backend(server.base_url, retries=2)
        with pytest.raises(BackendError, match="TLS error"):
            strict.generate(chat(), [frame()])
        assert server.requests == []
        relaxed = make_backend(server.base_url, verify_tls=False)
        assert relaxed.generate(chat(), [frame()]).text == "ok"


@pytest.mark.parametrize(
    ("messages", "images", "match"),
    [
        (chat(n_images=2), [frame()], "more image parts"),
        (chat(n_images=0), [frame()], "1 images given but the messages have 0"),
        (chat(), [frame().astype(np.float32)], "RGB uint8"),
        (chat(), [np.zeros((4, 4), np.uint8)], "RGB uint8"),
        ([{"role": "tool", "content": "x"}], [], "unsupported chat role"),
        ([{"role": "user", "content": [{"type": "video"}]}], [], "unsupported content part"),
        (["hello"], [], "must be dicts"),
    ],
)
def test_bad_calls_rejected_before_sending(fault_server, make_backend, messages, images, match):
    backend = make_backend(fault_server.base_url)
    with pytest.raises(BackendError, match=match):
        backend.generate(messages, images)
    assert fault_server.requests == []


def test_serve_refuses_a_directory_without_model(tmp_path):
    with pytest.raises(ServeError, match="not a model directory"):
        TransformersServe(tmp_path)


def test_bad_base_url_rejected():
    with pytest.raises(BackendError, match="base_url"):
        OpenAiHttpBackend(ModelConfig(backend="openai", base_url=""))


def test_token_estimates():
    backend = OpenAiHttpBackend(
        ModelConfig(backend="openai", base_url="http://127.0.0.1:9/v1", image_max_side=448)
    )
    try:
        assert backend.image_tokens(448, 448) == 256  # Qwen rule: 28 px blocks
        assert backend.image_tokens(896, 896) == 256  # after the backend's own downscale to 448
        assert backend.image_tokens(28, 28) == 4  # lifted to min_pixels (56 x 56)
        assert backend.image_tokens(0, 10) == 0 and backend.image_tokens(1, 1000) == 0
        assert backend.count_tokens("") == 0 and backend.count_tokens("abcde") == 2
    finally:
        backend.close()
