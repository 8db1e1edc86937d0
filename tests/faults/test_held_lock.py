"""A lock held from outside: another process keeps `BEGIN EXCLUSIVE` on the database.

A submit either waits and succeeds (the lock goes within the store's busy timeout) or
fails after it with one retryable line and exit 3, writing nothing. The daemon waits,
backs off and finishes every job, each exactly once, after the lock is released.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobrunner.store.sqlite_sql import BUSY_TIMEOUT_MS
from tests.helpers import PYTHON, Daemon, cli, wait_for
from tests.integration.conftest import counts, jobs_in, ledger, submit, wait_counts, write_config

pytestmark = pytest.mark.sqlite_only("SQLite's write lock held by another process")

EXIT_STORE = 3  # docs/jobs.md: "3 the database stayed locked or failed"

HOLDER = """
import os, sys, time
import apsw
db, marker, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
conn = apsw.Connection(db)
conn.setbusytimeout(30_000)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE jobs SET priority = priority WHERE 0")  # a writer, for sure
open(marker, "w").close()
time.sleep(seconds)  # the point of this process: hold the lock this long
conn.execute("COMMIT")
"""


@contextmanager
def lock_held(db: Path, seconds: float) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holds BEGIN EXCLUSIVE on `db` for `seconds` (from when it has it)."""
    marker = db.with_name("lock-held")
    proc = subprocess.Popen([PYTHON, "-c", HOLDER, str(db), str(marker), str(seconds)])
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None, timeout=30, what="the lock")
        assert proc.poll() is None, "the lock holder failed"
        yield proc
    finally:
        proc.wait(timeout=seconds + 30)
        assert proc.returncode == 0


def start_submit(workdir: Path, db: Path, tag: str) -> subprocess.Popen[str]:
    from tests.helpers import env_for

    return subprocess.Popen(
        [PYTHON, "-m", "jobrunner", "submit", "jtasks:record", "--args", f'["{tag}"]'],
        cwd=workdir,
        env=env_for(workdir, db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_through_a_held_lock(
    workdir: Path, db: Path, daemons: list[Daemon], hold: float
) -> tuple[list[tuple[int, str, str, float]], Daemon, list[int]]:
    """Jobs running in a daemon; the lock taken; submits started while it is held.
    Returns each submit's (exit code, stdout, stderr, seconds taken)."""
    write_config(workdir, workers="2")
    d = Daemon(workdir, db)
    daemons.append(d)
    # long enough to outlast starting the lock holder on a loaded machine
    running = [submit(workdir, db, "jtasks:record", "--args", f'["r{i}", 2500]') for i in range(2)]
    wait_for(lambda: len(ledger(workdir)) == 2, timeout=20, what="two jobs running")
    with lock_held(db, hold):
        start = time.monotonic()
        procs = [start_submit(workdir, db, f"s{i}") for i in range(3)]
        # reads go on under the lock, and nothing can be recorded meanwhile
        assert counts(workdir, db)["running"] == 2
        results = []
        for p in procs:
            out, err = p.communicate(timeout=hold + BUSY_TIMEOUT_MS / 1000 + 30)
            results.append((p.returncode, out, err, time.monotonic() - start))
    return results, d, running


def test_submits_wait_out_a_short_lock_and_no_job_is_lost(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    hold = 2.0  # well inside the busy timeout
    results, d, running = run_through_a_held_lock(workdir, db, daemons, hold)
    ids = list(running)
    for code, out, err, took in results:
        assert code == 0, err
        assert took >= hold * 0.8, took  # it waited for the lock rather than failing
        ids.append(int(out))
    final = wait_counts(workdir, db, 30, succeeded=5)
    assert sum(final.values()) == 5
    assert sorted(e.job_id for e in ledger(workdir)) == sorted(ids)  # each ran once
    assert d.proc.poll() is None, d.log()
    assert "Traceback" not in d.log()


@pytest.mark.slow
def test_a_lock_held_past_the_busy_timeout_fails_submit_cleanly_and_the_daemon_survives(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    # longer than any writer waits, counted from the running jobs' ends (2.5 s in at most)
    hold = BUSY_TIMEOUT_MS / 1000 + 4.0
    results, d, running = run_through_a_held_lock(workdir, db, daemons, hold)
    for code, out, err, _took in results:
        assert code == EXIT_STORE, (code, err)
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1, err  # one line, no traceback
        assert str(db) in lines[0] and "locked" in lines[0] and "try again" in lines[0]
    # nothing the failed submits carried was written; the running jobs still finish
    final = wait_counts(workdir, db, 30, succeeded=2)
    assert sum(final.values()) == 2
    assert {j["id"] for j in jobs_in(workdir, db, "succeeded")} == set(running)
    log = d.log()
    assert d.proc.poll() is None, log
    assert log.count("database write failed") == 1, log
    assert log.count("database writable again") == 1, log
    # and a retry after the lock is gone goes through and runs
    retried = submit(workdir, db, "jtasks:record", "--args", '["again"]')
    wait_counts(workdir, db, 30, succeeded=3)
    assert sorted(e.job_id for e in ledger(workdir)) == sorted([*running, retried])
    res = cli(workdir, db, "status", str(retried), "--json")
    assert res.json()["attempts"] == 1
