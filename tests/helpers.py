"""Shared test helpers: run the real CLI, boot a real daemon, wait on conditions."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent


def env_for(workdir: Path, db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["JOBRUNNER_DB"] = str(db)
    env.pop("JOBRUNNER_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join([str(workdir), str(REPO)])
    return env


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli(
    workdir: Path,
    db: Path,
    *args: str,
    input: str | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> CliResult:
    """Run `jobrunner ARGS` as a real subprocess in `workdir`."""
    proc = subprocess.run(
        [PYTHON, "-m", "jobrunner", *args],
        cwd=workdir,
        env=env or env_for(workdir, db),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def wait_for(
    condition: Callable[[], Any], timeout: float = 30, every: float = 0.02, what: str = "condition"
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def _session_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[3])  # state ppid pgrp session


class Daemon:
    """A real `jobrunner daemon` subprocess in its own process group.

    `module`: what `python -m` runs, `jobrunner` or a test launcher that takes the
    same arguments (tests/faults/vfs_faults.py)."""

    def __init__(
        self,
        workdir: Path,
        db: Path,
        *args: str,
        env: dict[str, str] | None = None,
        module: str = "jobrunner",
    ) -> None:
        self.workdir = workdir
        self.db = db
        self.log_path = workdir / f"daemon-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PYTHON, "-m", module, "daemon", *args],
            cwd=workdir,
            env=env or env_for(workdir, db),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: b" ready: " in self.log_path.read_bytes() or self.proc.poll() is not None,
            timeout=30,
            what="daemon ready",
        )
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited early:\n{self.log()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        """The daemon's direct children: its workers and its group guard."""
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def worker_pids(self) -> list[int]:
        """The daemon's workers: children that lead a process group in its session
        (the group guard leads a session of its own)."""
        return [p for p in self.children() if _session_of(p) not in (None, p)]

    def guard_pid(self) -> int | None:
        guards = [p for p in self.children() if _session_of(p) == p]
        return guards[0] if guards else None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; SIGKILL the whole group if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
        self._log.close()
        return self.proc.returncode

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
