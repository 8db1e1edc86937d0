"""A fresh PostgreSQL database per test on the local server (this machine kind runs
PostgreSQL 15 on 127.0.0.1:5432 with trust auth, and CI the same), dropped after.
JOBRUNNER_TEST_PG names another server's maintenance database.

Without a reachable server the PostgreSQL tests skip, saying why; in CI (CI=true) that
is a failure instead, so they can never silently stop running."""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

ADMIN = os.environ.get("JOBRUNNER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@functools.lru_cache(maxsize=1)
def _unreachable() -> str | None:
    try:
        psycopg.connect(ADMIN, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        return f"no PostgreSQL server at {ADMIN}: {str(exc).strip().splitlines()[0]}"
    return None


def require_server() -> None:
    """Skip (or, in CI, fail) the calling test when the server is not reachable."""
    why = _unreachable()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI runs every PostgreSQL test)", pytrace=False)
    pytest.skip(why)


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database; dropped (with any connection left) after."""
    require_server()
    name = f"jr_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
