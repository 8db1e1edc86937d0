"""Acting on every job a filter matches: the dashboard's cancel, retry and delete of "all
that match", which say how many before they act. Only jobs the action applies to are
counted and touched: a cancel takes jobs not yet ended, a retry dead ones, a delete ended
ones (and their output). The matches are found window by window (store.job_search), and
acted on in small transactions, so the write lock is never held long."""

from __future__ import annotations

import contextlib

from jobrunner.errors import JobNotFound, UsageError
from jobrunner.lifecycle import State
from jobrunner.models import JobQuery
from jobrunner.ops.control import ENDED, NOT_ENDED, CancelOutcome, cancel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.store.base import Store

ACTIONS: dict[str, tuple[State, ...]] = {
    "cancel": NOT_ENDED,
    "retry": (State.DEAD,),
    "delete": ENDED,
}
BATCH = 500  # jobs per transaction when acting


def narrowed(query: JobQuery, action: str) -> JobQuery | None:
    """`query` restricted to the states `action` applies to; None: it matches none."""
    if action not in ACTIONS:
        raise UsageError(f"action: expected one of {', '.join(ACTIONS)}, got {action!r}")
    eligible = [s.value for s in ACTIONS[action]]
    states = eligible if query.states is None else [s for s in query.states if s in eligible]
    if not states:
        return None
    return JobQuery(
        states=states,
        queue=query.queue,
        task=query.task,
        text=query.text,
        since=query.since,
        until=query.until,
    )


def matching(store: Store, query: JobQuery, action: str) -> list[int]:
    """The ids of the jobs `query` matches that `action` applies to, newest first."""
    wanted = narrowed(query, action)
    return [] if wanted is None else store.job_search_ids(wanted)


def count(store: Store, query: JobQuery, action: str) -> int:
    """How many jobs `action` would change now. By states (and queue) alone, the kept
    counts say at once; any other filter is counted window by window."""
    wanted = narrowed(query, action)
    if wanted is None:
        return 0
    if wanted == JobQuery(states=wanted.states, queue=wanted.queue):
        states = set(wanted.states or ())
        return sum(
            n
            for (state, queue), n in store.job_counts().items()
            if state in states and wanted.queue in (None, queue)
        )
    return len(store.job_search_ids(wanted))


def act(store: Store, action: str, job_ids: list[int], now: float) -> int:
    """Do `action` to the jobs named, in batches; returns how many it changed (a job
    that changed meanwhile, say ended before its cancel, is left as it is)."""
    done = 0
    for start in range(0, len(job_ids), BATCH):
        chunk = job_ids[start : start + BATCH]
        if action == "cancel":
            for job_id in chunk:
                with contextlib.suppress(JobNotFound):  # deleted meanwhile
                    if cancel(store, job_id, now).outcome is not CancelOutcome.ALREADY_ENDED:
                        done += 1
        elif action == "retry":
            from jobrunner.ops import wake_daemons

            moved = store.job_retry_dead(chunk, now)
            done += len(moved)
            if moved:
                wake_daemons(store)
        elif action == "delete":
            deleted = store.job_delete_ids(chunk)
            store.output().delete(deleted)
            done += len(deleted)
        else:
            raise UsageError(f"action: expected one of {', '.join(ACTIONS)}, got {action!r}")
    return done
