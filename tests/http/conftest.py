"""A real `jobrunner serve` subprocess on 127.0.0.1 (a port the kernel picks), and an
httpx client for it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import PYTHON, env_for, wait_for


class Server:
    """`jobrunner serve --listen 127.0.0.1:0` in `workdir`; `url` once it listens."""

    def __init__(
        self, workdir: Path, db: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.log_path = workdir / f"serve-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "jobrunner", "serve", "--listen", "127.0.0.1:0", *args],
            cwd=workdir,
            env=env or env_for(workdir, db),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        line = wait_for(self._listening, timeout=30, what="the server listening")
        self.url = line.rsplit(" ", 1)[1]

    def _listening(self) -> str | None:
        text = self.log_path.read_text(errors="replace")
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited {self.proc.returncode}:\n{text}")
        for line in text.splitlines():
            if "listening on http://" in line:
                return line
        return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def serve(workdir: Path, db: Path) -> Iterator[Callable[..., Server]]:
    """`serve(*args, env=...)` starts a server; every one is stopped after the test."""
    started: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Server:
        server = Server(workdir, db, *args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
