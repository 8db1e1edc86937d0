"""PostgreSQL's schema: the migrations numbered without gaps, applied once each (also
by several processes at once, under the advisory lock), and the schema a migrated
database has equals the files replayed by hand."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jobrunner.store.pg.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from tests.store.pg_support import fresh_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def schema_of(conn: Any) -> list[tuple[Any, ...]]:
    """Every column (table, name, type, nullable, default) and index definition."""
    columns = conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity "
        "FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name <> 'jobrunner_schema' ORDER BY table_name, ordinal_position"
    ).fetchall()
    indexes = conn.execute(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND tablename <> 'jobrunner_schema' ORDER BY tablename, indexname"
    ).fetchall()
    return [*columns, *indexes]


def test_migrations_are_numbered_without_gaps() -> None:
    numbers = [n for n, _ in MIGRATIONS]
    assert numbers == list(range(1, len(numbers) + 1))
    assert numbers[-1] == SCHEMA_VERSION


def test_migrate_applies_each_once_and_the_schema_is_the_files_replayed(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert schema_version(conn) == 0
        assert migrate(conn) == [n for n, _ in MIGRATIONS]
        assert schema_version(conn) == SCHEMA_VERSION
        assert migrate(conn) == []  # current: nothing applied again
        migrated = schema_of(conn)
    tables = {row[0] for row in migrated}
    assert {"jobs", "attempts", "job_events", "daemons", "leases", "job_output"} <= tables
    with fresh_database() as other, psycopg.connect(other, autocommit=True) as conn:
        for _, sql in MIGRATIONS:
            conn.execute(sql)
        assert schema_of(conn) == migrated


def test_daemons_starting_together_apply_each_migration_once(pg_url: str) -> None:
    applied: list[list[int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def one() -> None:
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                start.wait(10)
                applied.append(migrate(conn))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(n for numbers in applied for n in numbers) == [n for n, _ in MIGRATIONS]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute("SELECT version FROM jobrunner_schema ORDER BY version").fetchall()
        assert [r[0] for r in rows] == [n for n, _ in MIGRATIONS]
        assert conn.execute("SELECT seq FROM cursors WHERE name = 'webhooks'").fetchone() == (0,)
