"""`jobrunner copy --to URL`: an SQLite file's jobs, schedules' state and history moved
into PostgreSQL, ids kept, all or nothing; the file retired (read, never written); and
the refusals, each one line with nothing written on either side."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobrunner.store import open_store
from tests.cli.support import assert_one_line_error, record, submit
from tests.helpers import Daemon, cli, wait_for
from tests.store.pg_support import fresh_database

pytestmark = [
    pytest.mark.usefixtures("tasks"),
    pytest.mark.sqlite_only("a copy's source is an SQLite file (the target is PostgreSQL)"),
]


@pytest.fixture
def pg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("JOBRUNNER_PG_LOGS", str(tmp_path / "pg-logs"))
    with fresh_database() as url:
        yield url


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            return 0
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def a_used_file(workdir: Path, db: Path, daemons: list[Daemon]) -> dict[str, int]:
    """A file a daemon worked on: succeeded, dead, waiting and delayed jobs, a
    schedule's last fire; its daemon stopped. Returns ids by what they are."""
    ids = {"ok": submit(workdir, db, "tasks:ok", "--args", "[7]")}
    ids["dead"] = submit(workdir, db, "tasks:fail", "--retries", "0")
    d = Daemon(workdir, db, "--workers", "1")
    daemons.append(d)
    wait_for(lambda: record(workdir, db, ids["dead"])["state"] == "dead", 30, "the dead job")
    wait_for(lambda: record(workdir, db, ids["ok"])["state"] == "succeeded", 30, "the ok job")
    d.stop()
    ids["waiting"] = submit(workdir, db, "tasks:ok", "--args", "[8]")
    ids["later"] = submit(workdir, db, "tasks:ok", "--delay", "1h")
    ids["blocked"] = submit(workdir, db, "tasks:ok", "--after", str(ids["waiting"]))
    with contextlib.closing(open_store(str(db))) as store:
        store.schedule_fire("nightly", None, 1_700_000_000.0, [], time.time())
    return ids


def test_copy_moves_every_job_and_retires_the_file(
    workdir: Path, db: Path, pg: str, daemons: list[Daemon]
) -> None:
    ids = a_used_file(workdir, db, daemons)
    with_password = pg.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    res = cli(workdir, db, "copy", "--to", with_password)
    assert res.code == 0, res.err
    assert "s3cret" not in res.out + res.err
    assert "jobs          5 (1 blocked, 1 dead, 1 queued, 1 scheduled, 1 succeeded)" in res.out
    assert "schedules     1" in res.out
    assert f"{db} is retired" in res.out

    # the same jobs, by the same ids, with their history
    for name, job_id in ids.items():
        on_pg = record(workdir, pg, job_id)  # type: ignore[arg-type]
        on_file = record(workdir, db, job_id)  # the file is still read
        for field in ("state", "task", "args", "attempts", "result", "error", "run_at"):
            assert on_pg[field] == on_file[field], (name, field)
    dead = cli(workdir, pg, "dlq", "list", "--json")  # type: ignore[arg-type]
    assert [j["id"] for j in dead.json()] == [ids["dead"]]
    with contextlib.closing(open_store(pg)) as store:
        assert {s.name: s.last_fire for s in store.schedule_list()} == {"nightly": 1_700_000_000.0}
        # the kept counts came along (COPY fires the counting triggers)
        assert store.job_counts() == {
            ("blocked", "default"): 1,
            ("dead", "default"): 1,
            ("queued", "default"): 1,
            ("scheduled", "default"): 1,
            ("succeeded", "default"): 1,
        }
    with contextlib.closing(open_store(str(db), create=False)) as store:
        events = [(e.seq, e.job_id, e.type) for e in store.events_after(0, limit=10_000)]
    assert len(events) >= 9  # submitted, claimed, ended... for five jobs
    with contextlib.closing(open_store(pg)) as store:
        assert [(e.seq, e.job_id, e.type) for e in store.events_after(0, limit=10_000)] == events

    # the file refuses writers, saying where its jobs went
    res = cli(workdir, db, "submit", "tasks:ok")
    assert_one_line_error(res, str(db), "retired", "copied to", "postgres:***@")
    with contextlib.closing(open_store(str(db), create=False)) as store:
        assert len(store.job_list(None, None, 100)) == 5

    # on PostgreSQL, the work goes on: new ids follow the copied ones, waiting jobs run
    newer = submit(workdir, pg, "tasks:ok")  # type: ignore[arg-type]
    assert newer > max(ids.values())
    daemons.append(Daemon(workdir, pg, "--workers", "1"))  # type: ignore[arg-type]
    # the blocked job's dependency came along: it runs once the job it waits for did
    for job_id in (ids["waiting"], newer, ids["blocked"]):
        res = cli(workdir, pg, "wait", str(job_id), "--timeout", "30s")  # type: ignore[arg-type]
        assert res.code == 0, res.err
    assert record(workdir, pg, ids["later"])["state"] == "scheduled"  # type: ignore[arg-type]


def test_a_daemon_attached_to_the_file_stops_the_copy(
    workdir: Path, db: Path, pg: str, daemons: list[Daemon]
) -> None:
    submit(workdir, db, "tasks:ok")
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    res = cli(workdir, db, "copy", "--to", pg)
    assert_one_line_error(res, str(db), "a daemon is attached", "nothing was copied")
    assert count(pg, "jobs") == 0
    submit(workdir, db, "tasks:ok")  # the file is not retired


def test_a_target_with_jobs_is_refused(workdir: Path, db: Path, pg: str) -> None:
    submit(workdir, db, "tasks:ok")
    mine = submit(workdir, pg, "tasks:ok")  # type: ignore[arg-type]
    res = cli(workdir, db, "copy", "--to", pg)
    assert_one_line_error(res, "not empty", "jobs: 1")
    assert count(pg, "jobs") == 1 and record(workdir, pg, mine)["state"] == "queued"  # type: ignore[arg-type]
    submit(workdir, db, "tasks:ok")  # the file is not retired


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["copy", "--to", "other.db"], ["--to", "postgresql://"]),
        (["copy", "--to", "postgresql://nobody@127.0.0.1:1/none"], ["127.0.0.1"]),
    ],
)
def test_bad_targets_are_refused(
    workdir: Path, db: Path, argv: list[str], fragments: list[str]
) -> None:
    submit(workdir, db, "tasks:ok")
    res = cli(workdir, db, *argv)
    assert res.code in (2, 3) and res.out == "" and res.err.count("\n") == 1, res.err
    assert all(f in res.err for f in fragments), res.err
    submit(workdir, db, "tasks:ok")  # the file is not retired


def test_the_source_must_be_a_jobrunner_file(workdir: Path, db: Path, pg: str) -> None:
    res = cli(workdir, db, "copy", "--to", pg)  # no file yet
    assert_one_line_error(res, str(db), "no jobrunner database")
    res = cli(workdir, db, "--db", pg, "copy", "--to", pg)
    assert_one_line_error(res, "already a PostgreSQL database")
    assert count(pg, "jobs") == 0
