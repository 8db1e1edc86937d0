"""Controlling jobs: cancel, dlq retry, prune and dlq purge."""

from __future__ import annotations

import enum

from jobrunner.errors import UsageError
from jobrunner.lifecycle import FINAL, State
from jobrunner.ops import get_job, wake_daemons
from jobrunner.record import Record
from jobrunner.store import WAKE_CANCEL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from jobrunner.store.base import Store

ENDED = (State.SUCCEEDED, State.DEAD, State.CANCELLED)  # what `prune` deletes, in this order
# what `cancel --state/--queue` takes, in this order
NOT_ENDED = (State.BLOCKED, State.SCHEDULED, State.QUEUED, State.RETRYING, State.RUNNING)


class CancelOutcome(enum.StrEnum):
    CANCELLED = "cancelled"  # it was waiting (blocked, queued, scheduled, retrying): cancelled now
    REQUESTED = "requested"  # it is running: its daemon was told to kill it
    ALREADY_ENDED = "already_ended"  # it had ended (`Cancellation.state` says how); unchanged


class Cancellation(Record):
    outcome: CancelOutcome
    state: State  # the job's state after the call


class RetryResult(Record):
    """What `retry` did. When a job named is unknown or not dead, nothing is moved."""

    moved: list[int]  # queued again, each with a fresh round of attempts, in order
    not_dead: dict[int, State]  # named but not in the dead-letter queue: the state it had
    unknown: list[int]  # named but no such job
    kept: int = 0  # every dead job asked for: how many stayed (they failed for good)


class PruneResult(Record):
    removed: dict[str, int]  # jobs deleted, with their logs, by final state

    @property
    def total(self) -> int:
        return sum(self.removed.values())


def cancel(store: Store, job_id: int, now: float) -> Cancellation:
    """Cancel a job: one waiting is cancelled at once; for one running, the cancel is
    recorded and its daemon woken to kill the job's processes (`waiting.wait_for_stop`
    waits for that). JobNotFound if there is no such job."""
    return cancel_many(store, [job_id], now)[job_id]


def cancel_many(store: Store, job_ids: Sequence[int], now: float) -> dict[int, Cancellation]:
    """`cancel` for each job, in order, each in its own transaction; the daemons are woken
    once. Every id is looked up first: if one is unknown (JobNotFound), nothing changes."""
    # job_cancel reports "cancelled" both for a waiting job it just cancelled and for one
    # cancelled long ago; only the first is news, so an ended job is told apart first.
    states = {job_id: get_job(store, job_id).state for job_id in job_ids}
    done: dict[int, Cancellation] = {}
    for job_id, state in states.items():
        if state in FINAL:
            done[job_id] = Cancellation(CancelOutcome.ALREADY_ENDED, state)
            continue
        result = store.job_cancel(job_id, now)
        if result.state == "cancelled":
            done[job_id] = Cancellation(CancelOutcome.CANCELLED, State.CANCELLED)
        elif result.state == "requested":
            done[job_id] = Cancellation(CancelOutcome.REQUESTED, State.RUNNING)
        else:  # it ended meanwhile
            done[job_id] = Cancellation(CancelOutcome.ALREADY_ENDED, State(result.state))
    if any(c.outcome is CancelOutcome.REQUESTED for c in done.values()):
        wake_daemons(store, WAKE_CANCEL)
    return done


def matching(store: Store, states: Sequence[State], queue: str | None) -> dict[int, State]:
    """The jobs that have not ended, in `states` and `queue` (None: any), with their state:
    what `cancel --state/--queue` would cancel."""
    found: dict[int, State] = {}
    for state in states:
        if state in FINAL:
            raise UsageError(f"--state: a job {state} has ended; nothing to cancel")
        found.update(dict.fromkeys(store.job_ids(state.value, queue), state))
    return dict(sorted(found.items()))


def retry(store: Store, job_ids: Sequence[int] | None, now: float) -> RetryResult:
    """`dlq retry`: give dead jobs a fresh round of attempts; their earlier attempts and
    errors stay. `job_ids` None: every dead job but those that failed for good (their
    error begins "not retried: ": the task cannot run as named, which a retry changes
    only once the code is fixed; they are retried when named). Jobs named are checked
    first, and if any is unknown or not dead nothing is moved (the result says which)."""
    not_dead: dict[int, State] = {}
    unknown: list[int] = []
    for job_id in job_ids or ():
        job = store.job_get(job_id)
        if job is None:
            unknown.append(job_id)
        elif job.state is not State.DEAD:
            not_dead[job_id] = job.state
    if not_dead or unknown:
        return RetryResult([], not_dead, unknown)
    moved = store.job_retry_dead(job_ids, now)
    if moved:
        wake_daemons(store)
    kept = 0
    if job_ids is None:
        kept = sum(n for (state, _), n in store.job_counts().items() if state == State.DEAD)
    return RetryResult(moved, {}, [], kept)


def prunable(
    store: Store, older_than: float, now: float, states: Sequence[State] = ENDED
) -> PruneResult:
    """What `prune` with the same arguments would delete now (--dry-run, confirmations)."""
    before = now - older_than
    return PruneResult(
        {state.value: store.job_count_ended(state.value, before) for state in states}
    )


def prune(
    store: Store,
    older_than: float,
    now: float,
    states: Sequence[State] = ENDED,
    on_batch: Callable[[int], None] | None = None,
) -> PruneResult:
    """Delete the jobs in `states` (final ones) that ended more than `older_than` seconds
    before `now`, and their logs; in small transactions, so the write lock is never held
    long. `on_batch` is called with the count of each batch deleted."""
    from jobrunner.retention import prune as delete_ended

    before = now - older_than
    removed, _ = delete_ended(store, [(state, before) for state in states], on_batch=on_batch)
    return PruneResult(removed)


def purge_dead(
    store: Store, older_than: float, now: float, on_batch: Callable[[int], None] | None = None
) -> PruneResult:
    """`dlq purge`: `prune` for dead jobs only."""
    return prune(store, older_than, now, (State.DEAD,), on_batch)
