"""Running a daemon as a service: `daemon stop` and `daemon reload` find this machine's
daemons of a database through its rows (no pid files), `--log-file` survives log
rotation, and systemd's readiness protocol is spoken on a real datagram socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from jobrunner import clock
from jobrunner.models import DaemonInfo
from jobrunner.node import node
from jobrunner.store import open_store
from tests.helpers import PYTHON, Daemon, cli, env_for, wait_for
from tests.integration.conftest import alive, job, ledger, submit, write_config, write_module

pytestmark = pytest.mark.both_backends


def _started(workdir: Path) -> set[int]:
    return {e.job_id for e in ledger(workdir) if e.event == "start"}


def test_stop_drains_every_daemon_of_the_database_here_and_waits_for_them(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, workers="1")
    first, second = Daemon(workdir, db), Daemon(workdir, db)
    daemons += [first, second]
    running = submit(workdir, db, "jtasks:slow", "--args", '["s", 1]')
    wait_for(lambda: running in _started(workdir), what="the job to start")

    res = cli(workdir, db, "daemon", "stop")

    assert res.code == 0, res.err
    stopped = [line for line in res.out.splitlines() if line.startswith("stopped daemon")]
    assert len(stopped) == 2, res.out
    for d in (first, second):
        assert "stopping daemon " in res.out and f"(pid {d.pid}) after " in res.out
    assert first.wait(5) == 0 and second.wait(5) == 0  # drained, not killed
    assert job(workdir, db, running)["state"] == "succeeded"


def test_stop_and_reload_with_no_daemon_here_say_so_and_succeed(
    workdir: Path, db: Path, tasks: Path
) -> None:
    submit(workdir, db, "jtasks:noop")  # a database, with no daemon
    for action in ("stop", "reload"):
        res = cli(workdir, db, "daemon", action)
        assert res.code == 0, res.err
        assert res.out == "no daemon of this database is running on this machine\n"


def test_a_row_whose_pid_now_runs_another_program_is_never_signalled(
    workdir: Path, db: Path, tasks: Path
) -> None:
    submit(workdir, db, "jtasks:noop")
    other = subprocess.Popen(["sleep", "60"])  # the pid a dead daemon's row still names
    try:
        store = open_store(str(db), create=False)
        now = clock.now()
        store.daemon_register(
            DaemonInfo(
                "ghost:1:abc", os.uname().nodename, other.pid, now, now, now + 60, 1, None, node()
            )
        )
        store.close()
        res = cli(workdir, db, "daemon", "stop")
        assert res.code == 0, res.err
        assert "no daemon" in res.out
        time.sleep(0.2)
        assert other.poll() is None  # still sleeping: never sent SIGTERM
    finally:
        other.kill()
        other.wait()


def test_stop_says_which_daemon_outlived_its_timeout(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    d = Daemon(workdir, db)
    daemons.append(d)
    running = submit(workdir, db, "jtasks:slow", "--args", '["s", 30]')
    wait_for(lambda: running in _started(workdir), what="the job to start")

    res = cli(workdir, db, "daemon", "stop", "--timeout", "300ms")

    assert res.code == 1
    assert f"(pid {d.pid}) still running after 0.3s" in res.err
    assert d.proc.poll() is None  # draining its 30 s job (grace 5 s)


def test_a_log_file_is_reopened_on_reload_after_rotation(
    workdir: Path, db: Path, tasks: Path
) -> None:
    log = workdir / "daemon.log"
    proc = subprocess.Popen(
        [PYTHON, "-m", "jobrunner", "daemon", "--log-file", str(log)],
        cwd=workdir,
        env=env_for(workdir, db),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for(lambda: log.exists() and " ready: " in log.read_text(), what="ready in the file")
        log.rename(workdir / "daemon.log.1")  # logrotate's move

        res = cli(workdir, db, "daemon", "reload")

        assert res.code == 0, res.err
        assert "asked daemon " in res.out and f"(pid {proc.pid})" in res.out
        wait_for(
            lambda: log.exists() and "config" in log.read_text(), what="a line in the new file"
        )
        assert "reload" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert proc.stderr is not None and proc.stderr.read() == b""  # nothing on stderr
    assert "stopped" in log.read_text()


def test_a_log_file_that_cannot_be_opened_is_a_usage_error(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "daemon", "--log-file", str(workdir / "no" / "such" / "dir.log"))
    assert res.code == 2
    assert res.err.startswith("jobrunner: error: --log-file ")
    assert "No such file or directory" in res.err


NOTIFY_ENV = """
import os


def notify_env():
    return [os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")]
"""


def test_the_daemon_speaks_systemds_readiness_protocol(
    workdir: Path, db: Path, tasks: Path
) -> None:
    """As under Type=notify with WatchdogSec=: READY=1 once it runs jobs, WATCHDOG=1 within
    the period, STOPPING=1 when a drain begins; its jobs never see the socket."""
    write_module(workdir, "notifyenv", NOTIFY_ENV)
    name = f"jobrunner-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)  # an abstract address, as systemd's `@/org/freedesktop/...`
    sock.settimeout(30)
    env = env_for(workdir, db)
    env.update(NOTIFY_SOCKET="@" + name, WATCHDOG_USEC="400000")
    proc = subprocess.Popen(
        [PYTHON, "-m", "jobrunner", "daemon"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    messages: list[str] = []

    def receive_until(field: str) -> None:
        while field not in messages:
            messages.extend(sock.recv(4096).decode().splitlines())

    try:
        receive_until("READY=1")
        job_id = submit(workdir, db, "notifyenv:notify_env")
        assert cli(workdir, db, "wait", str(job_id)).code == 0
        assert job(workdir, db, job_id)["result"] == [None, None]
        messages.clear()
        receive_until("WATCHDOG=1")
        messages.clear()
        receive_until("WATCHDOG=1")  # again: petted every half period
        proc.send_signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        sock.close()
    assert not alive(proc.pid)


@pytest.mark.sqlite_only("the wake sockets are an SQLite file's (PostgreSQL: NOTIFY)")
def test_a_daemon_starts_and_is_woken_when_its_paths_and_tmpdir_are_too_long_for_a_socket(
    workdir: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """A socket address holds 108 bytes: a database that deep has its wake sockets in
    TMPDIR, and a TMPDIR that deep (a test runner's) falls back to /tmp; the daemon once
    died with 'AF_UNIX path too long' there."""
    deep = workdir / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    db = deep / "jobs.db"
    env = env_for(workdir, db)
    env["TMPDIR"] = str(deep)
    d = Daemon(workdir, db, env=env)
    daemons.append(d)
    started = time.monotonic()
    job_id = cli(workdir, db, "submit", "jtasks:noop", env=env).out.strip()
    res = cli(workdir, db, "wait", job_id, env=env)
    assert res.code == 0, res.err
    assert time.monotonic() - started < 5
