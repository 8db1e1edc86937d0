"""PostgreSQL's side of dependencies (store/dependencies.py), inside the caller's
transaction. Unlike a file, several daemons end jobs at once here, so rows are locked
where two transactions could each miss the other's end: a submit locks the jobs it runs
after (deps_mark), a settle locks the dependents it decides (deps_waiting), both in id
order, as job_end_many ends its batch."""

from __future__ import annotations

from jobrunner.lifecycle import State
from jobrunner.models import InsertResult, JobInsert
from jobrunner.store import dependencies
from jobrunner.store.dependencies import Settled
from jobrunner.store.pg.feed import Q

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from jobrunner.store.dependencies import Run

BLOCKED = State.BLOCKED.value


def runner(cur: Any) -> Run:
    """`run` for store/dependencies.py: a named query on `cur`, in its transaction."""

    def run(name: str, params: tuple[Any, ...]) -> list[Any]:
        cur.execute(Q[name], params)
        return cur.fetchall() if cur.description is not None else []

    return run


def insert_after(
    cur: Any,
    job: JobInsert,
    row: tuple[Any, ...],
    now: float,
    events: list[tuple[Any, ...]],
    index: int = 0,
) -> tuple[InsertResult, set[str]]:
    """Insert `job` blocked with its dependencies and settle it at once; its events go
    to `events`. Returns the insert's result and the queues that got a ready job."""
    row = (BLOCKED, *row[1:])
    cur.execute(Q["job_insert" if job.key is None else "job_insert_keyed"], row)
    got = cur.fetchone()
    if got is None:
        cur.execute(Q["job_id_by_key"], (job.key,))
        return InsertResult(cur.fetchone()[0], False), set()
    job_id = got[0]
    settled = dependencies.submitted(runner(cur), job_id, job.after, job.after_ended, now, index)
    events.extend(settled.events)
    return InsertResult(job_id, True), settled.queues


def revive(cur: Any, retried: Sequence[int], now: float, events: list[tuple[Any, ...]]) -> None:
    """The dependents the deaths of `retried` (queued again in this transaction)
    cancelled wait for them again (dependencies.revive); their events go to `events`."""
    events.extend(dependencies.revive(runner(cur), sorted(retried), now).events)


def release(cur: Any, ended: Sequence[int], now: float, events: list[tuple[Any, ...]]) -> set[str]:
    """Settle the dependents of the jobs `ended` in this transaction; their events go to
    `events`. Returns the queues that got a ready job."""
    settled: Settled = dependencies.release(runner(cur), sorted(ended), now)
    events.extend(settled.events)
    return settled.queues
