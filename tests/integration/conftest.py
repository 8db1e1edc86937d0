"""Helpers for the integration tests: a task module, config files, process inspection.

Everything here drives the real `jobrunner` CLI and real daemon subprocesses (see
tests/helpers.py); nothing is mocked. Processes are found through /proc and killed by
pid or process group, and only when they carry this test's database in their
environment, i.e. when this test started them.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli, wait_for

# The task module every integration test writes into its workdir as `jtasks.py`.
# Ledger lines are appended with O_APPEND + fsync, one write each, so concurrent
# workers never interleave a line and a line written is a line kept.
TASKS_SOURCE = '''
import os
import signal
import subprocess
import sys
import time

from jobrunner import current_job

HERE = os.path.dirname(os.path.abspath(__file__))


def _path(name):
    return os.path.join(HERE, name)


def _append(name, line):
    fd = os.open(_path(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(name, text):
    tmp = _path(name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, _path(name))  # readers never see a half-written file


def _ledger(event, tag):
    job = current_job()
    _append("ledger", f"{job.id} {job.attempt} {event} {tag} {os.getpid()} {os.getppid()}")


def noop(tag=""):
    """Nothing (no ledger line, no fsync): the fastest job there is."""
    return tag


def record(tag="", ms=0):
    """One ledger line, then an optional sleep."""
    _ledger("run", tag)
    if ms:
        time.sleep(ms / 1000)
    return tag


def slow(tag, seconds):
    """A ledger line when it starts and another when it ends."""
    _ledger("start", tag)
    time.sleep(seconds)
    _ledger("end", tag)
    return tag


def crash_first(tag):
    """Attempt 1 starts a child process (in the job's group), writes both pids and waits
    (to be killed); later attempts succeed."""
    job = current_job()
    if job.attempt == 1:
        child = subprocess.Popen(["sleep", "120"])
        _write(f"{tag}.pids", f"{os.getpid()} {child.pid}")
        child.wait()
        return "first attempt was not killed"
    _ledger("run", tag)
    return f"attempt {job.attempt}"


def until_released(tag):
    """Runs until killed, unless the file `release` exists."""
    _ledger("start", tag)
    if not os.path.exists(_path("release")):
        time.sleep(120)
    _ledger("end", tag)
    return tag


def hang(tag):
    """Ignores SIGTERM and leaves a grandchild that ignores it too, then waits forever."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pidfile = _path(f"{tag}.sleep.pid")
    sh = subprocess.Popen(
        ["sh", "-c", 'trap "" TERM; sleep 999 & echo $! > "$1.tmp"; mv "$1.tmp" "$1"; wait',
         "sh", pidfile]
    )
    _write(f"{tag}.pids", f"{os.getpid()} {sh.pid}")
    sh.wait()
    time.sleep(999)


def sleeper(tag, seconds):
    """Sleeps in a child process of the same group; writes both pids first."""
    child = subprocess.Popen(["sleep", str(seconds)])
    _write(f"{tag}.pids", f"{os.getpid()} {child.pid}")
    child.wait()
    return tag


def suicide():
    """Kills its own worker, every attempt."""
    _ledger("run", "suicide")
    os.kill(os.getpid(), signal.SIGKILL)


def chatty(tag):
    print(f"stdout says {tag}")
    print(f"stderr says {tag}", file=sys.stderr)
    return tag


def ticker(tag, lines):
    """Prints `lines` lines 0.2 s apart; after the first, waits for the file `{tag}.go`."""
    print(f"{tag} tick 0", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(_path(f"{tag}.go")) and time.monotonic() < deadline:
        time.sleep(0.02)
    for i in range(1, lines):
        time.sleep(0.2)
        print(f"{tag} tick {i}", flush=True)
    return lines
'''

# Short graces keep teardown quick when a test leaves a job running.
BASE_DAEMON_CONFIG = {"shutdown_grace": '"5s"', "kill_grace": '"1s"'}


def write_config(workdir: Path, **daemon: str) -> Path:
    """Write ./jobrunner.toml (read by the daemon and the CLI, both run in `workdir`).

    Values are TOML literals: write_config(w, lease='"2s"', workers="2")."""
    values = {**BASE_DAEMON_CONFIG, **daemon}
    lines = ["[daemon]", *(f"{k} = {v}" for k, v in values.items())]
    path = workdir / "jobrunner.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_module(workdir: Path, name: str, source: str) -> Path:
    path = workdir / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def tasks(workdir: Path) -> Path:
    """The `jtasks` module in the workdir, plus the default config."""
    write_config(workdir)
    return write_module(workdir, "jtasks", TASKS_SOURCE)


# -- the CLI --------------------------------------------------------------------------------


def submit(workdir: Path, db: Path, *args: str) -> int:
    res = cli(workdir, db, "submit", *args)
    assert res.code == 0, f"submit {args} exited {res.code}: {res.err}"
    assert "database is locked" not in res.err
    return int(res.out.strip())


def submit_file(
    workdir: Path, db: Path, lines: list[dict[str, Any]], name: str = "jobs"
) -> list[int]:
    """`submit --file` of JSON lines; returns the ids, one per line, in order."""
    path = workdir / f"{name}.jsonl"
    path.write_text(dumps_lines(lines))
    res = cli(workdir, db, "submit", "--file", path.name)
    assert res.code == 0, res.err
    ids = [int(x) for x in res.out.split()]
    assert len(ids) == len(set(ids)) == len(lines)
    return ids


def job(workdir: Path, db: Path, job_id: int) -> dict[str, Any]:
    """`status ID --json`: the job record with its attempt history under `attempt_history`."""
    res = cli(workdir, db, "status", str(job_id), "--json")
    assert res.code == 0, res.err
    return res.json()


def overview(workdir: Path, db: Path) -> dict[str, Any]:
    res = cli(workdir, db, "status", "--json")
    assert res.code == 0, res.err
    return res.json()


def counts(workdir: Path, db: Path) -> dict[str, int]:
    return overview(workdir, db)["counts"]


def jobs_in(workdir: Path, db: Path, state: str, limit: int = 100_000) -> list[dict[str, Any]]:
    res = cli(workdir, db, "list", "--state", state, "--limit", str(limit), "--json")
    assert res.code == 0, res.err
    return res.json()


def wait_counts(workdir: Path, db: Path, timeout: float, **want: int) -> dict[str, int]:
    """Poll `status --json` until the counts of the given states are as wanted."""
    last: dict[str, int] = {}

    def done() -> bool:
        last.update(counts(workdir, db))
        return all(last.get(k, 0) == v for k, v in want.items())

    try:
        wait_for(done, timeout=timeout, every=0.1, what=f"counts {want}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last counts {last}") from None
    return last


# -- the ledger -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    job_id: int
    attempt: int
    event: str
    tag: str
    pid: int
    ppid: int


def ledger(workdir: Path) -> list[Entry]:
    path = workdir / "ledger"
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        job_id, attempt, event, tag, pid, ppid = line.split(" ")
        entries.append(Entry(int(job_id), int(attempt), event, tag, int(pid), int(ppid)))
    return entries


def read_file_when_present(path: Path, timeout: float = 30) -> str:
    return wait_for(
        lambda: path.read_text() if path.exists() else None, timeout=timeout, what=str(path)
    )


# -- processes ------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    found = []
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None and stat[2] == pgid and stat[0] not in ("Z", "X"):
            found.append(pid)
    return found


def children(pid: int) -> list[int]:
    found = []
    for p in _pids():
        stat = _stat(p)
        if stat is not None and stat[1] == pid and stat[0] not in ("Z", "X"):
            found.append(p)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _started_by_test(pid: int, marker: bytes) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return marker in environ.split(b"\0")


def processes_of_test(db: Path) -> list[int]:
    """Live processes that carry this test's database in their environment: the daemons,
    their workers and whatever the jobs started. The pytest process itself excluded."""
    marker = f"JOBRUNNER_DB={db}".encode()
    me = os.getpid()
    return [p for p in _pids() if p != me and alive(p) and _started_by_test(p, marker)]


@pytest.fixture(autouse=True)
def _sweep_leftovers(workdir: Path, db: Path) -> Iterator[None]:
    """After the test (and after `daemons` stopped its daemons), SIGKILL any process this
    test started that is still alive, e.g. a job's grandchild, so none outlives it."""
    yield
    for _ in range(50):
        left = processes_of_test(db)
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def read_through_newline(stream: Any, timeout: float) -> bytes:
    """Raw reads from a pipe until a newline arrives, waiting at most `timeout` seconds;
    returns everything read (at least one full line)."""
    fd = stream.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no line within {timeout}s; got {buf!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"stream closed before a full line; got {buf!r}")
            buf += chunk
    return buf


def dumps_lines(objects: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)
