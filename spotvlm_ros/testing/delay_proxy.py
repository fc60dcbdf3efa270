"""A userspace TCP proxy on loopback that delays traffic and injects network faults.

Put it between a client and a real server to give the link a latency that can change while
connections are open, or to make it fail::

    with DelayProxy("127.0.0.1", server_port, downstream_delay_s=2.0) as proxy:
        client.get(proxy.url())          # answers arrive 2 s late
        proxy.set_delay(downstream_s=0)  # chunks read from now on pass at once
        proxy.set_fault("reset")         # new connections are reset on accept
        proxy.drop_connections()         # open connections are reset now

Each chunk read in a direction is delivered ``delay`` seconds after it was read (order is kept), so
the delay adds latency without limiting throughput. Faults, applied to connections accepted after
:meth:`DelayProxy.set_fault`:

- ``"none"``: forward both ways.
- ``"reset"``: reset the connection right after accepting it (TCP RST).
- ``"stall"``: accept and read the request, never answer, never close.
- ``"truncate"``: forward the request; forward only the first ``truncate_after_bytes`` of the answer,
  then reset both sides.

The proxy runs its own asyncio loop in a daemon thread and listens on loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass

FAULTS = ("none", "reset", "stall", "truncate")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """Counters since the proxy started."""

    connections: int
    active: int
    bytes_upstream: int
    bytes_downstream: int


@dataclass(eq=False, slots=True)
class _Link:
    """The two sockets of one proxied connection."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None


class DelayProxy:
    """A delaying, fault-injecting TCP proxy from ``listen_host:listen_port`` to ``target``."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        upstream_delay_s: float = 0.0,
        downstream_delay_s: float = 0.0,
    ) -> None:
        if listen_host not in _LOOPBACK:
            raise ValueError(f"the delay proxy listens on loopback only, not {listen_host!r}")
        self._target = (target_host, int(target_port))
        self._listen = (listen_host, int(listen_port))
        self._lock = threading.Lock()
        self._delays = {"up": 0.0, "down": 0.0}
        self._fault = "none"
        self._truncate_after = 0
        self._counts = {"connections": 0, "up": 0, "down": 0}
        self._links: set[_Link] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._port = 0
        self.set_delay(upstream_delay_s, downstream_delay_s)

    # ---- control, from any thread ----------------------------------------------------------------------

    def set_delay(self, upstream_s: float | None = None, downstream_s: float | None = None) -> None:
        """Change the delay of either direction (None keeps it); applies to chunks read from now on."""
        with self._lock:
            for key, value in (("up", upstream_s), ("down", downstream_s)):
                if value is None:
                    continue
                if not value >= 0.0:
                    raise ValueError(f"delay must be >= 0 seconds, got {value!r}")
                self._delays[key] = float(value)

    def set_fault(self, fault: str = "none", truncate_after_bytes: int = 0) -> None:
        """Fault for connections accepted from now on (see the module docstring)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {FAULTS}")
        if truncate_after_bytes < 0:
            raise ValueError("truncate_after_bytes must be >= 0")
        with self._lock:
            self._fault = fault
            self._truncate_after = int(truncate_after_bytes)

    def drop_connections(self) -> int:
        """Reset every open connection now; returns how many were open."""
        loop = self._loop
        if loop is None:
            return 0
        future = asyncio.run_coroutine_threadsafe(self._abort_all(), loop)
        return future.result(timeout=5.0)

    def stats(self) -> ProxyStats:
        """Connections and bytes forwarded so far."""
        with self._lock:
            return ProxyStats(
                self._counts["connections"], len(self._links), self._counts["up"], self._counts["down"]
            )

    @property
    def port(self) -> int:
        """The port the proxy listens on (after :meth:`start`)."""
        return self._port

    def url(self, scheme: str = "http", path: str = "") -> str:
        """URL of the proxy, e.g. ``http://127.0.0.1:PORT/v1``."""
        host = self._listen[0]
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self._port}{path}"

    # ---- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> DelayProxy:
        """Start listening; returns once the port is bound."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, errors), name="delay-proxy", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=10.0):
            raise RuntimeError("delay proxy did not start within 10 s")
        if errors:
            self._thread = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(self._stopped.set)
        thread.join(timeout=10.0)
        self._loop = self._thread = None

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"DelayProxy({self.url()} -> {self._target[0]}:{self._target[1]}, "
            f"delay up={self._delays['up']}s down={self._delays['down']}s, fault={self._fault})"
        )

    # ---- the event loop thread --------------------------------------------------------------------------

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(ready, errors))
        finally:
            loop.close()

    async def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        self._stopped = asyncio.Event()
        try:
            server = await asyncio.start_server(self._handle, self._listen[0], self._listen[1])
        except OSError as err:
            errors.append(err)
            ready.set()
            return
        self._port = server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        ready.set()
        async with server:
            await self._stopped.wait()
            server.close()
            await self._abort_all()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _abort_all(self) -> int:
        links = list(self._links)
        for link in links:
            _reset(link.client)
            if link.server is not None:
                _reset(link.server)
        return len(links)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        with self._lock:
            fault, truncate_after = self._fault, self._truncate_after
            self._counts["connections"] += 1
        link = _Link(client_writer)
        self._links.add(link)
        try:
            if fault == "reset":
                _reset(client_writer)
                return
            if fault == "stall":
                while await client_reader.read(_CHUNK):
                    pass
                return
            try:
                server_reader, link.server = await asyncio.open_connection(*self._target)
            except OSError:
                _reset(client_writer)
                return
            limit = truncate_after if fault == "truncate" else -1
            await asyncio.gather(
                self._pipe(client_reader, link.server, "up", -1, link),
                self._pipe(server_reader, client_writer, "down", limit, link),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._links.discard(link)
            for writer in (link.client, link.server):
                if writer is not None:
                    writer.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        limit: int,
        link: _Link,
    ) -> None:
        """Copy one direction, each chunk delivered ``delay`` after it was read; ``limit`` >= 0 truncates."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            try:
                while chunk := await reader.read(_CHUNK):
                    with self._lock:
                        deliver_at = time.monotonic() + self._delays[direction]
                    queue.put_nowait((deliver_at, chunk))
            except OSError:
                pass
            queue.put_nowait((0.0, b""))

        reading = asyncio.ensure_future(read())
        sent = 0
        try:
            while True:
                deliver_at, chunk = await queue.get()
                if not chunk:
                    break
                await asyncio.sleep(max(0.0, deliver_at - time.monotonic()))
                if limit >= 0 and sent + len(chunk) >= limit:
                    writer.write(chunk[: max(0, limit - sent)])
                    await writer.drain()
                    for side in (link.client, link.server):
                        if side is not None:
                            _reset(side)
                    return
                with self._lock:
                    self._counts[direction] += len(chunk)
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            for side in (link.client, link.server):
                if side is not None:
                    _reset(side)
        finally:
            reading.cancel()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
