"""Start and stop a real ``transformers serve`` process on loopback, serving a local model directory.

``transformers serve MODEL_DIR`` pins the server to that model and exposes the OpenAI-compatible API
(``/v1/chat/completions`` with ``image_url`` parts for image-text-to-text models, ``/v1/models``,
``/health``). It needs ``fastapi``, ``uvicorn``, ``openai``, ``pydantic`` and, for ``--device``,
``accelerate`` (the ``test`` extra). Everything runs offline: the Hub is never contacted.

    with TransformersServe(model_dir) as server:
        backend = OpenAiHttpBackend(ModelConfig(backend="openai", base_url=server.base_url,
                                                model=server.model))
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class ServeError(RuntimeError):
    """The server did not come up (the message carries the tail of its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class TransformersServe:
    """One ``transformers serve`` subprocess on ``127.0.0.1`` serving ``model_dir``."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        port: int = 0,
        device: str = "cpu",
        dtype: str = "float32",
        threads: int = 1,
        startup_timeout_s: float = 120.0,
        log_path: str | Path | None = None,
    ) -> None:
        model_dir = Path(model_dir).resolve()
        if not (model_dir / "config.json").is_file():
            raise ServeError(f"{model_dir} is not a model directory (no config.json)")
        if "@" in str(model_dir):  # transformers serve reads "name@revision"
            raise ServeError(f"model path must not contain '@': {model_dir}")
        self.model_dir = model_dir
        self.host = "127.0.0.1"
        self._requested_port = port
        self.port = 0
        self._device, self._dtype, self._threads = device, dtype, threads
        self._startup_timeout_s = startup_timeout_s
        self._log_path = Path(log_path) if log_path else None
        self._log_file = None
        self._own_log = False
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def model(self) -> str:
        """The model name requests must carry (the server is pinned to it)."""
        return str(self.model_dir)

    @property
    def base_url(self) -> str:
        """Root of the OpenAI-compatible API, ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int:
        """Process id of the server (0 when not running)."""
        return self._process.pid if self._process is not None else 0

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The command line that starts the server."""
        return [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            self.model,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--device",
            self._device,
            "--dtype",
            self._dtype,
            "--log-level",
            "warning",
        ]

    def start(self) -> TransformersServe:
        """Start the process and wait until ``/health`` answers; raises ServeError on failure.

        With an automatic port, a start that loses the port to another process is retried on a new one.
        """
        if self.running:
            return self
        attempts = 1 if self._requested_port else 3
        for attempt in range(attempts):
            try:
                return self._start_once(self._requested_port or free_port(self.host))
            except ServeError as err:
                if attempt + 1 == attempts or "address already in use" not in str(err).lower():
                    raise
        return self

    def _start_once(self, port: int) -> TransformersServe:
        self.port = port
        if self._log_path is None:
            handle, name = tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")
            os.close(handle)
            self._log_path = Path(name)
            self._own_log = True
        self._log_file = open(self._log_path, "wb")  # noqa: SIM115 - closed in stop()
        threads = str(self._threads)
        env = {**os.environ, **OFFLINE_ENV, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        self._process = subprocess.Popen(
            self.command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise ServeError(
                        f"transformers serve exited with {self._process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"http://{self.host}:{self.port}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise ServeError(
            f"transformers serve not healthy after {self._startup_timeout_s} s:\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; in-flight requests see the socket die."""
        if self.running:
            self._process.kill()
            self._process.wait(timeout=10.0)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop cleanly (SIGTERM), SIGKILL after ``timeout_s``; closes the log."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10.0)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        """Stop, and delete the log when it was a temporary file of ours."""
        self.stop()
        if self._own_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None
            self._own_log = False

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's combined stdout/stderr."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        data = self._log_path.read_bytes()[-chars:]
        return data.decode("utf-8", errors="replace")

    def __enter__(self) -> TransformersServe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"TransformersServe({self.model} at {self.base_url}, {state})"
