"""The database file deleted or replaced under a running daemon.

What a user relies on: the daemon notices within seconds, says so in one line and exits 3
(for its supervisor to start it again on the file now at the path) instead of running on
with a file nobody else sees, while `status` says no daemon runs and submitted jobs wait
forever. Its running jobs are killed, as if it had died: for the file now at the path it
is dead, its heartbeats reach only the old one. And stopping, it leaves the new file's
write-ahead log alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from jobrunner.models import JobInsert
from jobrunner.store import open_store
from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import alive, ledger, submit, wait_counts, write_config

EXIT_STORE = 3


@pytest.fixture
def db(workdir: Path) -> Path:
    """The database in a folder of its own, which the tests remove."""
    (workdir / "q").mkdir()
    return workdir / "q" / "jobs.db"


def started(workdir: Path, tag: str) -> int:
    """The pid of the job that wrote a `start` line with `tag` to the ledger."""
    entries = wait_for(
        lambda: [e for e in ledger(workdir) if e.tag == tag and e.event == "start"],
        timeout=30,
        what=f"{tag} started",
    )
    return entries[0].pid


def test_folder_removed_and_made_again_the_daemon_exits_3_and_its_jobs_die(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    submit(workdir, db, "jtasks:slow", "--args", '["long", 60]')
    daemon = Daemon(workdir, db, "--workers", "1")
    daemons.append(daemon)
    job_pid = started(workdir, "long")

    shutil.rmtree(db.parent)
    db.parent.mkdir()
    new = open_store(str(db))  # a new database there, its last commit only in its WAL
    (mine,) = new.job_insert_many([JobInsert(task="jtasks:record", args=["after"])], 0.0)
    wal = Path(f"{db}-wal")
    assert wal.stat().st_size > 0

    assert daemon.wait(timeout=30) == EXIT_STORE
    log = daemon.log()
    assert log.count("while the daemon had it open") == 1, log
    assert "was deleted" in log or "was replaced by another file" in log, log
    assert "Traceback" not in log
    wait_for(lambda: not alive(job_pid), timeout=10, what="the running job killed")
    assert [e.event for e in ledger(workdir) if e.tag == "long"] == ["start"]
    # Stopping, it checkpointed nothing into, and deleted nothing of, the new file's WAL.
    assert wal.exists()
    assert new.job_get(mine.id) is not None
    new.close()

    restarted = Daemon(workdir, db, "--workers", "1")
    daemons.append(restarted)
    wait_counts(workdir, db, timeout=30, succeeded=1)


def test_a_backup_restored_over_it_the_daemon_exits_3_and_the_job_is_rescued(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """The copy holds the job as running, owned by the old daemon: the next daemon finds
    that daemon's pid gone, rescues the job (attempt 1 `lost`) and runs it again. The
    old daemon's -wal and -shm, still at the path, go with it: replayed into the restored
    file they would damage it."""
    write_config(workdir, shutdown_grace='"1s"')  # the second run is stopped at the end
    job_id = submit(workdir, db, "jtasks:slow", "--args", '["long", 60]', "--retries", "1")
    daemon = Daemon(workdir, db, "--workers", "1")
    daemons.append(daemon)
    job_pid = started(workdir, "long")
    res = cli(workdir, db, "backup", str(workdir / "copy.db"))
    assert res.code == 0, res.err
    assert daemon.proc.poll() is None

    os.replace(workdir / "copy.db", db)  # as a restore does (the WAL is the daemon's)

    assert daemon.wait(timeout=30) == EXIT_STORE
    log = daemon.log()
    assert log.count("was replaced by another file while the daemon had it open") == 1, log
    wait_for(lambda: not alive(job_pid), timeout=10, what="the running job killed")
    assert sorted(p.name for p in db.parent.iterdir() if p.is_file()) == ["jobs.db"]
    res = cli(workdir, db, "check")
    assert (res.code, res.out) == (0, "ok\n"), res.err

    restarted = Daemon(workdir, db, "--workers", "1")
    daemons.append(restarted)
    wait_for(
        lambda: len([e for e in ledger(workdir) if e.event == "start"]) == 2,
        timeout=30,
        what="the job run again",
    )
    res = cli(workdir, db, "status", str(job_id), "--json")
    assert res.code == 0, res.err
    assert [a["outcome"] for a in res.json()["attempt_history"]] == ["lost"]
    assert res.json()["attempts"] == 2
