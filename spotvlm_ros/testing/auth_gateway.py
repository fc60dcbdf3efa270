"""An API-key gateway on loopback in front of an OpenAI-compatible server that checks no key itself.

``transformers serve`` has no API-key check, while hosted APIs and vLLM (``--api-key``) do. This real
HTTP reverse proxy supplies the check the way those servers do it: a request without
``Authorization: Bearer <key>`` matching the expected key gets ``401`` with an OpenAI-style error body;
any other request is forwarded unchanged (minus the key) to the upstream server and its answer relayed.
"""

from __future__ import annotations

import hmac
from http.server import BaseHTTPRequestHandler

import httpx

from .fault_server import LoopbackHttpServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "authorization"}


class AuthGateway(LoopbackHttpServer):
    """Forward to ``upstream`` (``http://host:port``) only requests carrying ``Bearer api_key``."""

    def __init__(self, upstream: str, api_key: str, timeout_s: float = 120.0) -> None:
        if not api_key:
            raise ValueError("the gateway needs a non-empty API key to check")
        super().__init__(_GatewayHandler)
        self._expected = f"Bearer {api_key}".encode()
        self.upstream = upstream.rstrip("/")
        self.client = httpx.Client(timeout=timeout_s, trust_env=False)
        self.rejected = 0

    def authorized(self, header: str) -> bool:
        """Constant-time comparison of an Authorization header with the expected one."""
        return hmac.compare_digest(header.encode(), self._expected)

    def stop(self) -> None:
        """Stop serving and close the upstream connection pool."""
        super().stop()
        self.client.close()


class _GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _relay(self) -> None:
        gateway: AuthGateway = self.server.owner
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length)
        if not gateway.authorized(self.headers.get("Authorization", "")):
            gateway.rejected += 1
            self._answer(401, b'{"error": {"message": "invalid API key", "type": "invalid_request_error"}}')
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            upstream = gateway.client.request(
                self.command, gateway.upstream + self.path, content=body, headers=headers
            )
        except httpx.HTTPError as err:
            self._answer(502, f'{{"error": {{"message": "upstream failed: {type(err).__name__}"}}}}'.encode())
            return
        self._answer(upstream.status_code, upstream.content, upstream.headers.get("content-type", ""))

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type or "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = _relay  # noqa: N815 - http.server naming

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server signature
        """Silence per-request logging."""
