"""Processes a job starts in a session of their own do not outlive it.

`setsid sleep &` in a command and `Popen(..., start_new_session=True)` in a Python job
leave the job's process group, so a signal to the group misses them. The daemon must
still end them: at the job's timeout, at its cancel, when the daemon stops, and (with a
cgroup) when the daemon is killed with -9, also when its guard dies with it (then the
next daemon on the machine ends them). Each of these runs with and without cgroups
(`[daemon] cgroups = false`), except kill -9, which only a cgroup covers (docs/jobs.md).

The jobs write the pid of each escaped `sleep`; the tests watch those pids and kill the
ones still alive at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import db_files
from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import (
    alive,
    cmdline,
    job,
    read_file_when_present,
    submit,
    write_config,
    write_module,
)

# Long enough that both pid files are read before it ends the first job (two submits take
# about a second on a loaded machine with PostgreSQL: its client library alone imports in 0.2 s)
TIMEOUT = 3.0
KILL_GRACE = 1.0
# From the moment a job's escaped process is known to the moment it must be gone: its
# timeout and grace, plus room for a loaded 2-CPU machine.
BOUND = TIMEOUT + KILL_GRACE + 8.0

ESCAPE_SOURCE = '''
import os
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def spawn(tag, seconds):
    """Starts `sleep SECONDS` in a new session (as a helper server would), writes its pid
    to TAG.pid, then waits (to be timed out or cancelled) or returns at once (seconds < 0)."""
    p = subprocess.Popen(["sleep", str(abs(seconds))], start_new_session=True)
    tmp = os.path.join(HERE, tag + ".pid.tmp")
    with open(tmp, "w") as f:
        f.write(str(p.pid))
    os.replace(tmp, os.path.join(HERE, tag + ".pid"))
    if seconds > 0:
        time.sleep(600)
    return tag
'''

# `setsid` in a non-interactive shell's background job: not a group leader, so it calls
# setsid() itself and execs the sleep, whose pid is $!.
SETSID_COMMAND = 'setsid sleep "$2" & echo $! > "$1.tmp"; mv "$1.tmp" "$1"; {tail}'


def _cgroup2_dir() -> str | None:
    """This process's own cgroup2 directory, if cgroup2 is mounted (found independently of
    jobrunner's code, so that a wrong probe there cannot skip these tests)."""
    try:
        with open("/proc/self/cgroup") as f:
            own = next((ln[3:].strip() for ln in f if ln.startswith("0::")), None)
        with open("/proc/self/mountinfo") as f:
            mounts = [ln.split() for ln in f]
    except OSError:
        return None
    for fields in mounts:
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup2" and own is not None and fields[3] == "/":
            return fields[4] + own.rstrip("/")
    return None


