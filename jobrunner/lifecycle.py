"""The job state machine, in one place: states, who moves jobs in and out, and the
retry decision. Pure: no I/O, no clock (callers pass `now`)."""

from __future__ import annotations

import enum

from jobrunner.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random


class State(enum.StrEnum):
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
    # Stopped on request. In: cancel. Out: prune.
    CANCELLED = "cancelled"


WAITING = frozenset({State.SCHEDULED, State.QUEUED, State.RETRYING})
FINAL = frozenset({State.SUCCEEDED, State.DEAD, State.CANCELLED})

TRANSITIONS: dict[State, frozenset[State]] = {
    State.SCHEDULED: frozenset({State.RUNNING, State.CANCELLED}),
    State.QUEUED: frozenset({State.RUNNING, State.CANCELLED}),
    State.RETRYING: frozenset({State.RUNNING, State.CANCELLED}),
    State.RUNNING: frozenset(
        {State.SUCCEEDED, State.RETRYING, State.DEAD, State.CANCELLED, State.QUEUED}
    ),
    State.SUCCEEDED: frozenset(),
    State.DEAD: frozenset({State.QUEUED}),
    State.CANCELLED: frozenset(),
}


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
    state: State
    run_at: float | None


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


def after_lost_daemon(
    attempts: int,
    max_attempts: int,
    backoff: float,
    now: float,
    *,
    started: bool,
    cancel_requested: bool,
) -> Decision:
    """Where a running job goes when its daemon is found dead (the rescue): a cancel it
    never carried out is done now; a claim that provably never started goes back to the
    queue without using an attempt; an attempt that started counts as failed."""
    if cancel_requested:
        return Decision(State.CANCELLED, None)
    if not started:
        return Decision(State.QUEUED, None)
    return after_failure(attempts, max_attempts, backoff, now)
