"""I/O faults: a full disk or a failing device under a submit and under a running daemon.

Faults come from a real SQLite VFS that fails the real writes (tests/faults/vfs_faults.py),
and from a real full filesystem (a 2 MiB tmpfs) where mounting one is permitted. What a
user relies on: a failed submit says so in one line and writes nothing, not even part of a
batch; the daemon rides the failure out and loses no job; the database stays sound.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import apsw
import pytest

from tests.faults.mounts import tmpfs
from tests.faults.vfs_faults import LaunchedDaemon, hits, launcher_env, set_faults
from tests.helpers import PYTHON, Daemon, cli, wait_for
from tests.integration.conftest import (
    counts,
    dumps_lines,
    jobs_in,
    ledger,
    submit,
    submit_file,
    wait_counts,
    write_config,
)

pytestmark = pytest.mark.sqlite_only("I/O faults are injected into SQLite's file system layer")

EXIT_STORE = 3  # docs/jobs.md: "3 the database stayed locked or failed"


def integrity(db: Path) -> str:
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()[0][0]
    finally:
        conn.close()


def nonzero(by_state: dict[str, int]) -> dict[str, int]:
    return {state: n for state, n in by_state.items() if n}


def faulty(
    workdir: Path, db: Path, ctl: Path, *args: str, **kw: str
) -> subprocess.CompletedProcess:
    """Run `jobrunner ARGS` (or `-c CODE`) with the fault VFS installed."""
    return subprocess.run(
        [PYTHON, "-m", "tests.faults.vfs_faults", *args],
        cwd=workdir,
        env=launcher_env(workdir, db, JR_FAULTS=str(ctl), **kw),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_store_error(stderr: str, db: Path, what: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr  # one line, no traceback
    line = lines[0]
    assert line.startswith("jobrunner: error: "), line
    assert str(db) in line and what in line and "retryable" in line, line
    assert "nothing was written" in line, line


@pytest.mark.parametrize(
    ("mode", "what"),
    [("full", "disk full"), ("ioerr write", "I/O error"), ("ioerr sync", "I/O error")],
)
def test_a_bulk_submit_that_cannot_be_written_fails_whole_and_clearly(
    workdir: Path, db: Path, tasks: Path, mode: str, what: str
) -> None:
    first = submit(workdir, db, "jtasks:record", "--args", '["before"]')
    before = counts(workdir, db)
    ctl = workdir / "faults"
    set_faults(ctl, mode)
    batch = workdir / "batch.jsonl"
    batch.write_text(
        dumps_lines([{"task": "jtasks:record", "args": [f"b{i}"]} for i in range(500)])
    )

    res = faulty(workdir, db, ctl, "submit", "--file", batch.name)

    assert res.returncode == EXIT_STORE, (res.returncode, res.stderr)
    assert res.stdout == ""  # no id printed: none was created
    assert_one_line_store_error(res.stderr, db, what)
    assert hits(ctl), "the fault was never injected"
    set_faults(ctl, "")
    assert counts(workdir, db) == before  # all or nothing: nothing
    assert [j["id"] for j in jobs_in(workdir, db, "queued")] == [first]
    assert integrity(db) == "ok"
    # and once writes work again the same batch goes in whole
    res = faulty(workdir, db, ctl, "submit", "--file", batch.name)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.split()) == 500
    assert counts(workdir, db)["queued"] == 501


def test_client_submit_many_raises_a_clear_retryable_error(
    workdir: Path, db: Path, tasks: Path
) -> None:
    """The library path: Client.submit_many of 2,000 jobs into a full disk."""
    submit(workdir, db, "jtasks:record")
    ctl = workdir / "faults"
    set_faults(ctl, "full")
    code = (
        "from jobrunner import Client\n"
        "from jobrunner.errors import StoreUnavailable\n"
        "client = Client()\n"
        "try:\n"
        "    client.submit_many('jtasks:record', [[i] for i in range(2000)])\n"
        "except StoreUnavailable as exc:\n"
        "    print(type(exc).__name__, exc.exit_code, exc)\n"
        "else:\n"
        "    print('no error')\n"
    )
    res = faulty(workdir, db, ctl, "-c", code)
    assert res.returncode == 0, res.stderr
    name, exit_code, message = res.stdout.strip().split(" ", 2)
    assert (name, int(exit_code)) == ("StoreWriteFailed", EXIT_STORE)
    assert str(db) in message and "disk full" in message and "retryable" in message
    set_faults(ctl, "")
    assert nonzero(counts(workdir, db)) == {"queued": 1}
    assert integrity(db) == "ok"


def test_the_daemon_rides_out_failing_writes_and_loses_no_job(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, workers="2")
    ctl = workdir / "faults"
    set_faults(ctl, "")
    d = LaunchedDaemon(workdir, db, env=launcher_env(workdir, db, JR_FAULTS=str(ctl)))
    daemons.append(d)
    # two slow jobs the daemon will be running when its writes start failing, in one
    # submit (apart, the first could end before the second started on a loaded machine),
    # long enough that neither can end before the faults begin
    slow = [{"task": "jtasks:record", "args": [f"j{i}", 1500]} for i in range(2)]
    ids = submit_file(workdir, db, slow)
    wait_for(lambda: len(ledger(workdir)) == 2, timeout=20, what="both jobs started")

    set_faults(ctl, "ioerr")  # the daemon's writes fail from here on; the CLI's do not
    ids += [submit(workdir, db, "jtasks:record", "--args", f'["k{i}"]') for i in range(10)]
    # the running jobs end while nothing can be written: their results must wait, and
    # the claims of the new jobs keep failing
    wait_for(lambda: "database write failed" in d.log(), timeout=10, what="the failure logged")
    wait_for(lambda: len(hits(ctl)) >= 5, timeout=20, what="the daemon retrying")
    wait_for(lambda: len(ledger(workdir)) == 2, timeout=1, what="no job claimed meanwhile")
    assert d.proc.poll() is None, d.log()
    assert counts(workdir, db)["queued"] == 10  # nothing recorded meanwhile
    assert counts(workdir, db)["running"] == 2

    set_faults(ctl, "")
    final = wait_counts(workdir, db, 30, succeeded=12)
    assert final.get("running", 0) == 0 and sum(final.values()) == 12
    log = d.log()
    assert log.count("database write failed") == 1, log  # once per streak, not per retry
    assert log.count("database writable again") == 1, log
    assert "Traceback" not in log, log
    assert d.proc.poll() is None
    for job_id in ids:  # each ran once and its first attempt's result was kept
        res = cli(workdir, db, "status", str(job_id), "--json")
        record = res.json()
        assert (record["state"], record["attempts"]) == ("succeeded", 1), record
    runs = [e.job_id for e in ledger(workdir)]
    assert sorted(runs) == sorted(ids)
    assert d.stop() == 0
    assert integrity(db) == "ok"


# -- a real full filesystem --------------------------------------------------------------------


def fill(path: Path) -> int:
    """Write to `path` until the filesystem is full; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
                written += 4096
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    return written


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_real_full_disk_fails_submit_cleanly_and_the_daemon_resumes(
    workdir: Path, tasks: Path
) -> None:
    with tmpfs(workdir / "small") as small:
        db = small / "jobs.db"
        env = launcher_env(workdir, db)
        write_config(workdir, workers="2", lease='"2s"')
        first = submit(workdir, db, "jtasks:record", "--args", '["first"]')
        d = Daemon(workdir, db, env=env)
        try:
            wait_counts(workdir, db, 20, succeeded=1)
            filler = small / "filler"
            fill(filler)
            batch = workdir / "batch.jsonl"
            batch.write_text(
                dumps_lines([{"task": "jtasks:record", "args": ["x" * 100]} for _ in range(200)])
            )
            res = cli(workdir, db, "submit", "--file", batch.name, env=env)
            assert res.code == EXIT_STORE, (res.code, res.err)
            assert res.out == ""
            assert_one_line_store_error(res.err, db, "disk full")
            assert nonzero(counts(workdir, db)) == {"succeeded": 1}
            # the daemon keeps heartbeating into a full disk for a while and survives
            wait_for(
                lambda: "database write failed" in d.log() or d.proc.poll() is not None,
                timeout=10,
                what="the daemon to meet the full disk",
            )
            assert d.proc.poll() is None, d.log()

            filler.unlink()  # space again
            wait_for(lambda: "database writable again" in d.log(), timeout=15, what="recovery")
            res = cli(workdir, db, "submit", "--file", batch.name, env=env)
            assert res.code == 0, res.err
            wait_counts(workdir, db, 60, succeeded=201)
            assert d.proc.poll() is None
            assert [e.job_id for e in ledger(workdir)].count(first) == 1
        finally:
            d.stop()
        assert "Traceback" not in d.log(), d.log()
        assert integrity(db) == "ok"


