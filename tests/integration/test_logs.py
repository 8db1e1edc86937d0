"""A Python job's output reaches its log however the job ends: by a timeout, by the
daemon being killed under it, or while a process it left behind keeps writing
(worker/spool.py: in-process jobs write to the worker's spool, not a file each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import alive, job, submit, write_module

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends

LOG_JOBS = """
import os
import subprocess
import sys
import time

from jobrunner import current_job

HERE = os.path.dirname(os.path.abspath(__file__))


def _touch(name):
    open(os.path.join(HERE, name), "w").close()


def shout_then_hang(tag):
    print(f"{tag}: about to hang", flush=True)
    _touch(f"{tag}.started")
    time.sleep(999)


def hang_the_first_time(tag):
    if current_job().attempt == 1:
        shout_then_hang(tag)
    print(f"{tag}: second attempt", flush=True)
    return tag


def leave_a_writer_behind(tag):
    code = f"import time; time.sleep(0.6); print('late from {tag}', flush=True)"
    subprocess.Popen([sys.executable, "-c", code])
    print(f"{tag}: returned", flush=True)


def leave_an_orphan_behind(tag):
    # prints nothing itself; the shell exits at once, its backgrounded subshell is
    # orphaned and writes later
    os.system(f"(sleep 0.6; echo 'late from {tag}') &")


def quiet(seconds):
    time.sleep(seconds)
"""


def logs(workdir: Path, db: Path, job_id: int) -> str:
    res = cli(workdir, db, "logs", str(job_id))
    assert res.code == 0, res.err
    return res.out


def test_a_timed_out_job_keeps_what_it_printed(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    write_module(workdir, "logjobs", LOG_JOBS)
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    job_id = submit(
        workdir,
        db,
        "logjobs:shout_then_hang",
        "--args",
        '["t"]',
        "--timeout",
        "1s",
        "--retries",
        "0",
    )
    cli(workdir, db, "wait", str(job_id), "--timeout", "30s")
    assert job(workdir, db, job_id)["state"] == "dead"
    assert "t: about to hang" in logs(workdir, db, job_id)


def test_output_of_an_attempt_lost_with_its_daemon_is_kept(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    write_module(workdir, "logjobs", LOG_JOBS)
    first = Daemon(workdir, db, "--workers", "1")
    daemons.append(first)
    job_id = submit(workdir, db, "logjobs:hang_the_first_time", "--args", '["k"]')
    wait_for(lambda: (workdir / "k.started").exists(), timeout=20, what="job started")
    workers = first.worker_pids()
    first.kill_group()
    wait_for(lambda: not any(alive(p) for p in workers), timeout=10, what="workers gone")
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    assert cli(workdir, db, "wait", str(job_id), "--timeout", "30s").code == 0
    assert logs(workdir, db, job_id) == ("k: about to hang\n--- attempt 2 ---\nk: second attempt\n")


@pytest.mark.sqlite_only(
    "on PostgreSQL an ended job's output is shipped and its file removed: a process left behind writes into nothing anyone reads"
)
@pytest.mark.parametrize("task", ["leave_a_writer_behind", "leave_an_orphan_behind"])
def test_a_process_left_behind_writes_into_its_own_jobs_log(
    workdir: Path, db: Path, daemons: list[Daemon], task: str
) -> None:
    """A child the job did not wait for, or an orphan of one (the worker adopts those
    as a subreaper), may write after the job returned: into that job's log."""
    write_module(workdir, "logjobs", LOG_JOBS)
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    leaver = submit(workdir, db, f"logjobs:{task}", "--args", '["a"]')
    assert cli(workdir, db, "wait", str(leaver), "--timeout", "20s").code == 0
    # the same worker runs these while the leftover process is still about to write
    after = [submit(workdir, db, "logjobs:quiet", "--args", "[0.1]") for _ in range(8)]
    for job_id in after:
        assert cli(workdir, db, "wait", str(job_id), "--timeout", "20s").code == 0
    wait_for(lambda: "late from a" in logs(workdir, db, leaver), timeout=20, what="the late line")
    printed = "a: returned\n" if task == "leave_a_writer_behind" else ""
    assert logs(workdir, db, leaver) == printed + "late from a\n"
    for job_id in after:
        assert logs(workdir, db, job_id) == ""
