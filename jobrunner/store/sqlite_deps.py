"""The SQLite store's side of dependencies (store/dependencies.py): inserting a job that
runs after others, and settling the dependents of jobs that end, each inside the
caller's write transaction. One writer at a time: no locking beyond the transaction's."""

from __future__ import annotations

from jobrunner.jsonutil import dumps
from jobrunner.lifecycle import State
from jobrunner.models import InsertResult, JobInsert
from jobrunner.store import dependencies
from jobrunner.store.dependencies import Settled
from jobrunner.store.sqlite_sql import Q

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from jobrunner.store.dependencies import Run

BLOCKED = State.BLOCKED.value


def runner(db: Any) -> Run:
    """`run` for store/dependencies.py: a named query in `db`'s open transaction."""

    def run(name: str, params: tuple[Any, ...]) -> list[Any]:
        values = tuple(dumps(p) if isinstance(p, list) else p for p in params)
        return db.execute(Q[name], values).fetchall()

    return run


def insert_after(
    db: Any, job: JobInsert, row: tuple[Any, ...], now: float, index: int = 0
) -> tuple[InsertResult, set[str]]:
    """Insert `job` (its row as insert_row made it) blocked, with its dependencies, and
    settle it at once (the jobs it runs after may all have ended). Returns the insert's
    result and the queues that got a ready job."""
    row = (BLOCKED, *row[1:])
    if job.key is not None:
        got = db.execute(Q["job_insert_keyed"], row).fetchall()
        if not got:
            existing = db.execute(Q["job_id_by_key"], (job.key,)).fetchall()
            return InsertResult(existing[0][0], False), set()
        job_id = got[0][0]
    else:
        db.execute(Q["job_insert"], row)
        job_id = db.last_insert_rowid()
    settled = dependencies.submitted(runner(db), job_id, job.after, job.after_ended, now, index)
    record(db, settled)
    return InsertResult(job_id, True), settled.queues


def release(db: Any, ended: Sequence[int], now: float) -> set[str]:
    """Settle the dependents of the jobs `ended` in this transaction; the queues that got
    a ready job."""
    settled = dependencies.release(runner(db), ended, now)
    record(db, settled)
    return settled.queues


def revive(db: Any, retried: Sequence[int], now: float) -> None:
    """The dependents the deaths of `retried` (queued again in this transaction)
    cancelled wait for them again (dependencies.revive)."""
    record(db, dependencies.revive(runner(db), retried, now))


def record(db: Any, settled: Settled) -> None:
    if settled.events:
        db.executemany(Q["event_insert"], settled.events)