def test_a_daemon_stopped_while_it_cannot_write_exits_and_its_jobs_run_again(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """SIGTERM while every write fails: after the shutdown grace it exits cleanly rather
    than retrying forever; the results it could not record are not lost for good, the
    next daemon rescues those jobs (at once: the pid is gone) and runs them again."""
    write_config(workdir, workers="2", shutdown_grace='"1s"')
    ctl = workdir / "faults"
    set_faults(ctl, "")
    d = LaunchedDaemon(workdir, db, env=launcher_env(workdir, db, JR_FAULTS=str(ctl)))
    daemons.append(d)
    ids = [submit(workdir, db, "jtasks:record", "--args", f'["j{i}", 1500]') for i in range(2)]
    wait_for(lambda: len(ledger(workdir)) == 2, timeout=20, what="both jobs started")
    set_faults(ctl, "full")
    wait_for(lambda: "database write failed" in d.log(), timeout=10, what="the failure")
    assert d.stop(timeout=20) == 0, d.log()
    assert "record(s) unwritten" in d.log(), d.log()
    assert "Traceback" not in d.log(), d.log()
    assert counts(workdir, db)["running"] == 2  # nothing recorded, nothing lost either

    set_faults(ctl, "")
    daemons.append(Daemon(workdir, db))
    wait_counts(workdir, db, 30, succeeded=2)
    for job_id in ids:
        record = cli(workdir, db, "status", str(job_id), "--json").json()
        assert [a["outcome"] for a in record["attempt_history"]] == ["lost", "succeeded"]
    assert integrity(db) == "ok"
