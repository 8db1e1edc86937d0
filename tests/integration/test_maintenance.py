"""Retention inside a real daemon: ended jobs past their age go, with their log files,
while fresh ones stay; and a backup taken while the daemon runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import backdate
from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import job, submit, write_config

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends

DAY = 86400.0


def log_of(db: Path, job_id: int) -> Path:
    return Path(str(db.resolve()) + ".logs") / f"{job_id}.log"


def exists(workdir: Path, db: Path, job_id: int) -> bool:
    res = cli(workdir, db, "status", str(job_id), "--json")
    if res.code == 0:
        return True
    assert "no job with id" in res.err, res.err
    return False


def with_retention(workdir: Path, text: str) -> None:
    config = write_config(workdir)
    config.write_text(config.read_text() + "\n[retention]\n" + text)


@pytest.mark.sqlite_only("ages the file's rows with apsw")
def test_daemon_prunes_old_ended_jobs_at_start_and_keeps_fresh_ones(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    ok = [submit(workdir, db, "jtasks:chatty", "--args", f'["ok{i}"]') for i in range(4)]
    dead = [submit(workdir, db, "jtasks:suicide", "--retries", "0") for _ in range(2)]
    cancelled = [submit(workdir, db, "jtasks:record", "--delay", "1h") for _ in range(2)]
    for job_id in cancelled:
        assert cli(workdir, db, "cancel", str(job_id)).code == 0
    waiting = submit(workdir, db, "jtasks:record", "--delay", "1h")
    for job_id in ok + dead:
        wait_for(lambda j=job_id: job(workdir, db, j)["state"] in ("succeeded", "dead"))
    assert {job(workdir, db, j)["state"] for j in dead} == {"dead"}
    assert all(log_of(db, j).exists() for j in ok)
    daemons.pop().stop()

    old_ok, fresh_ok = ok[:2], ok[2:]
    for job_id in old_ok:
        backdate(db, job_id, 8 * DAY)  # past the default 7 days
    for job_id in fresh_ok:
        backdate(db, job_id, 6 * DAY)
    backdate(db, dead[0], 31 * DAY)  # past the default 30 days
    backdate(db, dead[1], 8 * DAY)  # past the succeeded age only: kept
    backdate(db, cancelled[0], 31 * DAY)  # cancelled jobs keep the dead age
    backdate(db, cancelled[1], 29 * DAY)

    with_retention(workdir, '# the defaults, written out\nsucceeded = "7d"\ndead = "30d"\n')
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    gone = [*old_ok, dead[0], cancelled[0]]
    wait_for(
        lambda: not any(exists(workdir, db, j) for j in gone),
        timeout=30,
        every=0.1,
        what="old jobs pruned",
    )
    for job_id in [*fresh_ok, dead[1], cancelled[1], waiting]:
        assert exists(workdir, db, job_id), job_id
    assert not any(log_of(db, j).exists() for j in old_ok)
    assert all(log_of(db, j).exists() for j in fresh_ok)
    daemon = daemons[0]
    wait_for(lambda: "retention: deleted 4 ended job(s)" in daemon.log(), what="the log line")
    assert daemon.log().count("retention: deleted") == 1


@pytest.mark.sqlite_only("counts the file's rows with apsw")
def test_short_retention_prunes_while_the_daemon_runs(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    with_retention(workdir, 'succeeded = "1s"\n')
    daemon = Daemon(workdir, db, "--workers", "2")
    daemons.append(daemon)
    dead = submit(workdir, db, "jtasks:suicide", "--retries", "0")
    first = submit(workdir, db, "jtasks:chatty", "--args", '["first"]')
    wait_for(lambda: job(workdir, db, dead)["state"] == "dead", what="dead")
    wait_for(lambda: not exists(workdir, db, first), timeout=20, every=0.1, what="first pruned")
    assert not log_of(db, first).exists()
    # and so does the next one, while the daemon keeps running
    second = submit(workdir, db, "jtasks:chatty", "--args", '["second"]')
    # pruned means it succeeded (dead and cancelled jobs are kept 30 days); a wait for
    # "succeeded" first could miss it on a loaded machine: gone a second after it ended
    wait_for(lambda: not exists(workdir, db, second), timeout=20, every=0.1, what="second pruned")
    assert exists(workdir, db, dead)  # dead jobs keep their 30 days
    assert "retention: deleted 1 ended job(s) and their logs (1 succeeded;" in daemon.log()


@pytest.mark.sqlite_only("backup is a file's; PostgreSQL's own tools back it up")
def test_backup_while_the_daemon_runs(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    ids = [submit(workdir, db, "jtasks:record", "--args", f'["b{i}"]') for i in range(20)]
    for job_id in ids:
        wait_for(lambda j=job_id: job(workdir, db, j)["state"] == "succeeded")
    res = cli(workdir, db, "backup", "copy.db")
    assert res.code == 0, res.err
    copy = workdir / "copy.db"
    res = cli(workdir, copy, "list", "--json", "--limit", "100")
    assert res.code == 0, res.err
    assert sorted(r["id"] for r in res.json()) == ids
    assert {r["state"] for r in res.json()} == {"succeeded"}


@pytest.mark.sqlite_only("a file's free pages")
def test_the_daemons_retention_gives_deleted_jobs_space_back_to_the_file_system(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    import apsw

    from jobrunner.models import JobInsert
    from jobrunner.store import open_store

    with_retention(workdir, 'dead = "1s"\n')
    store = open_store(str(db))
    store.job_insert_many([JobInsert(task="m:f", args=["x" * 4000, n]) for n in range(3000)], 0.0)
    store.close()
    assert cli(workdir, db, "cancel", "--queue", "default", "--yes").code == 0

    def pages() -> tuple[int, int]:  # the file's pages as a reader sees them, and the free
        conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            count = conn.execute("PRAGMA page_count").fetchall()[0][0]
            return int(count), int(conn.execute("PRAGMA freelist_count").fetchall()[0][0])
        finally:
            conn.close()

    full, _ = pages()
    daemons.append(Daemon(workdir, db, "--queues", "none"))  # leads retention, runs nothing
    wait_for(lambda: pages()[0] < full / 4, timeout=60, every=0.2, what="the file to shrink")
    assert pages()[1] < 2048  # what is left free is at most one run's worth