def _cgroup2_writable() -> bool:
    base = _cgroup2_dir()
    if base is None:
        return False
    probe = os.path.join(base, f"jobrunner-test-probe-{os.getpid()}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    os.rmdir(probe)
    return True


CGROUPS = [
    pytest.param(True, id="cgroup"),
    pytest.param(False, id="no-cgroup"),
]
needs_cgroup = pytest.mark.skipif(
    not _cgroup2_writable(), reason="no writable cgroup2 hierarchy here (needs root or delegation)"
)


@pytest.fixture
def escaped(workdir: Path) -> Iterator[dict[str, int]]:
    """tag -> pid of the escaped sleeps the test's jobs reported; those still alive at the
    end are SIGKILLed by pid (only while they are still a `sleep`)."""
    found: dict[str, int] = {}
    yield found
    for path in workdir.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            found[path.stem] = int(path.read_text())
    for pid in found.values():
        if cmdline(pid)[:1] == ["sleep"]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _start(workdir: Path, db: Path, daemons: list[Daemon], cgroups: bool) -> Daemon:
    if cgroups and not _cgroup2_writable():
        pytest.skip("no writable cgroup2 hierarchy here (needs root or delegation)")
    write_config(
        workdir,
        workers="2",
        kill_grace=f'"{KILL_GRACE:g}s"',
        cgroups="true" if cgroups else "false",
    )
    write_module(workdir, "escape", ESCAPE_SOURCE)
    d = Daemon(workdir, db)
    daemons.append(d)
    if cgroups:  # it says where its jobs run
        assert "cgroup " + (_cgroup2_dir() or "") in d.log(), d.log()
    return d


def _submit_pair(workdir: Path, db: Path, *options: str, seconds: int = 1001) -> list[int]:
    """A command job and a Python job, each leaving a `sleep` in a session of its own."""
    tail = "exit 0" if seconds < 0 else "sleep 600"
    command = SETSID_COMMAND.format(tail=tail)
    cmd_job = submit(
        workdir,
        db,
        "--cmd",
        *options,
        "--",
        "sh",
        "-c",
        command,
        "sh",
        str(workdir / "cmd.pid"),
        str(abs(seconds)),
    )
    py_seconds = seconds + 1 if seconds > 0 else seconds - 1
    py_job = submit(workdir, db, "escape:spawn", "--args", f'["py", {py_seconds}]', *options)
    return [cmd_job, py_job]


def _sleep_alive(pid: int) -> bool:
    return alive(pid) and cmdline(pid)[:1] == ["sleep"]


def _read_escaped(workdir: Path, escaped: dict[str, int]) -> dict[str, int]:
    for tag in ("cmd", "py"):
        escaped[tag] = int(read_file_when_present(workdir / f"{tag}.pid"))
    for tag, pid in escaped.items():
        assert _sleep_alive(pid), tag
        assert os.getsid(pid) == pid, f"{tag}: the sleep did not start a session of its own"
    return escaped


def _wait_gone(escaped: dict[str, int], what: str, bound: float = BOUND) -> None:
    wait_for(
        lambda: not any(_sleep_alive(pid) for pid in escaped.values()),
        timeout=bound,
        every=0.05,
        what=f"the jobs' escaped processes to be gone {what} "
        f"(alive: {[t for t, p in escaped.items() if _sleep_alive(p)]})",
    )


def _outcomes(workdir: Path, db: Path, job_id: int) -> list[str]:
    return [a["outcome"] for a in job(workdir, db, job_id)["attempt_history"]]


@pytest.mark.parametrize("cgroups", CGROUPS)
def test_a_timeout_ends_what_the_job_started_in_a_new_session(
    workdir: Path, db: Path, daemons: list[Daemon], escaped: dict[str, int], cgroups: bool
) -> None:
    d = _start(workdir, db, daemons, cgroups)
    jobs = _submit_pair(workdir, db, "--timeout", f"{TIMEOUT:g}s", "--retries", "0")
    _read_escaped(workdir, escaped)
    _wait_gone(escaped, "after their jobs' timeout")
    for job_id in jobs:
        wait_for(lambda j=job_id: _outcomes(workdir, db, j), timeout=10, what=f"job {job_id}")
        assert _outcomes(workdir, db, job_id) == ["timeout"]
    assert d.proc.poll() is None, d.log()


@pytest.mark.parametrize("cgroups", CGROUPS)
def test_a_cancel_ends_what_the_job_started_in_a_new_session(
    workdir: Path, db: Path, daemons: list[Daemon], escaped: dict[str, int], cgroups: bool
) -> None:
    d = _start(workdir, db, daemons, cgroups)
    jobs = _submit_pair(workdir, db, "--retries", "0")
    _read_escaped(workdir, escaped)
    for job_id in jobs:
        res = cli(workdir, db, "cancel", str(job_id))
        assert res.code == 0, res.err
    _wait_gone(escaped, "after their jobs' cancel")
    for job_id in jobs:
        assert job(workdir, db, job_id)["state"] == "cancelled"
    assert d.proc.poll() is None, d.log()


@pytest.mark.parametrize("cgroups", CGROUPS)
def test_stopping_the_daemon_ends_what_finished_jobs_left_in_a_new_session(
    workdir: Path, db: Path, daemons: list[Daemon], escaped: dict[str, int], cgroups: bool
) -> None:
    d = _start(workdir, db, daemons, cgroups)
    jobs = _submit_pair(workdir, db, "--retries", "0", seconds=-1003)
    _read_escaped(workdir, escaped)
    for job_id in jobs:
        assert cli(workdir, db, "wait", str(job_id), "--timeout", "20s").code == 0
    d.signal(signal.SIGTERM)
    assert d.wait(30) == 0, d.log()
    _wait_gone(escaped, "after the daemon stopped", bound=5.0)


@needs_cgroup
def test_kill_9_of_the_daemon_ends_what_its_jobs_started_in_a_new_session(
    workdir: Path, db: Path, daemons: list[Daemon], escaped: dict[str, int]
) -> None:
    d = _start(workdir, db, daemons, cgroups=True)
    _submit_pair(workdir, db, "--retries", "0")
    _read_escaped(workdir, escaped)
    base = _cgroup2_dir()
    assert base is not None
    ours = [p for p in Path(base).glob(f"jobrunner-*-{d.pid}-*")]
    assert len(ours) == 1, ours  # the daemon's cgroup, named after its pid
    os.kill(d.pid, signal.SIGKILL)
    d.wait(10)
    _wait_gone(escaped, "after kill -9 of their daemon", bound=10.0)
    # its guard removed the daemon's cgroups once they were empty
    wait_for(lambda: not ours[0].exists(), timeout=10, what=f"{ours[0]} to be removed")


@needs_cgroup
def test_the_next_daemon_ends_what_a_daemon_killed_with_its_guard_left(
    workdir: Path, db: Path, daemons: list[Daemon], escaped: dict[str, int]
) -> None:
    d = _start(workdir, db, daemons, cgroups=True)
    _submit_pair(workdir, db, "--retries", "0")
    _read_escaped(workdir, escaped)
    guard = d.guard_pid()
    assert guard is not None
    # Stopped first, so the daemon cannot start another guard before it dies.
    os.kill(d.pid, signal.SIGSTOP)
    os.kill(guard, signal.SIGKILL)
    os.kill(d.pid, signal.SIGKILL)
    d.wait(10)
    base = _cgroup2_dir()
    assert base is not None
    (left,) = Path(base).glob(f"jobrunner-*-{d.pid}-*")
    assert all(_sleep_alive(pid) for pid in escaped.values())  # nobody left to end them
    daemons.append(Daemon(workdir, db))  # a later daemon on this machine does
    _wait_gone(escaped, "once another daemon started", bound=10.0)
    wait_for(lambda: not left.exists(), timeout=10, what=f"{left} to be removed")


@pytest.mark.parametrize("value", ['"no"', "0", "1", '"false"', "[]"])
def test_cgroups_takes_true_or_false_only(workdir: Path, db: Path, value: str) -> None:
    (workdir / "jobrunner.toml").write_text(f"[daemon]\nworkers = 1\ncgroups = {value}\n")
    res = cli(workdir, db, "config", "check")
    assert res.code == 2, (res.code, res.out, res.err)
    assert res.err.count("\n") == 1, res.err
    assert "jobrunner.toml:3: daemon.cgroups: expected true or false" in res.err, res.err
    assert db_files(db) == []
    (workdir / "jobrunner.toml").write_text("[daemon]\ncgroups = false\n")
    res = cli(workdir, db, "config", "check", "--json")
    assert res.code == 0, res.err
    assert res.json()["daemon"]["cgroups"] is False
