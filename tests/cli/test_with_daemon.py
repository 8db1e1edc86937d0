"""Commands on jobs a real daemon has run: wait, logs, status, cancel, dlq, prune.

One daemon per module runs a fixed set of jobs (`live`); tests that only read use
it while it keeps running. Tests that change jobs get their own copy of its database
and logs (`ran`), taken with SQLite's backup API once every job had ended (on
PostgreSQL, JOBRUNNER_TEST_BACKEND=postgresql: a database made from a template of it,
output and all).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import (
    ISO_UTC,
    RECORD_KEYS,
    assert_one_line_error,
    backdate,
    is_url,
    log_path,
    record,
    records,
    submit,
    write_tasks,
)
from tests.conftest import DEFAULT_BACKEND
from tests.helpers import Daemon, cli, env_for, wait_for

FINAL = {"succeeded", "dead", "cancelled"}


@dataclass
class Ran:
    workdir: Path
    db: Path
    ok: int  # succeeded, returned {"x": 5}
    quiet: int  # succeeded, returned None, printed nothing
    say: int  # succeeded, printed to stdout and stderr
    dead: int  # failed once with --retries 0
    dead2: int  # failed twice with --retries 1


def _snapshot(src: Path, dest: Path) -> None:
    import apsw

    source = apsw.Connection(str(src), flags=apsw.SQLITE_OPEN_READONLY)
    target = apsw.Connection(str(dest))
    try:
        with target.backup("main", source, "main") as backup:
            backup.step()
    finally:
        target.close()
        source.close()


@pytest.fixture(scope="module")
def live_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The module's database: a file, or a PostgreSQL database (and a template of it,
    `<name>_tpl`, made by `live`) with the test run's backend."""
    if DEFAULT_BACKEND == "sqlite":
        yield tmp_path_factory.mktemp("live") / "jobs.db"
        return
    from tests.store.pg_support import fresh_database

    with fresh_database() as url:
        try:
            yield url  # type: ignore[misc]
        finally:
            with psycopg_admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{template_of(url)}" WITH (FORCE)')


def template_of(url: str) -> str:
    return url.rsplit("/", 1)[1] + "_tpl"


@contextlib.contextmanager
def psycopg_admin() -> Iterator[Any]:
    import psycopg

    from tests.store.pg_support import ADMIN

    with psycopg.connect(ADMIN, autocommit=True) as admin:
        yield admin


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, live_db: Path) -> Iterator[Ran]:
    """A running daemon serving the `default` queue, and five jobs it ran to the end."""
    workdir = tmp_path_factory.mktemp("live")
    db = live_db
    write_tasks(workdir)
    env = {**env_for(workdir, db), "JOBRUNNER_PG_LOGS": str(workdir / "pg-logs")}
    daemon = Daemon(workdir, db, "--workers", "2", "--queues", "default", env=env)
    try:
        r = Ran(
            workdir=workdir,
            db=db,
            ok=submit(workdir, db, "tasks:ok", "--args", "[5]"),
            quiet=submit(workdir, db, "tasks:quiet"),
            say=submit(workdir, db, "tasks:say", "--args", '["hello"]'),
            dead=submit(workdir, db, "tasks:fail", "--retries", "0"),
            dead2=submit(workdir, db, "tasks:fail", "--retries", "1", "--backoff", "10ms"),
        )
        wait_for(
            lambda: all(j["state"] in FINAL for j in records(workdir, db)),
            timeout=30,
            what="all jobs ended",
        )
        if is_url(db):  # a template must have no connection: the daemon stops for it
            daemon.stop()
            with psycopg_admin() as admin:
                name = str(db).rsplit("/", 1)[1]
                admin.execute(f'CREATE DATABASE "{template_of(str(db))}" TEMPLATE "{name}"')
            daemon = Daemon(workdir, db, "--workers", "2", "--queues", "default", env=env)
        else:
            _snapshot(db, workdir / "template.db")
            shutil.copytree(log_path(db, 0).parent, workdir / "template.logs")
        yield r
    finally:
        workers = daemon.worker_pids()
        daemon.stop()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def ran(live: Ran, workdir: Path, db: Path) -> Ran:
    """This test's own copy of `live`'s database and logs, with no daemon serving it."""
    write_tasks(workdir)
    if is_url(db):  # the test's fresh database, made again from the template
        name = str(db).rsplit("/", 1)[1]
        with psycopg_admin() as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_of(str(live.db))}"')
    else:
        shutil.copyfile(live.workdir / "template.db", db)
        shutil.copytree(live.workdir / "template.logs", log_path(db, 0).parent)
    return replace(live, workdir=workdir, db=db)


# -- wait -------------------------------------------------------------------------------


def test_wait_prints_the_result_of_a_succeeded_job(live: Ran) -> None:
    for job_id, out in ((live.ok, '{"x": 5}\n'), (live.quiet, "null\n"), (live.say, '"hello"\n')):
        res = cli(live.workdir, live.db, "wait", str(job_id))
        assert (res.code, res.out, res.err) == (0, out, "")


