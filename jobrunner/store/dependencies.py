"""Jobs that run after others (`submit --after ID`, `--after-ended ID`), for every backend.

A job submitted after others is inserted `blocked`, with a row per job it runs after in
`job_deps`, and each of those jobs marked as having dependents. The transaction that
ends a marked job (its last attempt's end, a cancel, a rescue) settles its blocked
dependents in the same transaction: lifecycle.after_dependencies decides, this module
applies, so a job is claimable the moment the last job it waits for has ended, with no
poller, and a crash between the two cannot separate them. A cancel cascades: the
dependents of a job cancelled this way are settled in turn.

The backends differ only in SQL: each gives `run(name, params)`, which executes one of
its named queries (the `deps_*` ones) in the caller's transaction and returns the rows;
list parameters are passed as Python lists. See docs/architecture.md, "Dependencies".
"""

from __future__ import annotations

from jobrunner import lifecycle
from jobrunner.errors import UsageError
from jobrunner.lifecycle import ENDED, SUCCEEDED, Dependency, State
from jobrunner.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    Run = Callable[[str, tuple[Any, ...]], list[Any]]

# A job may run after at most this many others (a fan-in of a large fan-out is one
# merge job after each part: keep it a statement's worth).
MOST_DEPENDENCIES = 10_000


class UnknownDependency(UsageError):
    """A job names a job to run after that does not exist; nothing was written.
    `index`: that job's place in the submit's list, for the caller's message."""

    index: int | None = None


class Settled(Record):
    """What settling moved: the events to record (event_insert's parameters) and the
    queues that got ready jobs (to wake their daemons after the commit)."""

    events: list[tuple[Any, ...]]
    queues: set[str]


def check(after: Sequence[int], after_ended: Sequence[int], where: str = "") -> None:
    """Bad input before anything is written: ids that are not whole numbers, too many."""
    ids = [*after, *after_ended]
    for job_id in ids:
        if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id <= 0:
            raise UsageError(f"{where}after: {job_id!r} is not a job id")
    if len(set(ids)) > MOST_DEPENDENCIES:
        raise UsageError(f"{where}after: at most {MOST_DEPENDENCIES} jobs, got {len(set(ids))}")


