"""`[postgres] listen = false`: for a database reached through a pooler in transaction
mode (PgBouncer), where a LISTEN does not stay on the connection it was made on. Nothing
then listens; daemons claim at each poll_interval and look for cancel requests as often,
and `wait` looks at the database every second. Real daemon, real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import TASKS_SOURCE, job, ledger, submit, write_module
from tests.store.pg_support import fresh_database

LISTENING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND query LIKE 'LISTEN %'
"""


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # type: ignore[override]
    monkeypatch.setenv("JOBRUNNER_PG_LOGS", str(tmp_path / "pg-logs"))
    with fresh_database() as url:
        yield url


def write_polling_config(workdir: Path, listen: str) -> None:
    # a lease of 90 s: a heartbeat every 30 s, far slower than the polls
    (workdir / "jobrunner.toml").write_text(
        '[daemon]\npoll_interval = "200ms"\nlease = "90s"\nkill_grace = "1s"\n'
        'shutdown_grace = "5s"\n'
        f"[postgres]\nlisten = {listen}\n"
    )
    write_module(workdir, "jtasks", TASKS_SOURCE)


def listening(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(LISTENING).fetchone()[0])


def test_without_listen_nothing_listens_and_jobs_run_wait_and_cancel_by_polling(
    workdir: Path, db: str, daemons: list[Daemon]
) -> None:
    write_polling_config(workdir, "false")
    daemons.append(Daemon(workdir, db, "--workers", "2"))  # type: ignore[arg-type]

    quick = submit(workdir, db, "jtasks:record", "--args", '["quick"]')  # type: ignore[arg-type]
    res = cli(workdir, db, "wait", str(quick), "--timeout", "20s")  # type: ignore[arg-type]
    assert res.code == 0, res.err
    assert res.out.strip() == '"quick"'
    assert listening(db) == 0  # neither the daemon nor `wait` listened

    # a cancel wakes nobody: the daemon finds it at its next look, well before a heartbeat
    slow = submit(workdir, db, "jtasks:slow", "--args", '["s", 60]')  # type: ignore[arg-type]
    wait_for(lambda: any(e.tag == "s" for e in ledger(workdir)), timeout=20, what="slow started")
    asked = time.monotonic()
    res = cli(workdir, db, "cancel", str(slow))  # type: ignore[arg-type]
    assert res.code == 0, res.err
    wait_for(
        lambda: job(workdir, db, slow)["state"] == "cancelled",  # type: ignore[arg-type]
        timeout=20,
        what="the running job cancelled",
    )
    # not the 30 s heartbeat; room for a loaded machine (a CI run under load took 6.4 s
    # for the cancel command, the kill and the readings after it)
    assert time.monotonic() - asked < 12.0
    assert listening(db) == 0


def test_with_listen_the_daemon_listens(workdir: Path, db: str, daemons: list[Daemon]) -> None:
    """The premise of the test above: by default a daemon's wake-ups come by LISTEN."""
    write_polling_config(workdir, "true")
    daemons.append(Daemon(workdir, db))  # type: ignore[arg-type]
    assert listening(db) == 1


def test_a_listen_that_is_not_true_or_false_is_refused(workdir: Path, db: str) -> None:
    (workdir / "jobrunner.toml").write_text('[postgres]\nlisten = "no"\n')
    res = cli(workdir, db, "submit", "--cmd", "--", "true")  # type: ignore[arg-type]
    assert res.code == 2
    assert res.err.strip().splitlines() == [
        "jobrunner: error: jobrunner.toml:2: postgres.listen: expected true or false, got 'no'"
    ]
    with psycopg.connect(db) as conn:  # nothing written: not even the schema
        assert conn.execute("SELECT to_regclass('jobs')").fetchone()[0] is None
