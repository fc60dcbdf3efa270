"""The loopback delay/fault proxy against a real TCP echo server."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import pytest
from time_scale import scaled

from spotvlm_ros.testing.delay_proxy import DelayProxy

FAST_S = scaled(0.25)  # an undelayed loopback round trip, with slack for a loaded CI machine


class _EchoHandler(socketserver.BaseRequestHandler):
    """Echo each chunk; a chunk starting with b"BIG" gets 100 kB back instead."""

    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(b"x" * 100_000 if data.startswith(b"BIG") else data)
        except (ConnectionResetError, BrokenPipeError):
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def echo_port():
    server = _Server(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo_port):
    with DelayProxy("127.0.0.1", echo_port) as proxy:
        yield proxy


def _connect(proxy: DelayProxy, timeout: float = 3.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def _round_trip(proxy: DelayProxy, payload: bytes = b"ping") -> tuple[bytes, float]:
    with _connect(proxy) as sock:
        start = time.monotonic()
        sock.sendall(payload)
        data = sock.recv(65536)
        return data, time.monotonic() - start


def _recv_all(sock: socket.socket) -> tuple[bytes, str]:
    """Bytes until the peer closes, and how it closed ("eof" or "reset")."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        return b"".join(chunks), "reset"
    return b"".join(chunks), "eof"


def _exchange(proxy: DelayProxy, payload: bytes) -> tuple[bytes, str]:
    """Connect, send, read until closed; a reset may arrive during the connect or the send already."""
    try:
        with _connect(proxy) as sock:
            sock.sendall(payload)
            return _recv_all(sock)
    except (ConnectionResetError, BrokenPipeError):
        return b"", "reset"


def test_forwards_without_delay(proxy):
    data, elapsed = _round_trip(proxy)
    assert data == b"ping"
    assert elapsed < FAST_S
    stats = proxy.stats()
    assert stats.connections == 1 and stats.bytes_upstream == 4 and stats.bytes_downstream == 4


def test_each_direction_delay_and_change_at_runtime(proxy):
    proxy.set_delay(downstream_s=0.3)
    data, elapsed = _round_trip(proxy)
    assert data == b"ping" and 0.3 <= elapsed < 0.3 + FAST_S
    proxy.set_delay(upstream_s=0.25, downstream_s=0.0)
    data, elapsed = _round_trip(proxy)
    assert data == b"ping" and 0.25 <= elapsed < 0.25 + FAST_S
    proxy.set_delay(upstream_s=0.0)
    assert _round_trip(proxy)[1] < FAST_S


def test_delay_changes_inside_one_open_connection(proxy):
    proxy.set_delay(downstream_s=0.3)
    with _connect(proxy) as sock:
        sock.sendall(b"a")
        start = time.monotonic()
        assert sock.recv(10) == b"a"
        assert time.monotonic() - start >= 0.3
        proxy.set_delay(downstream_s=0.0)
        start = time.monotonic()
        sock.sendall(b"b")
        assert sock.recv(10) == b"b"
        assert time.monotonic() - start < FAST_S


def test_large_payload_keeps_order(proxy):
    payload = bytes(range(256)) * 2000
    proxy.set_delay(upstream_s=0.05, downstream_s=0.05)
    with _connect(proxy) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            received += sock.recv(65536)
    assert received == payload


def test_reset_fault_resets_new_connections(proxy):
    proxy.set_fault("reset")
    data, how = _exchange(proxy, b"ping")
    assert data == b"" and how == "reset"
    proxy.set_fault("none")
    assert _round_trip(proxy)[0] == b"ping"


def test_stall_fault_never_answers(proxy):
    proxy.set_fault("stall")
    with _connect(proxy, timeout=0.3) as sock:
        sock.sendall(b"ping")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        assert proxy.stats().active == 1


def test_truncate_fault_cuts_the_answer(proxy):
    proxy.set_fault("truncate", truncate_after_bytes=1000)
    with _connect(proxy) as sock:
        sock.sendall(b"BIG")
        data, how = _recv_all(sock)
    assert len(data) == 1000 and how == "reset"


def test_drop_connections_resets_open_ones(proxy):
    with _connect(proxy) as sock:
        sock.sendall(b"ping")
        assert sock.recv(10) == b"ping"
        assert proxy.drop_connections() == 1
        _, how = _recv_all(sock)
    assert how in ("reset", "eof")
    deadline = time.monotonic() + scaled(2)
    while proxy.stats().active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.stats().active == 0


def test_unreachable_target_resets_client():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    with DelayProxy("127.0.0.1", dead_port) as proxy:
        data, _ = _exchange(proxy, b"ping")
    assert data == b""


def test_bad_arguments_rejected(echo_port):
    with pytest.raises(ValueError, match="loopback"):
        DelayProxy("127.0.0.1", echo_port, listen_host="0.0.0.0")
    proxy = DelayProxy("127.0.0.1", echo_port)
    with pytest.raises(ValueError, match="delay"):
        proxy.set_delay(upstream_s=-1)
    with pytest.raises(ValueError, match="fault"):
        proxy.set_fault("explode")
    assert "DelayProxy" in repr(proxy)


def test_stop_closes_listener(echo_port):
    proxy = DelayProxy("127.0.0.1", echo_port).start()
    port = proxy.port
    proxy.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
