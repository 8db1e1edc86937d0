"""How an attempt's end becomes the job's next state. Pure: the supervisor passes `now`."""

from __future__ import annotations

from jobrunner import lifecycle
from jobrunner.lifecycle import Outcome, State
from jobrunner.models import AttemptEnd, Job
from jobrunner.worker.pool import KillOrder
from jobrunner.worker.protocol import JobDone

KILL_OUTCOMES = {
    "timeout": (Outcome.TIMEOUT, "timed out after {detail}; {how}"),
    "cancel": (Outcome.CANCELLED, "cancelled while running; {how}"),
    "shutdown": (Outcome.INTERRUPTED, "interrupted by a forced daemon shutdown; {how}"),
}


def attempt_end(
    job: Job,
    outcome: Outcome,
    now: float,
    *,
    error: str | None = None,
    traceback: str | None = None,
    result: object = None,
    started: float | None = None,
    finished: float | None = None,
    retryable: bool = True,
) -> AttemptEnd:
    """The AttemptEnd for `job`'s current attempt ending with `outcome`."""
    run_at = None
    if outcome is Outcome.SUCCEEDED:
        state = State.SUCCEEDED
    elif outcome is Outcome.CANCELLED:
        state = State.CANCELLED
    elif outcome is Outcome.INTERRUPTED:
        state = State.QUEUED  # not the job's fault: the attempt does not count
    else:
        decision = lifecycle.after_failure(
            job.attempts, job.max_attempts, job.backoff, now, retryable=retryable
        )
        state, run_at = decision.state, decision.run_at
    return AttemptEnd(
        job.id,
        job.attempts,
        outcome,
        state,
        run_at,
        result=result,
        error=error,
        traceback=traceback,
        started_at=started,
        finished_at=finished if finished is not None else now,
    )


def from_done(job: Job, done: JobDone, now: float) -> AttemptEnd:
    """A result the worker reported."""
    return attempt_end(
        job,
        Outcome.SUCCEEDED if done.ok else Outcome.FAILED,
        now,
        error=done.error,
        traceback=done.traceback,
        result=done.result,
        started=done.started_at,
        finished=done.finished_at,
        retryable=done.retryable,
    )


def from_death(
    job: Job, kill: KillOrder | None, how: str, started: float | None, now: float
) -> AttemptEnd:
    """The running job of a worker that died: killed by us (`kill`) or crashed."""
    if kill is None or kill.job_id != job.id:
        return attempt_end(job, Outcome.CRASHED, now, error=how, started=started)
    outcome, message = KILL_OUTCOMES[kill.reason]
    error = message.format(detail=kill.detail, how=how)
    return attempt_end(job, outcome, now, error=error, started=started)