def attach(run: Run, job_id: int, after: Sequence[int], after_ended: Sequence[int]) -> None:
    """Record that the new job `job_id` (inserted blocked) runs after `after` (which must
    succeed) and `after_ended` (which must only end), and mark those jobs. A job named
    in both must succeed. UsageError, the transaction to be rolled back, for an id that
    names no job. No cycle can form: a job can only name jobs that exist before it."""
    needs = {i: ENDED for i in after_ended}
    needs.update({i: SUCCEEDED for i in after})
    found = {row[0] for row in run("deps_mark", (sorted(needs),))}
    missing = sorted(set(needs) - found)
    if missing:
        shown = ", ".join(str(i) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise UnknownDependency(f"after: no job with id {shown}")
    for after_id, need in sorted(needs.items()):
        run("deps_insert", (job_id, after_id, need))


def submitted(
    run: Run, job_id: int, after: Sequence[int], after_ended: Sequence[int], now: float, index: int
) -> Settled:
    """In the submit's transaction, for the job `job_id` just inserted blocked: its
    `job.blocked` event, its dependencies (attach; UnknownDependency says its `index` in
    the submit), and what settling it at once moved (the jobs it names may have ended)."""
    data = {"after": list(after), "after_ended": list(after_ended)}
    settled = Settled([_event(now, job_id, 0, State.BLOCKED, data)], set())
    try:
        attach(run, job_id, after, after_ended)
    except UnknownDependency as exc:
        exc.index = index
        raise
    more = settle(run, [job_id], now)
    settled.events.extend(more.events)
    settled.queues |= more.queues
    return settled


def release(run: Run, ended: Sequence[int], now: float) -> Settled:
    """Settle the blocked jobs that run after the jobs `ended` (which have just ended, in
    this transaction, and have dependents)."""
    settled = Settled([], set())
    frontier = list(ended)
    while frontier:
        waiting = [row[0] for row in run("deps_waiting", (frontier,))]
        frontier = _settle(run, waiting, now, settled)
    return settled


def settle(run: Run, job_ids: Sequence[int], now: float) -> Settled:
    """Settle the blocked jobs `job_ids` now (a job just submitted after jobs that may
    all have ended already), and what their cancels cascade to."""
    settled = Settled([], set())
    cancelled = _settle(run, list(job_ids), now, settled)
    if cancelled:
        more = release(run, cancelled, now)
        settled.events.extend(more.events)
        settled.queues |= more.queues
    return settled


def revive(run: Run, retried: Sequence[int], now: float) -> Settled:
    """The jobs `retried` (dead, queued again by dlq retry in this transaction) take back
    the dependents their deaths cancelled, blocked again, and so on down what those
    cancels cascaded to: a fan-in waits again for the part that is retried. Only jobs
    cancelled for that reason (their error says so: lifecycle.ended_badly); a job
    cancelled by hand stays cancelled. One that another dependency still rules out (it
    died too) stays cancelled with its error naming that one instead, so retrying that
    one takes it back. A revived job waits for a job that has not ended: nothing is
    ready here."""
    settled = Settled([], set())
    frontier = [(job_id, State.DEAD) for job_id in retried]
    while frontier:
        after_id, ended = frontier.pop(0)
        reason = _cancelled(lifecycle.ended_badly(after_id, ended))
        candidates = [row[0] for row in run("deps_revivable", (after_id, reason))]
        if not candidates:
            continue
        deps = _dependencies_of(run, candidates)
        again = "was retried" if ended is State.DEAD else "waits again"
        data = {"reason": f"job {after_id} it runs after {again}"}
        for job_id in candidates:
            decision = lifecycle.after_dependencies(deps[job_id])
            if decision is not None and decision.state is State.CANCELLED:
                run("deps_recancel", (_cancelled(decision.reason), job_id, reason))
                continue
            rows = run("deps_revive", (job_id, reason))
            if rows:
                attempts, has_dependents = rows[0]
                settled.events.append(_event(now, job_id, attempts, State.BLOCKED, data))
                if has_dependents:
                    frontier.append((job_id, State.CANCELLED))
    return settled


def _settle(run: Run, waiting: list[int], now: float, settled: Settled) -> list[int]:
    """Move the blocked jobs `waiting` whose dependencies decide it; returns those
    cancelled that have dependents of their own (to settle next)."""
    if not waiting:
        return []
    deps = _dependencies_of(run, waiting)
    cascade: list[int] = []
    for job_id in waiting:
        decision = lifecycle.after_dependencies(deps[job_id])
        if decision is None:
            continue
        data = {"reason": decision.reason}
        if decision.state is State.CANCELLED:
            rows = run("deps_cancel", (now, _cancelled(decision.reason), job_id))
            if rows:
                attempts, has_dependents = rows[0]
                settled.events.append(_event(now, job_id, attempts, State.CANCELLED, data))
                if has_dependents:
                    cascade.append(job_id)
        else:
            rows = run("deps_ready", (now, job_id))
            if rows:
                state, attempts, queue = rows[0]
                settled.events.append(_event(now, job_id, attempts, State(state), data))
                settled.queues.add(queue)
    return cascade


def _cancelled(reason: str | None) -> str:
    """The error of a job cancelled for `reason`: one wording, which revive matches."""
    return f"cancelled: {reason}"


def _dependencies_of(run: Run, job_ids: list[int]) -> dict[int, list[Dependency]]:
    """Each of `job_ids` with the jobs it runs after, as lifecycle decides on them."""
    deps: dict[int, list[Dependency]] = {job_id: [] for job_id in job_ids}
    for job_id, after_id, need, state in run("deps_of", (job_ids,)):
        deps[job_id].append(Dependency(after_id, need, State(state) if state else None))
    return deps


def _event(now: float, job_id: int, attempt: int, state: State, data: Any) -> tuple[Any, ...]:
    from jobrunner.jsonutil import dumps

    return (now, job_id, attempt, lifecycle.EVENT_TYPES[state], state.value, dumps(data))
