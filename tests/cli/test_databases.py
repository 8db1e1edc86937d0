"""A database that is missing or not jobrunner's: a clear error, and the file untouched."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.support import assert_one_line_error, db_files
from tests.helpers import cli

pytestmark = pytest.mark.usefixtures("tasks")

COMMANDS = {
    "status": ["status"],
    "status-json": ["status", "--json"],
    "status-id": ["status", "1"],
    "list": ["list"],
    "list-json": ["list", "--json"],
    "submit": ["submit", "tasks:ok"],
    "submit-file": ["submit", "--file", "-"],
    "wait": ["wait", "1", "--timeout", "1s"],
    "logs": ["logs", "1"],
    "cancel": ["cancel", "1"],
    "prune": ["prune", "--older-than", "0s", "--yes"],
    "dlq-list": ["dlq", "list"],
    "dlq-retry-all": ["dlq", "retry", "--all"],
    "dlq-purge": ["dlq", "purge", "--yes"],
}
STDIN = '{"task": "tasks:ok"}\n'


def _random_file(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _other_app(path: Path) -> None:
    import apsw

    con = apsw.Connection(str(path))
    con.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO jobs (name) VALUES ('not ours')")
    con.close()


def _sqlite_header_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4080))


FOREIGN = {
    "random-bytes": _random_file,
    "other-app-sqlite": _other_app,
    "sqlite-header-then-garbage": _sqlite_header_garbage,
    "text-file": lambda p: p.write_text("id,state\n1,queued\n"),
}


# every command against the two common cases; the odder files against the main three
CASES = [
    pytest.param(make, argv, id=f"{kind}-{name}")
    for kind, make in FOREIGN.items()
    for name, argv in COMMANDS.items()
    if kind in ("random-bytes", "other-app-sqlite") or name in ("status", "list", "submit")
]


@pytest.mark.parametrize(("make", "argv"), CASES)
def test_foreign_file_is_refused_and_left_untouched(
    workdir: Path, db: Path, make: Callable[[Path], object], argv: list[str]
) -> None:
    foreign = workdir / "other.db"
    make(foreign)
    before = foreign.read_bytes()
    siblings = sorted(os.listdir(workdir))
    res = cli(workdir, db, "--db", str(foreign), *argv, input=STDIN)
    assert res.code != 0
    assert res.out == ""
    assert res.err.count("\n") == 1 and "Traceback" not in res.err, res.err
    assert "other.db" in res.err
    assert foreign.read_bytes() == before
    assert sorted(os.listdir(workdir)) == siblings


def test_foreign_file_error_says_what_it_is(workdir: Path, db: Path) -> None:
    _other_app(workdir / "other.db")
    res = cli(workdir, db, "--db", "other.db", "status")
    assert_one_line_error(res, "other.db", "another application", "untouched")
    _random_file(workdir / "random.db")
    res = cli(workdir, db, "--db", "random.db", "list")
    assert_one_line_error(res, "random.db", "not a jobrunner database")


READERS = {k: v for k, v in COMMANDS.items() if not k.startswith("submit")}


@pytest.mark.parametrize("argv", READERS.values(), ids=READERS.keys())
def test_missing_database_is_not_created(workdir: Path, db: Path, argv: list[str]) -> None:
    res = cli(workdir, db, *argv)
    assert_one_line_error(res, str(db), "no jobrunner database")
    assert db_files(db) == []


def test_missing_database_via_db_flag(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "--db", "elsewhere.db", "list")
    assert_one_line_error(res, "elsewhere.db")
    assert not (workdir / "elsewhere.db").exists()


def test_directory_as_database(workdir: Path, db: Path) -> None:
    (workdir / "adir").mkdir()
    res = cli(workdir, db, "--db", "adir", "status")
    assert res.code != 0 and res.err.count("\n") == 1 and "adir" in res.err
    assert os.listdir(workdir / "adir") == []


def test_submit_creates_the_database_and_reads_find_it(workdir: Path, db: Path) -> None:
    assert cli(workdir, db, "submit", "tasks:ok").code == 0
    assert db_files(db) != []  # the file, or on PostgreSQL its tables
    assert cli(workdir, db, "status").code == 0


def test_db_flag_wins_over_the_environment(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "--db", "flag.db", "submit", "tasks:ok")
    assert res.code == 0, res.err
    assert (workdir / "flag.db").exists() and db_files(db) == []


@pytest.mark.parametrize("argv", READERS.values(), ids=READERS.keys())
def test_an_empty_postgresql_database_is_not_made_ours(
    workdir: Path, db: Path, argv: list[str]
) -> None:
    """A PostgreSQL database without jobrunner's schema, as a missing file: commands
    that only read or change jobs say so and create nothing."""
    import psycopg

    from tests.store.pg_support import fresh_database

    with fresh_database() as url:
        res = cli(workdir, db, "--db", url, *argv)
        assert_one_line_error(res, url, "no jobrunner database")
        with psycopg.connect(url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).fetchone()[0]
        assert tables == 0