def test_wait_for_a_job_while_it_runs(live: Ran) -> None:
    job_id = submit(live.workdir, live.db, "tasks:ok", "--kwargs", '{"x": "late"}')
    res = cli(live.workdir, live.db, "wait", str(job_id), "--timeout", "30s")
    assert (res.code, res.out) == (0, '{"x": "late"}\n')


def test_wait_on_a_dead_job_exits_1(live: Ran) -> None:
    res = cli(live.workdir, live.db, "wait", str(live.dead))
    assert res.code == 1
    assert res.out == ""
    assert "dead" in res.err and "ValueError: boom" in res.err
    assert "Traceback" not in res.err


# -- status, list, logs, cancel ---------------------------------------------------------


def test_status_shows_the_running_daemon(live: Ran) -> None:
    data = cli(live.workdir, live.db, "status", "--json").json()
    assert [(d["alive"], d["workers"], d["queues"]) for d in data["daemons"]] == [
        (True, 2, ["default"])
    ]
    (daemon,) = data["daemons"]
    for key in ("started_at", "heartbeat_at", "lease_until"):  # UTC, and epoch seconds
        assert ISO_UTC.match(daemon[key]), (key, daemon)
        assert isinstance(daemon[f"{key}_epoch"], float), (key, daemon)
    assert daemon["started_at"] <= daemon["heartbeat_at"] < daemon["lease_until"]
    assert data["counts"]["succeeded"] >= 3 and data["counts"]["dead"] == 2
    assert {j["id"] for j in data["recent_failures"]} == {live.dead, live.dead2}
    human = cli(live.workdir, live.db, "status")
    assert human.code == 0, human.err
    assert "No daemon is running" not in human.out
    assert "Daemons" in human.out and "tasks:fail" in human.out


def test_status_of_finished_jobs(live: Ran) -> None:
    done = record(live.workdir, live.db, live.ok)
    assert set(done) >= RECORD_KEYS
    assert (done["state"], done["result"], done["error"]) == ("succeeded", {"x": 5}, None)
    for key in ("created_at", "run_at", "started_at", "finished_at"):
        assert ISO_UTC.match(done[key]), (key, done[key])
    assert done["started_at"] <= done["finished_at"]
    assert [a["outcome"] for a in done["attempt_history"]] == ["succeeded"]

    dead = record(live.workdir, live.db, live.dead2)
    assert dead["state"] == "dead" and dead["max_attempts"] == 2
    assert "ValueError: boom" in dead["error"]
    assert [a["outcome"] for a in dead["attempt_history"]] == ["failed", "failed"]
    assert all("Traceback" in a["traceback"] for a in dead["attempt_history"])
    listed = {j["id"]: j for j in records(live.workdir, live.db)}
    assert listed[live.dead2]["attempts"] == 2 and listed[live.ok]["attempts"] == 1
    assert dead["attempts"] == 2  # the count, as in list --json; the history is separate


def test_logs(live: Ran) -> None:
    res = cli(live.workdir, live.db, "logs", str(live.say))
    assert res.code == 0, res.err
    assert "out:hello\n" in res.out and "err:hello\n" in res.out


@pytest.mark.parametrize("which", ["ok", "quiet"])
def test_logs_of_a_job_without_output_prints_nothing(live: Ran, which: str) -> None:
    res = cli(live.workdir, live.db, "logs", str(getattr(live, which)))
    assert (res.code, res.out, res.err) == (0, "", "")


@pytest.mark.parametrize("which", ["ok", "dead"])
def test_cancel_an_ended_job_exits_1(ran: Ran, which: str) -> None:
    job_id = getattr(ran, which)
    before = record(ran.workdir, ran.db, job_id)
    res = cli(ran.workdir, ran.db, "cancel", str(job_id))
    assert_one_line_error(res, str(job_id), f"already ended {before['state']}", code=1)
    assert record(ran.workdir, ran.db, job_id) == before


# -- dlq --------------------------------------------------------------------------------


def test_dlq_list(live: Ran) -> None:
    res = cli(live.workdir, live.db, "dlq", "list")
    assert res.code == 0, res.err
    rows = [ln.split() for ln in res.out.splitlines() if ln.strip()[:1].isdigit()]
    assert [(int(r[0]), r[1], r[2]) for r in rows] == [
        (live.dead2, "dead", "tasks:fail"),
        (live.dead, "dead", "tasks:fail"),
    ]
    jobs = cli(live.workdir, live.db, "dlq", "list", "--json").json()
    assert [j["id"] for j in jobs] == [live.dead2, live.dead]
    assert all(j["state"] == "dead" and set(j) >= RECORD_KEYS for j in jobs)


def test_dlq_show_has_every_attempts_traceback(live: Ran) -> None:
    res = cli(live.workdir, live.db, "dlq", "show", str(live.dead2))
    assert res.code == 0, res.err
    assert "attempt 1 traceback:" in res.out and "attempt 2 traceback:" in res.out
    assert res.out.count("Traceback (most recent call last)") == 2
    assert res.out.count('raise ValueError("boom")') == 2
    assert "tasks.py" in res.out
    data = cli(live.workdir, live.db, "dlq", "show", str(live.dead2), "--json").json()
    assert [a["attempt"] for a in data["attempt_history"]] == [1, 2]


