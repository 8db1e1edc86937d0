"""Ctrl-C works in commands started in the background.

A shell starts `cmd &` (in a script, or under nohup) with SIGINT ignored, and Python
leaves an ignored SIGINT ignored: `top`, `wait` and the daemon would then not stop on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.cli.support import is_url, submit
from tests.helpers import PYTHON, env_for, wait_for

SIGINT_BIT = 1 << (signal.SIGINT - 1)


def _ignoring_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _waiting(pid: int, db: Path) -> bool:
    """Whether the process handles SIGINT (no longer ignores it) and has the database
    open: it is past its start and in its loop."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":\t", 1) for line in f if ":\t" in line)
    if not int(fields["SigCgt"], 16) & SIGINT_BIT:
        return False
    fds = Path(f"/proc/{pid}/fd")
    if is_url(db):  # its connection to the server
        return any(_link(fd).startswith("socket:") for fd in fds.iterdir())
    return any(os.path.realpath(fd) == str(db.resolve()) for fd in fds.iterdir())


def _link(fd: Path) -> str:
    """Where an open descriptor points; "" when it was closed since it was listed."""
    try:
        return os.readlink(fd)
    except FileNotFoundError:
        return ""


def _start(workdir: Path, db: Path, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYTHON, "-m", "jobrunner", *argv],
        cwd=workdir,
        env=env_for(workdir, db),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_ignoring_sigint,
    )


def test_top_and_wait_started_with_sigint_ignored_still_quit_on_it(
    workdir: Path, db: Path, tasks: Path
) -> None:
    job_id = submit(workdir, db, "tasks:ok")  # no daemon: `wait` waits until interrupted
    procs = {
        "top": (_start(workdir, db, "top", "--interval", "200ms"), 0),
        "wait": (_start(workdir, db, "wait", str(job_id)), 130),
    }
    try:
        for name, (proc, code) in procs.items():
            wait_for(lambda p=proc: _waiting(p.pid, db), timeout=30, what=f"{name} ready")
            if name == "top":  # drawing: past its start, where Ctrl-C is its way to quit
                assert proc.stdout is not None
                seen = b""
                while b"Next schedules" not in seen:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    assert chunk, f"top ended: {seen[-300:]!r}"
                    seen += chunk
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == code, name
            assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
