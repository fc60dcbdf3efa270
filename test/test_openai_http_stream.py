"""Streamed answers of the OpenAI-compatible HTTP backend: a real ``transformers serve``, the fault server.

The real server (tiny random LLaVA) shows that a streamed greedy answer equals the plain one, arrives
in several pieces, and that ``should_stop`` closes a stream mid-answer. The scripted fault server (a
test double) covers what real servers rarely send: malformed events, an error event, a stream cut
before its final chunk, a stream over ``max_response_bytes``.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
from time_scale import scaled

from spotvlm_ros.models.base import BackendError, GenerationCancelled
from spotvlm_ros.models.openai_stream import ChatStreamParser
from spotvlm_ros.testing.fault_server import FaultyOpenAiServer, Reply

IMAGE = np.random.default_rng(5).integers(0, 256, (96, 128, 3), dtype=np.uint8)


def chat(text: str = "What color is the light?") -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]},
    ]


@pytest.fixture
def make_backend(openai_backends):
    return functools.partial(openai_backends, timeout_s=scaled(20.0))


@pytest.fixture
def fault_server():
    with FaultyOpenAiServer() as server:
        yield server


# ---- against a real transformers serve process --------------------------------------------------------


def test_streamed_answer_equals_the_plain_one_and_arrives_in_pieces(llava_server, make_backend):
    backend = make_backend(llava_server.base_url, model=llava_server.model, max_new_tokens=400)
    plain = backend.generate(chat(), [IMAGE])
    seen: list[str] = []
    streamed = backend.generate(chat(), [IMAGE], on_text=seen.append)
    assert streamed.text == plain.text and len(plain.text) > 20
    assert streamed.prompt_tokens == plain.prompt_tokens > 0  # usage from the final chunk
    assert len(seen) >= 2 and seen[-1] == plain.text
    assert all(plain.text.startswith(text) for text in seen)


def test_should_stop_closes_the_stream_mid_answer(llava_server, make_backend):
    backend = make_backend(llava_server.base_url, model=llava_server.model, max_new_tokens=2000)
    seen: list[str] = []
    start = time.monotonic()
    with pytest.raises(GenerationCancelled, match="stopped by the caller"):
        backend.generate(
            chat("Describe it all."), [IMAGE], on_text=seen.append, should_stop=lambda: bool(seen)
        )
    assert time.monotonic() - start < 5.0 and len(seen) == 1
    after = backend.generate(chat(), [IMAGE], max_new_tokens=4)  # the server and the pool still serve
    assert after.text


# ---- against the scripted fault server (test double) ---------------------------------------------------


def test_fault_server_stream_pieces_and_usage(fault_server, make_backend):
    fault_server.script(Reply.sse(("the ", "light ", "is ", "red"), prompt_tokens=42, part_delay_s=0.08))
    backend = make_backend(fault_server.base_url)
    seen: list[str] = []
    generation = backend.generate(chat(), [IMAGE], on_text=seen.append)
    assert generation.text == "the light is red" and generation.prompt_tokens == 42
    assert len(seen) >= 3 and seen[-1] == "the light is red"
    body = fault_server.requests[-1].json()
    assert body["stream"] is True and fault_server.requests[-1].headers["accept"] == "text/event-stream"


def test_stream_without_done_or_usage_is_complete_at_the_final_chunk(fault_server, make_backend):
    fault_server.script(Reply.sse(("a", "b"), prompt_tokens=0, done=False))
    generation = make_backend(fault_server.base_url).generate(chat(), [IMAGE], on_text=lambda text: None)
    assert generation.text == "ab" and generation.prompt_tokens > 0  # estimated


def test_json_answer_to_a_stream_request_is_accepted(fault_server, make_backend):
    fault_server.script(Reply.ok("plain json"))
    seen: list[str] = []
    generation = make_backend(fault_server.base_url).generate(chat(), [IMAGE], on_text=seen.append)
    assert generation.text == "plain json" and seen == ["plain json"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((b"data: {not json\n\n",), "malformed JSON in a stream chunk"),
        ((b"garbage line\n\n",), "malformed server-sent event"),
        ((b'data: {"error": "model exploded"}\n\n',), "reported an error: model exploded"),
        ((b'data: {"choices": [{"delta": {"content": 5}}]}\n\n',), "non-text delta content"),
        ((b"data: [1, 2]\n\n",), "is not a JSON object"),
    ],
)
def test_malformed_streams_are_clear_errors(fault_server, make_backend, extra, message):
    fault_server.script(Reply.sse(("ok",), extra=extra))
    backend = make_backend(fault_server.base_url, retries=0)
    with pytest.raises(BackendError, match=message):
        backend.generate(chat(), [IMAGE], on_text=lambda text: None)
    fault_server.script(Reply.sse(("fine",)))
    assert backend.generate(chat(), [IMAGE], on_text=lambda text: None).text == "fine"


def test_stream_cut_before_its_final_chunk_is_an_error(fault_server, make_backend):
    reply = Reply.sse(("half",))
    fault_server.script(Reply(status=200, headers=reply.headers, parts=reply.parts[:2]))
    with pytest.raises(BackendError, match="ended without a final chunk"):
        make_backend(fault_server.base_url).generate(chat(), [IMAGE], on_text=lambda text: None)


def test_oversized_stream_is_dropped(fault_server, make_backend):
    fault_server.script(Reply.sse(tuple("x" * 200 for _ in range(200)), part_delay_s=0.0))
    backend = make_backend(fault_server.base_url, max_response_bytes=8192)
    seen: list[str] = []
    with pytest.raises(BackendError, match="exceeds max_response_bytes=8192"):
        backend.generate(chat(), [IMAGE], on_text=seen.append)
    assert all(len(text) < 8192 for text in seen)


def test_should_stop_between_chunks_of_a_slow_stream(fault_server, make_backend):
    fault_server.script(Reply.sse(tuple(f"w{i} " for i in range(50)), part_delay_s=0.1))
    backend = make_backend(fault_server.base_url)
    seen: list[str] = []
    start = time.monotonic()
    with pytest.raises(GenerationCancelled):
        backend.generate(chat(), [IMAGE], on_text=seen.append, should_stop=lambda: len(seen) >= 2)
    assert time.monotonic() - start < scaled(3.0) and seen[-1].startswith("w0 ")


def test_should_stop_aborts_a_plain_request_too(fault_server, make_backend):
    fault_server.script(Reply.ok("late", delay_s=scaled(30.0)))
    start = time.monotonic()
    with pytest.raises(GenerationCancelled):
        make_backend(fault_server.base_url).generate(chat(), [IMAGE], should_stop=lambda: True)
    assert time.monotonic() - start < scaled(10.0)


def test_parser_handles_events_split_across_reads():
    parser = ChatStreamParser("test")
    event = b'data: {"choices": [{"delta": {"content": "h\xc3\xa9"}, "finish_reason": null}]}\r\n\r\n'
    final = b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3}}\n\n'
    for i in range(len(event)):
        parser.feed(event[i : i + 1])
    parser.feed(b": keep-alive comment\n\nevent: message\n" + final)
    assert parser.text == "hé"
    assert parser.finish() == {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hé"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3},
    }
