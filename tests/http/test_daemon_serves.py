"""`jobrunner daemon` with an [http] table runs the server as a supervised child: it
serves, comes back after a kill -9, and is gone once the daemon stopped."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx
import pytest

from jobrunner.client import Client
from jobrunner.lifecycle import State
from tests.helpers import Daemon, wait_for

# on PostgreSQL too: the children once got the URL made into a file path
pytestmark = pytest.mark.both_backends

LISTENING = re.compile(r"listening on (http://[0-9.:]+)")
STARTED = re.compile(r"HTTP server started \(pid (\d+)\)")


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"serve" in f.read()
    except OSError:
        return False


def test_the_daemon_runs_restarts_and_stops_its_http_server(workdir: Path, db: Path) -> None:
    (workdir / "jobrunner.toml").write_text(
        '[http]\nlisten = "127.0.0.1:0"\nallow_commands = true\n'
    )
    daemon = Daemon(workdir, db, "--workers", "1")
    try:
        url = wait_for(lambda: LISTENING.findall(daemon.log()), what="the server")[-1]
        assert healthy(url)
        with Client(url) as remote:  # a job submitted over HTTP runs on this daemon
            handle = remote.submit(command=["echo", "over http"])
            assert remote.wait(handle.id, timeout=30).state is State.SUCCEEDED

        (first,) = [int(p) for p in STARTED.findall(daemon.log())]
        os.kill(first, signal.SIGKILL)
        pids = wait_for(
            lambda: [int(p) for p in STARTED.findall(daemon.log())][1:], what="a restart"
        )
        again = wait_for(lambda: LISTENING.findall(daemon.log())[1:], what="it listening")
        assert "restarting in" in daemon.log()
        assert healthy(again[-1])

        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        assert not alive(pids[-1])
    finally:
        if daemon.proc.poll() is None:
            daemon.signal(signal.SIGKILL)
            daemon.wait(30)


def test_the_http_server_does_not_outlive_a_killed_daemon(workdir: Path, db: Path) -> None:
    """A server left behind would hold the port the next daemon's server needs."""
    (workdir / "jobrunner.toml").write_text(
        '[http]\nlisten = "127.0.0.1:0"\nallow_commands = true\n'
    )
    daemon = Daemon(workdir, db, "--workers", "1")
    try:
        wait_for(lambda: LISTENING.findall(daemon.log()), what="the server")
        (server,) = [int(p) for p in STARTED.findall(daemon.log())]
        daemon.signal(signal.SIGKILL)
        daemon.wait(30)
        wait_for(lambda: not alive(server), what="the server gone")
    finally:
        if daemon.proc.poll() is None:
            daemon.signal(signal.SIGKILL)
            daemon.wait(30)