def test_dlq_show_refuses_a_succeeded_job(live: Ran) -> None:
    res = cli(live.workdir, live.db, "dlq", "show", str(live.ok))
    assert_one_line_error(res, str(live.ok), "succeeded")


def test_dlq_retry_gives_a_fresh_round(ran: Ran) -> None:
    w, db = ran.workdir, ran.db
    before = record(w, db, ran.dead2)
    res = cli(w, db, "dlq", "retry", str(ran.dead2))
    assert (res.code, res.out) == (0, f"{ran.dead2}\n")
    after = record(w, db, ran.dead2)
    assert after["state"] == "queued"
    assert after["error"] is None and after["finished_at"] is None
    assert after["max_attempts"] == before["max_attempts"] + 2  # --retries 1: two more
    assert after["attempt_history"] == before["attempt_history"]  # the history stays
    assert record(w, db, ran.dead)["state"] == "dead"
    assert [j["id"] for j in cli(w, db, "dlq", "list", "--json").json()] == [ran.dead]


def test_dlq_retry_runs_the_fresh_attempts(ran: Ran, daemons: list[Daemon]) -> None:
    w, db = ran.workdir, ran.db
    assert cli(w, db, "dlq", "retry", str(ran.dead)).code == 0
    daemons.append(Daemon(w, db, "--workers", "1"))
    res = cli(w, db, "wait", str(ran.dead), "--timeout", "30s")
    assert res.code == 1
    rec = record(w, db, ran.dead)
    assert (rec["state"], rec["max_attempts"]) == ("dead", 2)
    assert [a["attempt"] for a in rec["attempt_history"]] == [1, 2]
    show = cli(w, db, "dlq", "show", str(ran.dead))
    assert show.out.count("Traceback (most recent call last)") == 2


def test_dlq_retry_all(ran: Ran) -> None:
    w, db = ran.workdir, ran.db
    res = cli(w, db, "dlq", "retry", "--all")
    assert res.code == 0, res.err
    assert sorted(int(i) for i in res.out.split()) == [ran.dead, ran.dead2]
    assert {record(w, db, i)["state"] for i in (ran.dead, ran.dead2)} == {"queued"}
    assert cli(w, db, "dlq", "list", "--json").json() == []
    assert record(w, db, ran.ok)["state"] == "succeeded"


def test_dlq_purge_removes_dead_jobs_only(ran: Ran) -> None:
    w, db = ran.workdir, ran.db
    parked = submit(w, db, "tasks:ok")
    res = cli(w, db, "dlq", "purge", "--yes")
    assert (res.code, res.out) == (0, "purged 2 dead job(s)\n")
    remaining = {j["id"]: j["state"] for j in records(w, db)}
    assert remaining == {
        ran.ok: "succeeded",
        ran.quiet: "succeeded",
        ran.say: "succeeded",
        parked: "queued",
    }
    assert "empty" in cli(w, db, "dlq", "list").out
    assert cli(w, db, "status", str(ran.dead)).code == 2


def test_dlq_purge_older_than_keeps_recent_ones(ran: Ran) -> None:
    w, db = ran.workdir, ran.db
    res = cli(w, db, "dlq", "purge", "--older-than", "1h", "--yes")
    assert (res.code, res.out) == (0, "purged 0 dead job(s)\n")
    assert len(records(w, db)) == 5
    backdate(db, ran.dead, 7200)
    backdate(db, ran.ok, 7200)
    res = cli(w, db, "dlq", "purge", "--older-than", "1h", "--yes")
    assert (res.code, res.out) == (0, "purged 1 dead job(s)\n")
    assert {j["id"] for j in records(w, db)} == {ran.ok, ran.quiet, ran.say, ran.dead2}


# -- prune ------------------------------------------------------------------------------


def test_prune_removes_old_ended_jobs_and_their_logs(ran: Ran) -> None:
    w, db = ran.workdir, ran.db
    queued = submit(w, db, "tasks:ok")  # no daemon serves this copy
    files = not is_url(db)  # PostgreSQL keeps output in the database: deleted with the job
    assert not files or log_path(db, ran.say).exists()
    for job_id in (ran.say, ran.dead, queued):
        backdate(db, job_id, 7200)
    res = cli(w, db, "prune", "--older-than", "1h", "--yes")
    assert (res.code, res.out) == (0, "pruned 2 job(s)\n")
    remaining = {j["id"]: j["state"] for j in records(w, db)}
    assert remaining == {
        ran.ok: "succeeded",
        ran.quiet: "succeeded",
        ran.dead2: "dead",
        queued: "queued",
    }
    assert not files or not log_path(db, ran.say).exists()
    assert_one_line_error(cli(w, db, "logs", str(ran.say)), str(ran.say))
