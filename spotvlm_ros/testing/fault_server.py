"""A faulty OpenAI-compatible server on loopback: a TEST DOUBLE for failures real servers rarely produce.

Real servers (``transformers serve``, vLLM) answer well-formed requests well; this one answers
``POST /v1/chat/completions`` with whatever the test scripts: HTTP errors, malformed JSON, empty
choices, oversized bodies, slow answers. It is a real HTTP server on a real socket (stdlib
``ThreadingHTTPServer``), so the client under test goes through its full network path, and it records
every request it received::

    with FaultyOpenAiServer() as server:
        server.script(Reply.error(503), Reply.error(503), Reply.ok("red"))  # next three requests
        ...
        server.requests[-1].headers["authorization"]
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    chunked: bool = False  # send without Content-Length, in chunks
    parts: tuple[bytes, ...] = ()  # when set: the body, sent chunked one part at a time
    part_delay_s: float = 0.0  # pause before each part

    @classmethod
    def sse(
        cls,
        pieces: tuple[str, ...] = ("o", "k"),
        *,
        prompt_tokens: int = 7,
        done: bool = True,
        part_delay_s: float = 0.0,
        extra: tuple[bytes, ...] = (),
    ) -> Reply:
        """A streamed chat completion: one ``data:`` chunk per piece, a final chunk, ``[DONE]``.

        ``extra`` raw lines (malformed events, say) are sent after the pieces.
        """

        def event(delta: dict[str, object], finish: str | None = None, usage: object = None) -> bytes:
            chunk = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "model": "fault-server",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                "usage": usage,
            }
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces)} if prompt_tokens else None
        parts = [event({"role": "assistant"})]
        parts += [event({"content": piece}) for piece in pieces]
        parts += [*extra, event({}, "stop", usage)]
        if done:
            parts.append(b"data: [DONE]\n\n")
        headers = (("Content-Type", "text/event-stream"),)
        return cls(status=200, headers=headers, parts=tuple(parts), part_delay_s=part_delay_s)

    @classmethod
    def ok(cls, text: str = "ok", prompt_tokens: int = 7, **kw: object) -> Reply:
        """A well-formed chat completion answering ``text`` (usage omitted when prompt_tokens is 0)."""
        body: dict[str, object] = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": "fault-server",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
        }
        if prompt_tokens:
            body["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 1,
                "total_tokens": prompt_tokens + 1,
            }
        return cls.json(body, **kw)

    @classmethod
    def json(cls, value: object, status: int = 200, **kw: object) -> Reply:
        """Any JSON value as the body."""
        return cls(
            status=status,
            body=json.dumps(value).encode(),
            headers=(("Content-Type", "application/json"),),
            **kw,
        )

    @classmethod
    def error(cls, code: int, message: str = "", retry_after: str = "") -> Reply:
        """An HTTP error with an OpenAI-style error body."""
        headers = [("Content-Type", "application/json")]
        if retry_after:
            headers.append(("Retry-After", retry_after))
        body = json.dumps({"error": {"message": message or f"fault server says {code}", "code": code}})
        return cls(status=code, body=body.encode(), headers=tuple(headers))

    @classmethod
    def raw(cls, body: bytes, status: int = 200, **kw: object) -> Reply:
        """Arbitrary bytes as a JSON-typed body (malformed JSON, huge bodies)."""
        return cls(status=status, body=body, headers=(("Content-Type", "application/json"),), **kw)


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """What the server saw: path, lower-cased headers and the raw body."""

    path: str
    headers: dict[str, str]
    body: bytes = field(repr=False)

    def json(self) -> object:
        """The body decoded as JSON."""
        return json.loads(self.body)


class LoopbackHttpServer:
    """A ``ThreadingHTTPServer`` on ``127.0.0.1`` in a daemon thread, for test servers."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._scheme = "http"
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (``https`` with an SSL context)."""
        return f"{self._scheme}://127.0.0.1:{self.port}/v1"

    def start(self) -> LoopbackHttpServer:
        """Serve in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5.0)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> LoopbackHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FaultyOpenAiServer(LoopbackHttpServer):
    """TEST DOUBLE: answers chat completions from a script (see the module docstring)."""

    def __init__(self, default: Reply | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(_FaultHandler, ssl_context)
        self.default = default or Reply.ok()
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[ReceivedRequest] = []

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies`` in order, then with ``default``."""
        with self._lock:
            self._script.clear()
            self._script.extend(replies)

    def next_reply(self, request: ReceivedRequest) -> Reply:
        """Record ``request`` and pick its reply."""
        with self._lock:
            self.requests.append(request)
            return self._script.popleft() if self._script else self.default


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length)
        request = ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.server.owner.next_reply(request)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            if reply.parts:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in reply.parts:
                    time.sleep(reply.part_delay_s)
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            elif reply.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(reply.body), 65536):
                    piece = reply.body[start : start + 65536]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (size cap, cancel)
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server signature
        """Silence per-request logging."""
