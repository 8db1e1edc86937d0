"""The job state machine, in one place: states, who moves jobs in and out, and the
retry decision. Pure: no I/O, no clock (callers pass `now`)."""

from __future__ import annotations

import enum

from jobrunner.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random


class State(enum.StrEnum):
    # Waits for the jobs it runs after (submit --after / --after-ended). In: submit. Out:
    # to queued or scheduled in the transaction that ends the last of them
    # (after_dependencies); to cancelled when one it needed to succeed did not, or on
    # request. Back in from cancelled when the dead job whose end cancelled it is retried
    # (dlq retry: store/dependencies.revive).
    BLOCKED = "blocked"
    # Waits for run_at. In: submit with --delay/--at. Out: claim once due; cancel.
    SCHEDULED = "scheduled"
    # Ready to run. In: submit, dlq retry, a daemon releasing jobs it never started, a
    # rescue of a dead daemon's claim that provably never started. Out: claim; cancel.
    QUEUED = "queued"
    # Claimed by a daemon whose lease is alive. In: claim. Out: finish, fail,
    # rescue (the owner's lease expired), cancel, release at shutdown.
    RUNNING = "running"
    # An attempt failed; waits for its backoff. In: fail, rescue. Out: claim once due; cancel.
    RETRYING = "retrying"
    # Done. In: finish. Out: prune.
    SUCCEEDED = "succeeded"
    # Attempts used up or not retryable: the dead-letter queue. In: fail, rescue.
    # Out: dlq retry, prune/purge.
    DEAD = "dead"
    # Stopped on request, or because a job it ran after did not succeed. In: cancel,
    # after_dependencies. Out: prune; blocked again when that job is retried (dlq retry).
    CANCELLED = "cancelled"


WAITING = frozenset({State.SCHEDULED, State.QUEUED, State.RETRYING})
FINAL = frozenset({State.SUCCEEDED, State.DEAD, State.CANCELLED})

TRANSITIONS: dict[State, frozenset[State]] = {
    State.BLOCKED: frozenset({State.QUEUED, State.SCHEDULED, State.CANCELLED}),
    State.SCHEDULED: frozenset({State.RUNNING, State.CANCELLED}),
    State.QUEUED: frozenset({State.RUNNING, State.CANCELLED}),
    State.RETRYING: frozenset({State.RUNNING, State.CANCELLED}),
    State.RUNNING: frozenset(
        {State.SUCCEEDED, State.RETRYING, State.DEAD, State.CANCELLED, State.QUEUED}
    ),
    State.SUCCEEDED: frozenset(),
    State.DEAD: frozenset({State.QUEUED}),
    State.CANCELLED: frozenset({State.BLOCKED}),  # a dead job it ran after is retried
}


def parse_states(text: str) -> list[str]:
    """One state, or several separated by commas (`list --state`, GET /jobs?state=);
    ValueError naming the one that is not a state, and the state meant where it is
    close to one."""
    known = [s.value for s in State]
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"one of {', '.join(known)}"
            raise ValueError(f"{name!r} is not a state: {hint}")
    return names


def can_move(src: State, dst: State) -> bool:
    return dst in TRANSITIONS[src]


class Outcome(enum.StrEnum):
    """How one attempt ended; stored in the attempt history."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the job raised, or the command exited non-zero
    TIMEOUT = "timeout"  # killed after its timeout
    CRASHED = "crashed"  # its worker process died (signal, OOM, segfault)
    CANCELLED = "cancelled"  # killed on request
    LOST = "lost"  # its daemon stopped heartbeating; found by the rescuer
    INTERRUPTED = "interrupted"  # killed by a forced daemon shutdown; not counted
    NOT_STARTED = "not_started"  # claimed, but its daemon died before it started; not counted
    OOM = "oom"  # out of memory: its memory limit, or the kernel's OOM killer
    CPU_LIMIT = "cpu_limit"  # used up its CPU-time limit (SIGXCPU)


# Defaults, in one place.
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 1.0
BACKOFF_CAP = 3600.0


def backoff_delay(attempt: int, base: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    Exponential (base * 2^(attempt-1)) capped at BACKOFF_CAP, with "equal jitter":
    a random point in the upper half, so retries of jobs that failed together spread
    out but never come back sooner than half the nominal delay.
    """
    nominal = min(BACKOFF_CAP, base * (2 ** min(attempt - 1, 40)))
    if rng is None:
        import random  # lazily: `submit` never computes a backoff

        r = random.random()
    else:
        r = rng.random()
    return nominal / 2 + r * nominal / 2


