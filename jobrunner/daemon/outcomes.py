"""How an attempt's end becomes the job's next state. Pure: the supervisor passes `now`."""

from __future__ import annotations

import signal

from jobrunner import lifecycle
from jobrunner.jsonutil import storable
from jobrunner.lifecycle import Outcome, State
from jobrunner.models import AttemptEnd, Job
from jobrunner.worker.pool import KillOrder
from jobrunner.worker.protocol import JobDone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.daemon.events import EventLog

# the event a job's attempt ending is logged as, by where the job goes next
END_EVENTS = {
    State.SUCCEEDED: "finish",
    State.RETRYING: "retry",
    State.DEAD: "dead",
    State.CANCELLED: "cancel",
    State.QUEUED: "interrupted",
}

KILL_OUTCOMES = {
    "timeout": (Outcome.TIMEOUT, "timed out after {detail}; {how}"),
    "cancel": (Outcome.CANCELLED, "cancelled while running; {how}"),
    "shutdown": (Outcome.INTERRUPTED, "interrupted by a forced daemon shutdown; {how}"),
    # never recorded (the claim is no longer ours), but logged
    "lost": (Outcome.LOST, "killed: its claim was rescued by another daemon; {how}"),
}


def attempt_end(
    job: Job,
    outcome: Outcome,
    now: float,
    *,
    error: str | None = None,
    traceback: str | None = None,
    result_json: str | None = None,
    started: float | None = None,
    finished: float | None = None,
    retryable: bool = True,
    usage: tuple[float | None, int | None, int | None, int | None] = (None, None, None, None),
    note: str | None = None,
    cancel_requested: bool = False,
) -> AttemptEnd:
    """The AttemptEnd for `job`'s current attempt ending with `outcome`; where the job
    goes next is lifecycle's decision."""
    decision = lifecycle.after_attempt(
        outcome,
        job.attempts,
        job.max_attempts,
        job.backoff,
        now,
        retryable=retryable,
        cancel_requested=cancel_requested,
    )
    cpu, rss, exit_code, sig = usage
    return AttemptEnd(
        job.id,
        job.attempts,
        outcome,
        decision.state,
        decision.run_at,
        counted=decision.counted,
        result_json=result_json,
        error=error,
        traceback=traceback,
        started_at=started,
        finished_at=finished if finished is not None else now,
        cpu_seconds=cpu,
        max_rss_kb=rss,
        exit_code=exit_code,
        signal=sig,
        note=note,
    )


def from_done(job: Job, done: JobDone, now: float) -> AttemptEnd:
    """A result the worker reported."""
    if done.ok:
        outcome = Outcome.SUCCEEDED
    else:
        outcome = {"oom": Outcome.OOM, "cpu_limit": Outcome.CPU_LIMIT}.get(
            done.cause or "", Outcome.FAILED
        )
    return attempt_end(
        job,
        outcome,
        now,
        error=done.error,
        traceback=done.traceback,
        result_json=done.result,
        started=done.started_at,
        finished=done.finished_at,
        retryable=done.retryable,
        usage=(done.cpu_seconds, done.max_rss_kb, done.exit_code, done.signal),
        note=done.note,
    )


def from_death(
    job: Job,
    kill: KillOrder | None,
    how: str,
    started: float | None,
    now: float,
    *,
    signal_number: int | None = None,
    max_rss_kb: int | None = None,
    oom_killed: bool = False,
) -> AttemptEnd:
    """The running job of a worker that died: killed by us (`kill`), by the kernel's
    OOM killer (`oom_killed`: the cgroup's count went up), or crashed otherwise."""
    usage = (None, max_rss_kb, None, signal_number)
    if kill is None or kill.job_id != job.id:
        if oom_killed:
            error = f"out of memory: killed by the kernel's OOM killer; {how}"
            return attempt_end(job, Outcome.OOM, now, error=error, started=started, usage=usage)
        if signal_number == signal.SIGXCPU:
            error = f"cpu time limit exceeded; {how}"
            return attempt_end(
                job, Outcome.CPU_LIMIT, now, error=error, started=started, usage=usage
            )
        return attempt_end(job, Outcome.CRASHED, now, error=how, started=started, usage=usage)
    outcome, message = KILL_OUTCOMES[kill.reason]
    error = message.format(detail=kill.detail, how=how)
    return attempt_end(job, outcome, now, error=error, started=started, usage=usage)


def from_rescue(job: Job, started: bool, now: float) -> AttemptEnd:
    """The end of an attempt whose daemon was found dead: `lost` when it had started
    (it counts), `not_started` when it provably never did (it does not); a cancel the
    dead daemon never carried out is carried out now (lifecycle.after_attempt)."""
    who = job.owner or "unknown"
    if started:
        outcome = Outcome.LOST
        error = f"lost: daemon {who} stopped heartbeating while the job ran"
    else:
        outcome = Outcome.NOT_STARTED
        error = (
            f"not started: daemon {who} stopped heartbeating before the job started; "
            "the claim did not count as an attempt"
        )
    started_at = job.started_at if started else None
    return attempt_end(
        job, outcome, now, error=error, started=started_at, cancel_requested=job.cancel_requested
    )


def unreadable(job: Job, now: float) -> AttemptEnd:
    """A claimed job whose stored data cannot be read back (Job.damage): it cannot run,
    and no retry can change that."""
    return attempt_end(job, Outcome.FAILED, now, error=f"cannot run: {job.damage}", retryable=False)


def unrecordable(end: AttemptEnd, exc: BaseException) -> AttemptEnd:
    """In place of an end the store refused (what the job produced cannot be stored):
    the attempt failed, for good, saying why. Only plain text is left in it."""
    error = storable(
        f"the attempt's outcome ({end.outcome}) could not be recorded: {type(exc).__name__}: {exc}"
    )[:2000]
    return AttemptEnd(
        end.job_id,
        end.attempt,
        Outcome.FAILED,
        State.DEAD,
        error=error,
        started_at=end.started_at,
        finished_at=end.finished_at,
        cpu_seconds=end.cpu_seconds,
        max_rss_kb=end.max_rss_kb,
        exit_code=end.exit_code,
        signal=end.signal,
    )


def log_end(events: EventLog, end: AttemptEnd) -> None:
    """The daemon's log line for an attempt's end, once it is recorded."""
    took = None if end.started_at is None else end.finished_at - end.started_at
    events.emit(
        END_EVENTS.get(end.next_state, "finish"),
        "info" if end.outcome is Outcome.SUCCEEDED else "warning",
        ts=end.finished_at,
        job=end.job_id,
        attempt=end.attempt,
        # not counted (interrupted, not started): the job runs this attempt number again
        counted=None if end.counted else False,
        outcome=end.outcome.value,
        duration=None if took is None else round(took, 6),
        retry_in=None if end.run_at is None else round(end.run_at - end.finished_at, 3),
        error=None if end.error is None else end.error.splitlines()[0][:200],
    )
    if end.note:  # output the disk could not take: the outcome above stands regardless
        events.emit(
            "log",
            "warning",
            ts=end.finished_at,
            job=end.job_id,
            attempt=end.attempt,
            message=end.note,
        )
