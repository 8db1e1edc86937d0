"""`jobrunner migrate`: the schema made or brought up to date, explicitly, on an SQLite
file and on PostgreSQL; another application's database or a newer schema refused with
one line and nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cli.support import assert_one_line_error
from tests.helpers import cli
from tests.store.pg_support import fresh_database


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def test_migrate_makes_the_schema_once_then_says_it_is_current(
    workdir: Path, db: Path, pg: str
) -> None:
    from jobrunner.store.pg.schema import SCHEMA_VERSION

    first = cli(workdir, db, "--db", pg, "migrate")
    assert first.code == 0, first.err
    numbers = ", ".join(str(n) for n in range(1, SCHEMA_VERSION + 1))
    assert first.out == f"applied migrations {numbers} to {pg}; schema version {SCHEMA_VERSION}\n"
    assert "jobs" in tables(pg) and "jobrunner_schema" in tables(pg)
    again = cli(workdir, db, "--db", pg, "migrate")
    assert again.code == 0, again.err
    assert again.out == f"{pg}: already up to date; schema version {SCHEMA_VERSION}\n"
    # and the database is one every command now finds
    counts = cli(workdir, db, "--db", pg, "status", "--json").json()["counts"]
    assert set(counts.values()) == {0}


def test_migrate_never_prints_a_password(workdir: Path, db: Path, pg: str) -> None:
    with_password = pg.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
    res = cli(workdir, db, "--db", with_password, "migrate")  # trust auth ignores it
    assert res.code == 0, res.err
    assert "hunter2" not in res.out + res.err
    assert "postgres:***@" in res.out


@pytest.mark.sqlite_only("a file's migrations (PostgreSQL: the tests above)")
def test_migrate_on_a_file(workdir: Path, db: Path) -> None:
    from jobrunner.store.sqlite_sql import SCHEMA_VERSION

    res = cli(workdir, db, "migrate")
    assert res.code == 0, res.err
    assert res.out == f"created a jobrunner database at {db}; schema version {SCHEMA_VERSION}\n"
    res = cli(workdir, db, "migrate")
    assert res.out == f"{db}: already up to date; schema version {SCHEMA_VERSION}\n"


def test_another_applications_tables_are_left_untouched(workdir: Path, db: Path, pg: str) -> None:
    with psycopg.connect(pg) as conn:
        conn.execute("CREATE TABLE jobs (id int PRIMARY KEY, title text)")
        conn.execute("INSERT INTO jobs VALUES (1, 'not ours')")
    for argv in (["migrate"], ["submit", "--cmd", "--", "true"], ["status"]):
        res = cli(workdir, db, "--db", pg, *argv)
        assert_one_line_error(res, pg, "another application", "(jobs)", "untouched")
    assert tables(pg) == ["jobs"]


def test_a_newer_schema_is_refused(workdir: Path, db: Path, pg: str) -> None:
    assert cli(workdir, db, "--db", pg, "migrate").code == 0
    with psycopg.connect(pg) as conn:
        conn.execute("INSERT INTO jobrunner_schema (version) VALUES (999)")
    for argv in (["migrate"], ["submit", "--cmd", "--", "true"], ["list"]):
        res = cli(workdir, db, "--db", pg, *argv)
        assert_one_line_error(res, pg, "schema version 999 is newer", "upgrade jobrunner")
    with psycopg.connect(pg) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
