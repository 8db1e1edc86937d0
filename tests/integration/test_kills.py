"""Timeouts and cancels kill a job's whole process group, grandchildren included."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import (
    alive,
    children,
    cmdline,
    group_members,
    job,
    read_file_when_present,
    submit,
    write_config,
)

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends

TIMEOUT = 1.0
KILL_GRACE = 1.0


def test_hung_job_ignoring_sigterm_is_killed_with_its_group(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, kill_grace='"1s"', workers="1")
    daemons.append(Daemon(workdir, db))
    job_id = submit(
        workdir, db, "jtasks:hang", "--args", '["h"]', "--timeout", "1s", "--retries", "0"
    )

    sleep_pid = int(read_file_when_present(workdir / "h.sleep.pid"))
    worker, sh = (int(p) for p in read_file_when_present(workdir / "h.pids").split())
    assert set(group_members(worker)) >= {worker, sh, sleep_pid}

    # SIGTERM at the timeout is ignored by all three; SIGKILL after the grace is not.
    # The job started before its pid file appeared, so this bound is generous.
    wait_for(
        lambda: not group_members(worker) and not alive(sleep_pid),
        timeout=TIMEOUT + KILL_GRACE + 1.0,
        what="the job's process group to be gone",
    )

    res = cli(workdir, db, "wait", str(job_id), "--timeout", "20s")
    assert res.code == 1, (res.code, res.err)
    record = job(workdir, db, job_id)
    assert record["state"] == "dead"
    assert "timed out" in record["error"]
    assert "SIGKILL" in record["error"]  # TERM was ignored: it took the escalation
    assert [a["outcome"] for a in record["attempt_history"]] == ["timeout"]


def test_command_job_timing_out_is_killed(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, kill_grace='"1s"', workers="1")
    d = Daemon(workdir, db)
    daemons.append(d)
    job_id = submit(workdir, db, "--cmd", "--timeout", "1s", "--retries", "0", "--", "sleep", "60")

    def the_sleep() -> tuple[int, int] | None:
        for worker in d.worker_pids():
            for pid in children(worker):
                if cmdline(pid) == ["sleep", "60"]:
                    return worker, pid
        return None

    worker, sleep_pid = wait_for(the_sleep, timeout=20, what="the command to start")
    wait_for(
        lambda: not group_members(worker) and not alive(sleep_pid),
        timeout=TIMEOUT + KILL_GRACE + 1.0,
        what="the command's process group to be gone",
    )
    res = cli(workdir, db, "wait", str(job_id), "--timeout", "20s")
    assert res.code == 1
    record = job(workdir, db, job_id)
    assert record["state"] == "dead"
    assert "timed out" in record["error"]
    assert [a["outcome"] for a in record["attempt_history"]] == ["timeout"]
    # the daemon carries on with a fresh worker
    assert cli(workdir, db, "wait", str(submit(workdir, db, "--cmd", "--", "true"))).code == 0


def test_cancel_running_job_kills_its_group(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    d = Daemon(workdir, db, "--workers", "1")
    daemons.append(d)
    job_id = submit(workdir, db, "jtasks:sleeper", "--args", '["c", 60]')
    worker, child = (int(p) for p in read_file_when_present(workdir / "c.pids").split())
    assert set(group_members(worker)) >= {worker, child}
    assert job(workdir, db, job_id)["state"] == "running"

    res = cli(workdir, db, "cancel", str(job_id))
    assert res.code == 0, res.err
    record = job(workdir, db, job_id)
    assert record["state"] == "cancelled"
    assert [a["outcome"] for a in record["attempt_history"]] == ["cancelled"]
    wait_for(
        lambda: not group_members(worker) and not alive(child),
        timeout=KILL_GRACE + 5,
        what="the cancelled job's process group to be gone",
    )
    res = cli(workdir, db, "wait", str(job_id), "--timeout", "5s")
    assert res.code == 1
    assert "cancelled" in res.err

    # the daemon replaces the worker and goes on
    assert cli(workdir, db, "wait", str(submit(workdir, db, "jtasks:record"))).code == 0
    assert d.proc.poll() is None


def test_cancel_queued_job_without_daemon(workdir: Path, db: Path, tasks: Path) -> None:
    job_id = submit(workdir, db, "jtasks:record", "--args", '["q"]')
    assert job(workdir, db, job_id)["state"] == "queued"
    res = cli(workdir, db, "cancel", str(job_id))
    assert res.code == 0, res.err
    record = job(workdir, db, job_id)
    assert record["state"] == "cancelled"
    assert record["attempt_history"] == []
    res = cli(workdir, db, "wait", str(job_id), "--timeout", "5s")
    assert res.code == 1
    assert "cancelled" in res.err
