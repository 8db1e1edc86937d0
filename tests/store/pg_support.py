"""A fresh PostgreSQL database per test on the local server (this machine kind runs
PostgreSQL 15 on 127.0.0.1:5432 with trust auth, and CI the same), dropped after.
JOBRUNNER_TEST_PG names another server's maintenance database."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

ADMIN = os.environ.get("JOBRUNNER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database; dropped (with any connection left) after."""
    name = f"jr_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
