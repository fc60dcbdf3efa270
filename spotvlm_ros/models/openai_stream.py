"""Parsing of a streamed OpenAI chat completion (``"stream": true``): server-sent events of chunks.

Each event is a ``data: {json}`` line (``choices[0].delta.content`` carries the next piece of text, the
last chunk may carry ``usage`` and ``finish_reason``), events end with a blank line, and the stream
ends with ``data: [DONE]`` (vLLM, OpenAI) or simply closes (``transformers serve``). Comment lines
(``: ...``) and ``event:``/``id:``/``retry:`` fields are ignored; anything else is malformed.
"""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any

from .base import BackendError, GenerationCancelled, StopCheck, TextCallback

STREAM_POLL_S = 0.05  # how often the caller's thread reports streamed text and polls should_stop

_IGNORED_FIELDS = (b"event", b"id", b"retry")


class ChatStreamParser:
    """Feed the bytes of a streamed chat completion; ``text`` grows as chunks arrive."""

    def __init__(self, source: str = "the server") -> None:
        self._source = source
        self._buffer = b""
        self.text = ""
        self.done = False
        self.finish_reason: str | None = None
        self.prompt_tokens = 0

    def feed(self, data: bytes) -> None:
        """Parse the complete lines in ``data`` and the buffer; raises BackendError if malformed."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._line(line.rstrip(b"\r"))

    def finish(self) -> dict[str, Any]:
        """Close the stream: the equivalent non-streamed completion (``choices[0].message`` and ``usage``)."""
        if self._buffer.strip():
            self._line(self._buffer.rstrip(b"\r"))
            self._buffer = b""
        if not self.done and self.finish_reason is None:
            raise BackendError(f"stream from {self._source} ended without a final chunk")
        completion: dict[str, Any] = {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text},
                    "finish_reason": self.finish_reason,
                }
            ]
        }
        if self.prompt_tokens:
            completion["usage"] = {"prompt_tokens": self.prompt_tokens}
        return completion

    def _line(self, line: bytes) -> None:
        if not line or line.startswith(b":"):
            return
        name, sep, value = line.partition(b":")
        if name in _IGNORED_FIELDS:
            return
        if name != b"data" or not sep:
            raise BackendError(f"malformed server-sent event from {self._source}: {_shorten(line)}")
        value = value.removeprefix(b" ")
        if value.strip() == b"[DONE]":
            self.done = True
            return
        if self.done:
            raise BackendError(f"data after [DONE] in the stream from {self._source}")
        try:
            chunk = json.loads(value)
        except (ValueError, RecursionError):
            raise BackendError(
                f"malformed JSON in a stream chunk from {self._source}: {_shorten(value)}"
            ) from None
        self._chunk(chunk)

    def _chunk(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            raise BackendError(f"stream chunk from {self._source} is not a JSON object")
        if "error" in chunk:
            error = chunk["error"]
            detail = error.get("message", error) if isinstance(error, dict) else error
            raise BackendError(
                f"stream from {self._source} reported an error: {_shorten(str(detail).encode())}"
            )
        usage = chunk.get("usage")
        if (
            isinstance(usage, dict)
            and isinstance(usage.get("prompt_tokens"), int)
            and usage["prompt_tokens"] > 0
        ):
            self.prompt_tokens = usage["prompt_tokens"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise BackendError(f"stream chunk from {self._source} has no choices list")
        if not choices:  # the usage-only chunk of stream_options.include_usage
            return
        choice = choices[0] if isinstance(choices[0], dict) else {}
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if content is not None and not isinstance(content, str):
            raise BackendError(f"stream chunk from {self._source} has non-text delta content")
        if content:
            self.text += content.encode("utf-8", "replace").decode("utf-8")
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])


def follow_request(
    future: concurrent.futures.Future[Any],
    request_id: str,
    stream: ChatStreamParser | None,
    on_text: TextCallback | None,
    should_stop: StopCheck | None,
) -> None:
    """Until ``future`` is done: report new streamed text, and cancel it once ``should_stop``."""
    reported = ""
    while True:
        done, _ = concurrent.futures.wait([future], timeout=STREAM_POLL_S)
        if done and (future.cancelled() or future.exception() is not None):
            return
        if stream is not None and on_text is not None and stream.text != reported:
            reported = stream.text
            on_text(reported)
        if done:
            return
        if should_stop is not None and should_stop():
            future.cancel()
            raise GenerationCancelled(f"request {request_id} stopped by the caller")


def _shorten(raw: bytes, limit: int = 120) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "..."
