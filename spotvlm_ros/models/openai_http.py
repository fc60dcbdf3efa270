"""A VLM behind an OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, SGLang, transformers serve).

Images travel as base64 JPEG data URLs, downscaled to ``image_max_side``. Requests run on one pooled
``httpx.AsyncClient`` inside a private event-loop thread, so :meth:`OpenAiHttpBackend.cancel` can drop a
stale request at once from any thread while :meth:`OpenAiHttpBackend.generate` stays a plain blocking
call. Reliability rules:

- ``timeout_s`` bounds a whole :meth:`generate` call, retries included (:class:`RequestTimeoutError`).
- Only failures that are safe to repeat are retried, at most ``retries`` times, with exponential backoff
  and jitter (``Retry-After`` is honoured): connection errors before anything was sent, and HTTP 429,
  502, 503, 504. Everything else fails at once with a :class:`~.base.BackendError` naming the cause.
- Request bodies over ``max_request_bytes`` are refused before sending; responses are streamed and
  dropped as soon as they pass ``max_response_bytes``.
- The API key is read from the environment variable named by ``api_key_env`` at request time. It is
  never stored on the backend, logged, or put in an error message (a server echoing it is redacted).
- TLS certificates are verified unless ``verify_tls`` is false.

With ``on_text`` the request asks for a streamed answer (``"stream": true``, :mod:`.openai_stream`) and
the text so far is handed to ``on_text`` on the calling thread every ``STREAM_POLL_S``; ``should_stop``
is polled as often and, once True, closes the connection (the server stops generating) and raises
:class:`~.base.GenerationCancelled`. ``max_response_bytes`` bounds the whole stream.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import itertools
import json
import math
import os
import random
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import httpx
import numpy as np

from ..core.config import ModelConfig
from ..core.focus import model_input_size, visual_tokens
from .base import BackendError, ChatMessage, Generation, GenerationCancelled, StopCheck, TextCallback
from .families import family_for_served_name, log_convention, resolve_convention
from .grounding import grounding_instruction, parse_regions
from .openai_stream import ChatStreamParser, follow_request

JPEG_QUALITY = 90
RETRY_STATUS = frozenset({429, 502, 503, 504})
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 5.0
CHARS_PER_TOKEN = 4  # token estimate for prompt budgets: a remote tokenizer is not available
_ERROR_DETAIL_CHARS = 300
_REDACTED = "***"


class RequestTimeoutError(BackendError):
    """The request (retries included) did not finish within ``timeout_s``."""


class RequestCancelledError(GenerationCancelled):
    """The request was cancelled by :meth:`OpenAiHttpBackend.cancel` or :meth:`~OpenAiHttpBackend.close`."""


@dataclass(frozen=True, slots=True)
class EncodedImage:
    """One image as sent: its data URL and the size the server receives."""

    data_url: str
    width: int
    height: int


def encode_image(image: np.ndarray, max_side: int, quality: int = JPEG_QUALITY) -> EncodedImage:
    """RGB uint8 HxWx3 -> JPEG data URL, downscaled (area filter) so the longest side is <= ``max_side``."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        raise BackendError(f"expected an RGB uint8 HxWx3 image, got {type(image).__name__} {shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise BackendError(f"empty image {width}x{height}")
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(
        ".jpg", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise BackendError("JPEG encoding failed")
    return EncodedImage(
        "data:image/jpeg;base64," + base64.b64encode(buffer.tobytes()).decode("ascii"), width, height
    )


class OpenAiHttpBackend:
    """:class:`~.base.VlmBackend` over an OpenAI-compatible HTTP endpoint."""

    def __init__(
        self, config: ModelConfig, *, jpeg_quality: int = JPEG_QUALITY, max_connections: int = 8
    ) -> None:
        base_url = config.base_url.strip().rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise BackendError(
                f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {base_url!r}"
            )
        self._config = config
        self._url = f"{base_url}/chat/completions"
        self._jpeg_quality = jpeg_quality
        self.name = f"openai:{config.model or base_url}"
        self.family = family_for_served_name(config.model)
        self.convention = resolve_convention(self.family, config.coord_format)
        self.coord_format = self.convention.coord_format
        self._token_spec = self.family.tokens
        log_convention(self.convention, self.name)
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._in_flight: dict[str, concurrent.futures.Future[Any]] = {}
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._client: httpx.AsyncClient | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-http", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open_client(), self._loop).result(timeout=10.0)

    async def _open_client(self) -> None:
        self._client = httpx.AsyncClient(verify=self._config.verify_tls, limits=self._limits)

    def __repr__(self) -> str:
        key_env = self._config.api_key_env or "-"
        return f"OpenAiHttpBackend(model={self._config.model!r}, url={self._url!r}, api_key_env={key_env})"

    # ---- VlmBackend ---------------------------------------------------------------------------------------

    def generate(
        self,
        messages: Sequence[ChatMessage],
        images: Sequence[np.ndarray],
        *,
        max_new_tokens: int | None = None,
        want_regions: bool = False,
        on_text: TextCallback | None = None,
        should_stop: StopCheck | None = None,
        request_id: str = "",
    ) -> Generation:
        """Answer the last user turn; raises BackendError (or its RequestTimeoutError, RequestCancelledError).

        ``request_id`` (sent as ``X-Request-ID``) names the request for :meth:`cancel`. ``on_text`` streams
        the answer; ``should_stop`` aborts the request (see the module docstring).
        """
        start = time.monotonic()
        encoded = [encode_image(image, self._config.image_max_side, self._jpeg_quality) for image in images]
        body = self._request_body(messages, encoded, max_new_tokens, want_regions)
        if on_text is not None:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        if len(payload) > self._config.max_request_bytes:
            limit = self._config.max_request_bytes
            raise BackendError(f"request body of {len(payload)} bytes exceeds max_request_bytes={limit}")
        request_id = request_id or f"spotvlm-{os.getpid()}-{next(self._ids)}"
        response = self._run(request_id, payload, on_text, should_stop)
        text, usage = _completion_text(response)
        image_tokens = sum(self.image_tokens(e.width, e.height) for e in encoded)
        prompt_tokens = usage if usage > 0 else self._estimate_prompt_tokens(body, image_tokens)
        regions, region_error = (), ""
        if want_regions:
            if images:
                frame = images[0]
                parse = parse_regions(
                    text,
                    (frame.shape[1], frame.shape[0]),
                    model_input_size=self._model_input_size(encoded[0]),
                    coord_format=self.coord_format,
                )
                regions, region_error = parse.regions, parse.reason
            else:
                region_error = "no image to ground regions in"
        return Generation(
            text=text,
            regions=regions,
            prompt_tokens=prompt_tokens,
            image_tokens=image_tokens,
            seconds=time.monotonic() - start,
            region_error=region_error,
        )

    def count_tokens(self, text: str) -> int:
        """Estimated tokens of ``text``: one per ``CHARS_PER_TOKEN`` characters (no remote tokenizer)."""
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def image_tokens(self, width: int, height: int) -> int:
        """Estimated visual tokens of an image after this backend's downscale.

        The rule is the served model's family's (:mod:`.families`, from the model name; the Qwen2/2.5-VL
        rule when the name is not known), 0 for sizes it cannot take (not positive, aspect ratio over
        200). ``usage.prompt_tokens`` from the server is exact where reported.
        """
        spec = dataclasses.replace(self._token_spec, max_side=self._config.image_max_side)
        try:
            return visual_tokens(width, height, spec=spec)
        except ValueError:
            return 0

    def _model_input_size(self, image: EncodedImage) -> tuple[int, int]:
        """(width, height) the served model sees an image as sent at, for pixel boxes.

        A known dynamic-resolution family (Qwen2.5-VL) resizes it by its own rule; otherwise as sent.
        """
        if self.family.name == "unknown" or not self.family.px_per_token:
            return image.width, image.height
        try:
            return model_input_size(image.width, image.height, self._token_spec)
        except ValueError:
            return image.width, image.height

    def cancel(self, request_id: str = "") -> int:
        """Cancel the in-flight request ``request_id`` (all when empty); returns how many were cancelled."""
        with self._lock:
            futures = [f for rid, f in self._in_flight.items() if not request_id or rid == request_id]
        for future in futures:
            future.cancel()
        return len(futures)

    def close(self) -> None:
        """Cancel what is in flight, close the connection pool and stop the loop thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.cancel()
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), self._loop).result(timeout=10.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10.0)
        self._loop.close()

    # ---- request building -------------------------------------------------------------------------------

    def _request_body(
        self,
        messages: Sequence[ChatMessage],
        encoded: Sequence[EncodedImage],
        max_new_tokens: int | None,
        want_regions: bool,
    ) -> dict[str, Any]:
        out_messages = _openai_messages(messages, encoded)
        if want_regions:
            _append_to_last_user(out_messages, grounding_instruction(coord_format=self.coord_format))
        body: dict[str, Any] = {
            "messages": out_messages,
            "max_tokens": int(max_new_tokens or self._config.max_new_tokens),
            "temperature": 0.0,
        }
        if self._config.model:
            body["model"] = self._config.model
        return body

    def _estimate_prompt_tokens(self, body: dict[str, Any], image_tokens: int) -> int:
        texts = []
        for message in body["messages"]:
            content = message["content"]
            parts = [content] if isinstance(content, str) else [p.get("text", "") for p in content]
            texts.extend(parts)
        return sum(self.count_tokens(t) for t in texts) + image_tokens

    # ---- transport ----------------------------------------------------------------------------------------

    def _run(
        self,
        request_id: str,
        payload: bytes,
        on_text: TextCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> dict[str, Any]:
        stream = ChatStreamParser(self._url) if on_text is not None else None
        with self._lock:
            if self._closed:
                raise BackendError("backend is closed")
            future = asyncio.run_coroutine_threadsafe(
                self._post_with_retries(request_id, payload, stream), self._loop
            )
            self._in_flight[request_id] = future
        try:
            if on_text is not None or should_stop is not None:
                follow_request(future, request_id, stream, on_text, should_stop)
            return future.result()
        except concurrent.futures.CancelledError:
            raise RequestCancelledError(f"request {request_id} cancelled") from None
        finally:
            with self._lock:
                self._in_flight.pop(request_id, None)

    async def _post_with_retries(
        self, request_id: str, payload: bytes, stream: ChatStreamParser | None = None
    ) -> dict[str, Any]:
        timeout_s = self._config.timeout_s
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeoutError(f"no answer from {self._url} within timeout_s={timeout_s}")
            try:
                return await asyncio.wait_for(
                    self._post_once(request_id, payload, remaining, stream), remaining
                )
            except asyncio.TimeoutError:
                raise RequestTimeoutError(
                    f"no answer from {self._url} within timeout_s={timeout_s}"
                ) from None
            except _RetryableError as err:
                attempt += 1
                if attempt > self._config.retries:
                    raise BackendError(f"{err} (gave up after {attempt} attempts)") from None
                delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * (1.0 + random.random())
                if err.retry_after_s > 0:
                    delay = max(delay, err.retry_after_s)
                if time.monotonic() + delay >= deadline:
                    raise BackendError(
                        f"{err} (no time left to retry within timeout_s={timeout_s})"
                    ) from None
                await asyncio.sleep(delay)

    async def _post_once(
        self, request_id: str, payload: bytes, remaining_s: float, stream: ChatStreamParser | None = None
    ) -> dict[str, Any]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream is not None else "application/json",
            "X-Request-ID": request_id,
        }
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(remaining_s)
        limit = self._config.max_response_bytes
        try:
            async with self._client.stream(
                "POST", self._url, content=payload, headers=headers, timeout=timeout
            ) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise BackendError(f"response of {declared} bytes exceeds max_response_bytes={limit}")
                streaming = stream is not None and response.status_code < 400 and _is_event_stream(response)
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise BackendError(f"response exceeds max_response_bytes={limit}; dropped")
                    if streaming:
                        stream.feed(chunk)
                    else:
                        chunks.append(chunk)
        except httpx.ConnectError as err:
            detail = _redact(str(err), key)
            if _is_tls_error(err):  # a certificate problem does not go away by retrying
                raise BackendError(f"TLS error connecting to {self._url}: {detail}") from None
            raise _RetryableError(f"cannot connect to {self._url}: {detail}") from None
        except (httpx.TimeoutException, asyncio.TimeoutError):
            raise asyncio.TimeoutError from None
        except httpx.HTTPError as err:
            detail = _redact(str(err), key) or type(err).__name__
            raise BackendError(f"request to {self._url} failed: {detail}") from None
        if streaming:
            return stream.finish()
        raw = b"".join(chunks)
        if response.status_code >= 400:
            message = f"HTTP {response.status_code} from {self._url}: {_redact(_error_detail(raw), key)}"
            if response.status_code in (401, 403):
                message += f" (check the API key in ${self._config.api_key_env or '<api_key_env not set>'})"
            if response.status_code in RETRY_STATUS:
                raise _RetryableError(message, _retry_after(response.headers.get("retry-after", "")))
            raise BackendError(message)
        try:
            decoded = json.loads(raw)
        except (ValueError, RecursionError) as err:
            raise BackendError(f"malformed JSON from {self._url}: {err}") from None
        if not isinstance(decoded, dict):
            raise BackendError(f"malformed response from {self._url}: expected a JSON object")
        if stream is not None:  # a server that ignores "stream": the whole answer is the one partial text
            stream.text = _completion_text(decoded)[0]
        return decoded

    def _api_key(self) -> str:
        name = self._config.api_key_env
        if not name:
            return ""
        key = os.environ.get(name, "")
        if not key:
            raise BackendError(f"environment variable {name} (named by api_key_env) is not set or empty")
        return key


class _RetryableError(Exception):
    """A failure that is safe to repeat (nothing was processed by the server)."""

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _openai_messages(
    messages: Sequence[ChatMessage], encoded: Sequence[EncodedImage]
) -> list[dict[str, Any]]:
    """HF chat messages -> OpenAI messages; ``{"type": "image"}`` parts take the images in order."""
    images = iter(encoded)
    used = 0
    out = []
    for message in messages:
        if not isinstance(message, dict):
            raise BackendError(f"chat messages must be dicts, got {type(message).__name__}")
        role = message.get("role")
        if role not in ("system", "user", "assistant"):
            raise BackendError(f"unsupported chat role {role!r}")
        content = message.get("content", "")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        converted: list[dict[str, Any]] = []
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind == "text":
                converted.append({"type": "text", "text": str(part.get("text", ""))})
            elif kind == "image":
                image = next(images, None)
                if image is None:
                    raise BackendError(f"messages have more image parts than the {len(encoded)} images given")
                used += 1
                converted.append({"type": "image_url", "image_url": {"url": image.data_url}})
            else:
                raise BackendError(f"unsupported content part type {kind!r}")
        if all(p["type"] == "text" for p in converted):
            out.append({"role": role, "content": "".join(p["text"] for p in converted)})
        else:
            out.append({"role": role, "content": converted})
    if used != len(encoded):
        raise BackendError(f"{len(encoded)} images given but the messages have {used} image parts")
    return out


def _append_to_last_user(messages: list[dict[str, Any]], text: str) -> None:
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            message["content"] = f"{content}\n{text}" if content else text
        else:
            content.append({"type": "text", "text": text})
        return
    messages.append({"role": "user", "content": text})


def _completion_text(response: dict[str, Any]) -> tuple[str, int]:
    """The first choice's text and ``usage.prompt_tokens`` (0 when not reported)."""
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        error = response.get("error")
        detail = f": {_error_detail(json.dumps({'error': error}).encode())}" if error else ""
        raise BackendError(f"response has no choices{detail}")
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise BackendError(
            f"first choice has no text content (finish_reason={choice.get('finish_reason')!r})"
        )
    content = content.encode("utf-8", "replace").decode("utf-8")  # lone surrogates (JSON \ud800) -> "?"
    usage = response.get("usage")
    prompt_tokens = usage.get("prompt_tokens", 0) if isinstance(usage, dict) else 0
    return content, prompt_tokens if isinstance(prompt_tokens, int) and prompt_tokens > 0 else 0


def _error_detail(raw: bytes) -> str:
    """A short human-readable detail from an error body (OpenAI ``error.message``, FastAPI ``detail``)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        decoded = None
    if isinstance(decoded, dict):
        error = decoded.get("error")
        for value in (error.get("message") if isinstance(error, dict) else error, decoded.get("detail")):
            if value:
                text = value if isinstance(value, str) else json.dumps(value)
                break
    text = " ".join(text.split())
    return text[:_ERROR_DETAIL_CHARS] or "(empty body)"


def _is_event_stream(response: httpx.Response) -> bool:
    """Whether ``response`` is server-sent events (a server may answer a stream request with plain JSON)."""
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"


def _retry_after(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        return 0.0
    return min(max(seconds, 0.0), BACKOFF_MAX_S) if math.isfinite(seconds) else 0.0


def _is_tls_error(err: BaseException) -> bool:
    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _redact(text: str, key: str) -> str:
    return text.replace(key, _REDACTED) if key else text
