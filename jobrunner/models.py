"""Plain data: what the store returns and what callers hand it. No I/O."""

from __future__ import annotations

from jobrunner.lifecycle import Outcome, State
from jobrunner.record import Record, field

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from typing import Any


def iso(ts: float | None) -> str | None:
    """An epoch timestamp as ISO 8601 in UTC, to the millisecond."""
    if ts is None:
        return None
    import datetime as _dt  # lazily: `submit` never formats times

    return (
        _dt.datetime.fromtimestamp(ts, _dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def epoch(ts: float | None) -> float | None:
    """A time in JSON beside its ISO text, as seconds since the epoch (what `jq`'s
    `todate` and `date -d @` take: `fromdateiso8601` refuses the milliseconds)."""
    return None if ts is None else round(ts, 6)


class JobInsert(Record):
    """Everything needed to create one job. Exactly one of `task` and `command` is set."""

    task: str | None = None
    command: list[str] | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    run_at: float | None = None  # None: now + delay
    # Counted from the insert's `now`, read after the store opened: on a database shared
    # by hosts that is the database's clock (clock.py), whatever the submitter's says.
    delay: float = 0.0
    retries: int = 3
    backoff: float = 1.0
    timeout: float | None = None
    key: str | None = None
    schedule: str | None = None
    scheduled_for: float | None = None
    options: dict[str, Any] = field(default_factory=dict)  # cwd, env, limits
    # Jobs it runs after: these must succeed (else it is cancelled), these only end. A
    # job with either is inserted blocked (store/dependencies.py).
    after: list[int] = field(default_factory=list)
    after_ended: list[int] = field(default_factory=list)


class InsertResult(Record):
    id: int
    created: bool  # False: an existing job with the same key was returned


class Job(Record):
    id: int
    state: State
    task: str | None
    command: list[str] | None
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    priority: int
    attempts: int
    max_attempts: int
    retries: int
    backoff: float
    timeout: float | None
    result: Any
    error: str | None
    created_at: float
    run_at: float
    started_at: float | None
    finished_at: float | None
    key: str | None
    schedule: str | None
    scheduled_for: float | None
    owner: str | None
    cancel_requested: bool
    options: dict[str, Any]
    progress: float | None = None
    progress_message: str | None = None
    progress_at: float | None = None
    damage: str | None = None  # stored JSON that cannot be read back (sqlite_sql.job_from_row)

    @property
    def label(self) -> str:
        """What to call the job: its [tasks.NAME], else the function or the command line."""
        if self.options.get("task_name"):
            return str(self.options["task_name"])
        if self.task:
            return self.task
        return " ".join(self.command or [])

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON record of `status --json` and `list --json`."""
        return {
            "id": self.id,
            "state": str(self.state),
            "task": self.task,
            "command": self.command,
            "args": self.args,
            "kwargs": self.kwargs,
            "queue": self.queue,
            "priority": self.priority,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "result": self.result,
            "error": self.error,
            "created_at": iso(self.created_at),
            "run_at": iso(self.run_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "key": self.key,
            "schedule": self.schedule,
            "scheduled_for": iso(self.scheduled_for),
            "timeout": self.timeout,
            "owner": self.owner,
            "cancel_requested": self.cancel_requested,
            "progress": self.progress,
            "progress_message": self.progress_message,
            "manual": bool(self.options.get("manual")),  # a schedule's run outside its timetable
            "wall_seconds": (
                round(self.finished_at - self.started_at, 6)
                if self.finished_at is not None and self.started_at is not None
                else None
            ),  # the last attempt's, once the job ended
            "created_at_epoch": epoch(self.created_at),
            "run_at_epoch": epoch(self.run_at),
            "started_at_epoch": epoch(self.started_at),
            "finished_at_epoch": epoch(self.finished_at),
            "scheduled_for_epoch": epoch(self.scheduled_for),
            **({"damage": self.damage} if self.damage else {}),
            **(
                {"callback": shown_url(self.options["callback"])}
                if "callback" in self.options
                else {}
            ),
            **(
                {"concurrency_key": self.options["concurrency_key"]}
                if "concurrency_key" in self.options
                else {}
            ),
        }


def shown_url(url: str) -> str:
    """A URL as records and listings show it: a query string may carry a token (invariant
    11: no token is shown), so it is elided."""
    base, sep, _ = str(url).partition("?")
    return base + "?..." if sep else base


def submitted_job(job_id: int, job: JobInsert, now: float) -> Job:
    """The job exactly as a submit at `now` wrote it (store/sqlite_sql.py insert_row): the
    record POST /jobs answers with, built without reading a thousand rows back. A test
    holds it equal to the row read back (tests/http/test_submit.py)."""
    run_at = now + job.delay if job.run_at is None else job.run_at
    return Job(
        id=job_id,
        state=State.SCHEDULED if run_at > now else State.QUEUED,
        task=job.task,
        command=job.command,
        args=job.args,
        kwargs=job.kwargs,
        queue=job.queue,
        priority=job.priority,
        attempts=0,
        max_attempts=job.retries + 1,
        retries=job.retries,
        backoff=job.backoff,
        timeout=job.timeout,
        result=None,
        error=None,
        created_at=now,
        run_at=run_at,
        started_at=None,
        finished_at=None,
        key=job.key,
        schedule=job.schedule,
        scheduled_for=job.scheduled_for,
        owner=None,
        cancel_requested=False,
        options=job.options,
    )


class Attempt(Record):
    job_id: int
    attempt: int
    outcome: Outcome
    started_at: float | None
    finished_at: float
    error: str | None
    traceback: str | None
    owner: str | None
    cpu_seconds: float | None = None
    max_rss_kb: int | None = None
    exit_code: int | None = None
    signal: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_seconds": (
                None if self.started_at is None else round(self.finished_at - self.started_at, 6)
            ),
            "cpu_seconds": self.cpu_seconds,
            "max_rss_kb": self.max_rss_kb,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "attempt": self.attempt,
            "outcome": str(self.outcome),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "error": self.error,
            "traceback": self.traceback,
            "owner": self.owner,
            "started_at_epoch": epoch(self.started_at),
            "finished_at_epoch": epoch(self.finished_at),
        }


class AttemptEnd(Record):
    """The end of one attempt, as the supervisor reports it to the store.

    `next_state`/`run_at` come from lifecycle (finish: SUCCEEDED; fail: RETRYING or
    DEAD; cancel: CANCELLED; release: QUEUED). The store applies it only while the job
    is still `running` with this `attempt` and `owner` (fencing).
    """

    job_id: int
    attempt: int
    outcome: Outcome
    next_state: State
    run_at: float | None = None
    counted: bool = True  # False: the attempt does not use up one of the job's attempts
    result_json: str | None = None  # the return value as JSON text, checked by the worker
    error: str | None = None
    traceback: str | None = None
    started_at: float | None = None
    finished_at: float = 0.0
    cpu_seconds: float | None = None
    max_rss_kb: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    note: str | None = None  # the worker's warning about the attempt's output (JobDone.note)


class DaemonInfo(Record):
    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    lease_until: float
    workers: int
    queues: list[str] | None
    node: str | None = None  # hostname, boot and pid namespace (jobrunner/node.py)


class JobQuery(Record):
    """What the dashboard's job list filters by (None: anything). `text`: found in the
    arguments (positional or keyword) or a command's argv; `since`/`until`: created at
    or after / before (epoch seconds)."""

    states: list[str] | None = None
    queue: str | None = None
    task: str | None = None  # the function, or a [tasks.NAME]
    text: str | None = None
    since: float | None = None
    until: float | None = None


class SearchPage(Record):
    """A page of matches, newest first, and where a search goes on: `next`, the id to
    pass as `before` (None: nothing older is left). `scanned`: jobs looked at."""

    jobs: list[Job]
    next: int | None
    scanned: int


class ClaimRequest(Record):
    owner: str
    now: float
    limit: int  # most jobs in all
    queues: list[str] | None = None  # None: every queue
    # per-queue allowance left in this daemon (`per_daemon`); queues not named are uncapped
    caps: dict[str, int] | None = None
    # per-queue limits on running jobs across every daemon (`concurrency`): the claim
    # counts what runs in its own transaction and takes at most the rest
    limits: dict[str, int] | None = None
    # per-queue rates (`rate`: starts, period in seconds) across every daemon: the claim
    # takes at most what the current window leaves, and counts what it took
    rates: dict[str, tuple[int, float]] | None = None
    # per-queue limits on running jobs that share a concurrency key (`per_key`), across
    # every daemon; jobs without a key are not held by it
    per_key: dict[str, int] | None = None


class CancelResult(Record):
    state: str  # "cancelled" (was waiting), "requested" (running), or the final state it had


class Checkpoint(Record):
    """What a WAL checkpoint did: `busy` when a reader or writer kept it from finishing
    (it then copied what it could and left the log as it was)."""

    busy: bool
    wal_bytes: int  # the log's size afterwards


class ScheduleState(Record):
    """What the database holds of a schedule (its timetable lives in the config)."""

    name: str
    last_fire: float | None
    paused: bool
    last_job_id: int | None


class Event(Record):
    """One row of the job event feed: a state change (or a progress report), in the
    order the changes were committed (docs/architecture.md, "Events")."""

    seq: int
    at: float
    job_id: int
    attempt: int
    type: str  # job.queued, job.started, job.succeeded, ... (lifecycle.EVENT_TYPES)
    state: State  # the job's state after the change
    data: dict[str, Any] | None = None  # outcome, error, progress, message, reason, ...

    def to_dict(self) -> dict[str, Any]:
        """One line of `events --json` (and later an SSE event's data)."""
        return {
            "seq": self.seq,
            "type": self.type,
            "at": iso(self.at),
            "job": self.job_id,
            "attempt": self.attempt,
            "state": str(self.state),
            **(self.data or {}),
        }


# -- webhooks (docs/architecture.md, "Webhooks") -------------------------------------------


class DeliveryInsert(Record):
    """A delivery the dispatcher decided on: one event to one URL."""

    msg_id: str  # the webhook-id header: unique, and the same on every attempt
    event_seq: int
    job_id: int
    url: str
    event_type: str
    payload: str  # the JSON body, fixed now and signed at each attempt


class Delivery(Record):
    id: int
    msg_id: str
    event_seq: int
    job_id: int
    url: str
    event_type: str
    payload: str
    state: str  # pending, delivered, failed
    attempts: int  # since it was made or redelivered
    next_at: float | None
    owner: str | None
    lease_until: float | None
    created_at: float
    ended_at: float | None
    last_status: int | None
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        """One line of `webhooks deliveries --json` (and GET /webhooks/deliveries)."""
        return {
            "id": self.id,
            "webhook_id": self.msg_id,
            "job": self.job_id,
            "event": self.event_type,
            "url": self.url,
            "state": self.state,
            "attempts": self.attempts,
            "next_at": iso(self.next_at) if self.state == "pending" else None,
            "created_at": iso(self.created_at),
            "ended_at": iso(self.ended_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


class DeliveryAttempt(Record):
    """One POST of a delivery, as it went: `outcome` delivered (2xx), failed (any other
    answer, a timeout, no connection), gone (410), refused (the address guard)."""

    delivery_id: int
    at: float
    outcome: str
    status: int | None
    body: str | None  # the first 2 KB of the answer
    error: str | None
    duration: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "outcome": self.outcome,
            "status": self.status,
            "body": self.body,
            "error": self.error,
            "duration": round(self.duration, 6),
        }


class DisabledEndpoint(Record):
    url: str
    disabled_at: float
    reason: str
