"""An SQLite file's rows, read out whole for `jobrunner copy --to` (ops/copy.py), and
the mark that retires the file once they are in the other database: it is read (status,
list, logs), never written again, and whoever tries is told where its jobs went."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from jobrunner.errors import DatabaseRetired
from jobrunner.store.sqlite_sql import Q
from jobrunner.store.sqlite_tx import write_transaction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jobrunner.store.sqlite import SQLiteStore

# What moves, parents first: jobs and their history, schedules' state, the event feed and
# the webhook cursor, deliveries. Not daemons and leases: they belong to the processes
# that had the file open, and the copy refuses while one is alive.
COPIED = (
    "jobs",
    "job_deps",  # after jobs: on PostgreSQL each row names its job
    "attempts",
    "schedules",
    "job_events",
    "cursors",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
)


def retired_to(db: Any) -> tuple[str, float] | None:
    """Where the file's jobs were copied to, and when; None for a file in use."""
    rows = list(db.execute(Q["retired_get"]))
    return (str(rows[0][0]), float(rows[0][1])) if rows else None


def retired_error(path: str, retired: tuple[str, float]) -> DatabaseRetired:
    from jobrunner.models import iso

    where, when = retired
    return DatabaseRetired(
        f"{path}: retired: its jobs were copied to {where} at {iso(when)}; "
        f"use --db {where} (this file is only read now; nothing was written)"
    )


@contextlib.contextmanager
def export(store: SQLiteStore) -> Iterator[Exporter]:
    """The file held under its write lock (writers wait, then fail retryably), its rows
    read in one snapshot; `retire` before the block ends marks it, committed at the
    end. An exception in the block leaves the file as it was."""
    if store.retired is not None:
        raise retired_error(store.path, store.retired)
    with write_transaction(store.db, store.path) as db:
        yield Exporter(store, db)


class Exporter:
    def __init__(self, store: SQLiteStore, db: Any) -> None:
        self.store = store
        self.db = db

    def rows(self, table: str) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
        """The table's column names, and its rows in storage order."""
        if table not in COPIED:
            raise ValueError(f"not a table that is copied: {table!r}")
        columns = [r[0] for r in self.db.execute(Q["export_columns"], (table,))]
        cursor = self.db.execute(Q["export_rows"].format(table=table))
        return columns, (tuple(r) for r in cursor)

    def retire(self, target: str, now: float) -> None:
        self.db.execute(Q["retired_set"], (target, now))