class Decision(Record):
    state: State  # where the job goes
    run_at: float | None  # when it may run again, for a retry
    counted: bool = True  # whether the attempt used one of the job's attempts
    reason: str | None = None  # why, where the state does not say (a dependency's end)


def after_failure(
    attempts: int,
    max_attempts: int,
    backoff: float,
    now: float,
    retryable: bool = True,
    rng: random.Random | None = None,
) -> Decision:
    """Where a job goes after its attempt number `attempts` failed."""
    if retryable and attempts < max_attempts:
        return Decision(State.RETRYING, now + backoff_delay(attempts, backoff, rng))
    return Decision(State.DEAD, None)


# Outcomes that are not the job's doing: the job goes back to the queue, as it was.
NOT_COUNTED = frozenset({Outcome.INTERRUPTED, Outcome.NOT_STARTED})


def after_attempt(
    outcome: Outcome,
    attempts: int,
    max_attempts: int,
    backoff: float,
    now: float,
    *,
    retryable: bool = True,
    cancel_requested: bool = False,
    rng: random.Random | None = None,
) -> Decision:
    """Where a running job goes when its attempt number `attempts` ends with `outcome`:
    the one decision for a worker's report, a kill and a rescue alike.

    A success is final. A cancel asked for is carried out (also when the daemon that
    should have done it died). An attempt that was interrupted by a forced stop, or that
    provably never started, does not count: back to the queue. Anything else is a
    failure: a retry after backoff while attempts and `retryable` allow, else dead."""
    if outcome is Outcome.SUCCEEDED:
        return Decision(State.SUCCEEDED, None)
    if outcome is Outcome.CANCELLED or cancel_requested:
        return Decision(State.CANCELLED, None)
    if outcome in NOT_COUNTED:
        return Decision(State.QUEUED, None, counted=False)
    return after_failure(attempts, max_attempts, backoff, now, retryable, rng)


class Dependency(Record):
    """A job that another runs after, as the dependent's decision needs it."""

    job_id: int  # the job run after
    need: str  # SUCCEEDED: it must succeed; ENDED: it must only end, however
    state: State | None  # where it is now; None: deleted


SUCCEEDED, ENDED = "succeeded", "ended"  # a dependency's need


def after_dependencies(deps: list[Dependency]) -> Decision | None:
    """Where a blocked job goes as the jobs it runs after move: None while it must
    still wait; cancelled as soon as one it needs to succeed ended otherwise (or was
    deleted), whatever the others do; else, once every one has ended, QUEUED (the store
    makes it SCHEDULED while its own run_at is ahead). `Decision.reason` says why."""
    for dep in deps:
        if dep.need == SUCCEEDED and dep.state is not State.SUCCEEDED:
            if dep.state is None:
                return Decision(
                    State.CANCELLED, None, reason=f"job {dep.job_id} it runs after was deleted"
                )
            if dep.state in FINAL:
                return Decision(State.CANCELLED, None, reason=ended_badly(dep.job_id, dep.state))
    if all(dep.state is None or dep.state in FINAL for dep in deps):
        return Decision(State.QUEUED, None, reason=_ran_after(deps))
    return None


def ended_badly(job_id: int, state: State) -> str:
    """Why a job was cancelled when `job_id`, which it ran after, ended `state` (not
    succeeded): its error is `cancelled: ` and this, which is also how a retry of that
    job finds the jobs to take back (store/dependencies.revive)."""
    return f"job {job_id} it runs after ended {state.value}"


def _ran_after(deps: list[Dependency]) -> str:
    ids = ", ".join(str(d.job_id) for d in deps)
    return f"job{'s' if len(deps) > 1 else ''} {ids} it runs after ended"


def event_type(state: State, outcome: Outcome | None = None) -> str:
    """The event a transition into `state` is recorded as in the job event feed: named
    after where the job went (`job.succeeded`, `job.retrying`, ...), except a rescue that
    sends a job back to wait, which is `job.rescued` (docs/architecture.md, "Events")."""
    if outcome in (Outcome.LOST, Outcome.NOT_STARTED) and state in WAITING:
        return "job.rescued"
    return EVENT_TYPES[state]


EVENT_TYPES = {
    State.BLOCKED: "job.blocked",
    State.SCHEDULED: "job.scheduled",
    State.QUEUED: "job.queued",
    State.RUNNING: "job.started",
    State.RETRYING: "job.retrying",
    State.SUCCEEDED: "job.succeeded",
    State.DEAD: "job.dead",
    State.CANCELLED: "job.cancelled",
}
