"""Migrations for PostgreSQL: each file in migrations/ applied once, in order, in a
transaction of its own, under an advisory lock so that daemons starting together on many
hosts apply each exactly once (`jobrunner migrate`, and every daemon at start)."""

from __future__ import annotations

import os
import re

from jobrunner.errors import NotADatabase
from jobrunner.store.sqlfiles import numbered_files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# pg_advisory_xact_lock's key: "JobR" as a number, jobrunner's alone on a shared server
MIGRATION_LOCK = 0x4A6F6252
VERSION_TABLE = "jobrunner_schema"


MIGRATIONS = numbered_files(os.path.join(HERE, "migrations"))
SCHEMA_VERSION = MIGRATIONS[-1][0]
# The tables the first migration makes: one of them already there, without our version
# table, is another application's (a database is often shared with the application).
OUR_TABLES = re.findall(r"^CREATE TABLE (\w+)", MIGRATIONS[0][1], flags=re.M)


def check_ours(conn: Any, shown: str) -> int:
    """The schema version, after read-only checks: NotADatabase (nothing written) when
    the schema is newer than this jobrunner knows, or when tables jobrunner would make
    are already another application's."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise NotADatabase(
            f"{shown}: database schema version {version} is newer than this jobrunner "
            f"understands ({SCHEMA_VERSION}); upgrade jobrunner"
        )
    if version == 0:
        taken = conn.execute(
            "SELECT array_agg(t ORDER BY t) FROM unnest(%s::text[]) AS t "
            "WHERE to_regclass(t) IS NOT NULL",
            (OUR_TABLES,),
        ).fetchone()[0]
        if taken:
            raise NotADatabase(
                f"{shown}: holds tables of another application ({', '.join(taken)}) where "
                "jobrunner would make its own; left untouched (use another database or schema)"
            )
    return version


def schema_version(conn: Any) -> int:
    """The version the database is at (0: none applied, or not a jobrunner database)."""
    with conn.transaction():
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,)).fetchone()
        if not exists[0]:
            return 0
        row = conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
        return int(row[0] or 0)


def migrate(conn: Any) -> list[int]:
    """Apply the migrations the database lacks; returns their numbers ([] when it is
    current). Each runs in its own transaction holding the advisory lock, and checks the
    version again once it has the lock: a migration another process applied meanwhile is
    not applied twice. `conn`: a psycopg connection in autocommit mode."""
    applied = []
    for number, sql in MIGRATIONS:
        if number <= schema_version(conn):
            continue
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = conn.execute(
                f"SELECT 1 FROM {VERSION_TABLE} WHERE version = %s", (number,)
            ).fetchone()
            if done:
                continue
            conn.execute(sql)
            conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (%s)", (number,))
            applied.append(number)
    return applied
