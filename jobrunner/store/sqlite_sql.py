"""The SQLite store's SQL: named queries, migrations, and rows turned into models."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence

from jobrunner.jsonutil import dumps
from jobrunner.lifecycle import EVENT_TYPES, FINAL, Outcome, State, event_type
from jobrunner.models import AttemptEnd, Event, Job, JobInsert
from jobrunner.store.sqlfiles import named_queries, numbered_files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

APPLICATION_ID = 0x4A6F6252  # "JobR": marks a file as a jobrunner database
BUSY_TIMEOUT_MS = 10_000

JOB_COLUMNS = (
    "id, state, task, command, args, kwargs, queue, priority, attempts, max_attempts, "
    "retries, backoff, timeout, result, error, created_at, run_at, started_at, finished_at, "
    "key, schedule, scheduled_for, owner, cancel_requested, options, progress, "
    "progress_message, progress_at"
)


HERE = os.path.dirname(os.path.abspath(__file__))


Q = {
    name: sql.format(job_columns=JOB_COLUMNS)
    for name, sql in named_queries(os.path.join(HERE, "queries.sql")).items()
}
MIGRATIONS = numbered_files(os.path.join(HERE, "migrations"))
SCHEMA_VERSION = MIGRATIONS[-1][0]


SCHEDULED, QUEUED = State.SCHEDULED.value, State.QUEUED.value  # enum lookups cost, per job
INSERT_CHUNK = 100  # rows per multi-row INSERT: far fewer statement runs than executemany


@functools.lru_cache(maxsize=8)
def insert_many_sql(rows: int) -> str:
    head, _, values = Q["job_insert"].partition("VALUES")
    return f"{head}VALUES {', '.join([values.strip()] * rows)}"


STATES = {state.value: state for state in State}  # a dict lookup is 4x cheaper than State()

_ENDED = "state IN ('succeeded', 'dead', 'cancelled')"  # jobs_ended's condition
_DUE = "state IN ('scheduled', 'retrying')"  # jobs_due's condition
# For `list --state`: each state's partial index, and the condition that lets SQLite use it.
LIST_INDEXES = {
    State.BLOCKED.value: ("jobs_blocked", "state = 'blocked'"),
    State.QUEUED.value: ("jobs_queued", "state = 'queued'"),
    State.RUNNING.value: ("jobs_running", "state = 'running'"),
    State.SCHEDULED.value: ("jobs_due", f"{_DUE} AND state = 'scheduled'"),
    State.RETRYING.value: ("jobs_due", f"{_DUE} AND state = 'retrying'"),
    **{s.value: ("jobs_ended", f"{_ENDED} AND state = '{s.value}'") for s in FINAL},
}


@functools.lru_cache(maxsize=32)
def job_list_sql(states: tuple[str, ...]) -> str:
    """`job_list_in_states` for these states (known ones, sorted, without repeats)."""
    ids = " UNION ALL ".join(
        Q["job_list_ids_in_state"].format(index=index, condition=condition)
        for index, condition in (LIST_INDEXES[state] for state in states)
    )
    return Q["job_list_in_states"].format(ids=ids)


def _loads(text: str) -> Any:
    """json.loads, without the decoder for the common empty args (the daemon's hot path)."""
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return json.loads(text)


def job_from_row(row: Sequence[Any]) -> Job:
    try:
        return _job(row, _loads(row[4]), _loads(row[5]))
    except (ValueError, TypeError, RecursionError):
        return _damaged_job(row)


def _damaged_job(row: Sequence[Any]) -> Job:
    """A row whose stored JSON cannot be read back (written by an older version, or by
    hand: nested too deep, not JSON): the job with what can be read, and `damage`
    saying what could not. It must not stop the reader: `list`, `status` and `cancel`
    show it, and the daemon fails it instead of crashing on it."""
    problems: list[str] = []

    def decode(index: int, what: str, default: Any) -> Any:
        if row[index] is None:
            return None
        try:
            return json.loads(row[index])
        except (ValueError, TypeError, RecursionError) as exc:
            problems.append(f"{what}: {_why(exc)}")
            return default

    args = decode(4, "args", [])
    kwargs = decode(5, "kwargs", {})
    damaged = list(row)
    for index, what, default in ((3, "command", None), (13, "result", None), (24, "options", None)):
        damaged[index] = _reencoded(decode(index, what, default))
    job = _job(damaged, args, kwargs)
    job.damage = "; ".join(problems) + " (the stored JSON cannot be read back)"
    return job


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deep"
    return " ".join(str(exc).split())[:200]


def _reencoded(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _job(row: Sequence[Any], args: Any, kwargs: Any) -> Job:
    return Job(
        id=row[0],
        state=STATES[row[1]],
        task=row[2],
        command=json.loads(row[3]) if row[3] is not None else None,
        args=args,
        kwargs=kwargs,
        queue=row[6],
        priority=row[7],
        attempts=row[8],
        max_attempts=row[9],
        retries=row[10],
        backoff=row[11],
        timeout=row[12],
        result=json.loads(row[13]) if row[13] is not None else None,
        error=row[14],
        created_at=row[15],
        run_at=row[16],
        started_at=row[17],
        finished_at=row[18],
        key=row[19],
        schedule=row[20],
        scheduled_for=row[21],
        owner=row[22],
        cancel_requested=bool(row[23]),
        options=_loads(row[24]) if row[24] else {},
        progress=row[25],
        progress_message=row[26],
        progress_at=row[27],
    )


def end_attempt_row(end: AttemptEnd, owner: str | None) -> tuple[Any, ...]:
    """The parameters of `end_attempt`: the job's row after the attempt, fenced."""
    final = end.next_state in FINAL
    return (
        end.next_state.value,
        end.run_at,
        end.result_json,
        end.error,
        end.started_at,
        end.finished_at if final else None,
        end.job_id,
        end.attempt,
        owner,
        0 if end.counted else 1,
    )


def attempt_row(end: AttemptEnd, owner: str | None) -> tuple[Any, ...]:
    """The parameters of `attempt_insert`: the attempt's line in the history."""
    return (
        end.job_id,
        end.attempt,
        end.outcome.value,
        end.started_at,
        end.finished_at,
        end.error,
        end.traceback,
        owner,
        end.cpu_seconds,
        end.max_rss_kb,
        end.exit_code,
        end.signal,
    )


# -- the event feed (docs/architecture.md, "Events") ---------------------------------------


def event_row(
    at: float, job_id: int, attempt: int, type_: str, state: str, data: Any = None
) -> tuple[Any, ...]:
    """The parameters of `event_insert`."""
    return (at, job_id, attempt, type_, state, dumps(data) if data else None)


def submitted_event(at: float, job_id: int, row: Sequence[Any]) -> tuple[Any, ...]:
    """The event of a job just inserted from `row` (see SQLiteStore._insert_row):
    `job.queued` or `job.scheduled`, with its schedule's fire when a schedule made it."""
    state = row[0]
    data = {"schedule": row[14], "scheduled_for": row[15]} if row[14] is not None else None
    return event_row(at, job_id, 0, EVENT_TYPES[STATES[state]], state, data)


def end_event(end: AttemptEnd) -> tuple[Any, ...]:
    """The event of an attempt's end: named after where the job went (lifecycle), with
    how the attempt ended and its error when the name does not say it all."""
    state = end.next_state
    if end.outcome is Outcome.SUCCEEDED:  # the daemon's hot path: nothing to add
        return (end.finished_at, end.job_id, end.attempt, "job.succeeded", state.value, None)
    data: dict[str, Any] = {"outcome": end.outcome.value}
    if end.error and end.error.strip():
        data["error"] = end.error.strip().splitlines()[0][:200]
    return event_row(
        end.finished_at,
        end.job_id,
        end.attempt,
        event_type(state, end.outcome),
        state.value,
        data,
    )


def event_from_row(row: Sequence[Any]) -> Event:
    try:
        data = json.loads(row[6]) if row[6] else None
    except (ValueError, RecursionError):  # never a reason for a reader to stop
        data = {"damage": "the event's data cannot be read back"}
    return Event(row[0], row[1], row[2], row[3], row[4], STATES.get(row[5], row[5]), data)


def insert_row(job: JobInsert, now: float) -> tuple[Any, ...]:
    """A job's row for the insert queries (job_insert, job_insert_fire), in their order."""
    run_at = now + job.delay if job.run_at is None else job.run_at
    return (
        SCHEDULED if run_at > now else QUEUED,
        job.task,
        dumps(job.command) if job.command is not None else None,
        dumps(job.args),
        dumps(job.kwargs),
        job.queue,
        job.priority,
        job.retries + 1,
        job.retries,
        job.backoff,
        job.timeout,
        now,
        run_at,
        job.key,
        job.schedule,
        job.scheduled_for,
        dumps(job.options) if job.options else None,
    )
