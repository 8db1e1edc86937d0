"""The PostgreSQL store (psycopg 3): the Store protocol of store/base.py, one transaction
per method, every transition out of `running` fenced as on SQLite, events appended last in
each transaction under the feed lock (store/pg/feed.py). Claims: store/pg/claims.py;
schedules, daemons, leases: store/pg/coordination.py; webhooks: store/pg/hooks.py.
(docs/architecture.md, "PostgreSQL")."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import psycopg

from jobrunner import lifecycle
from jobrunner.errors import JobNotFound, StoreUnavailable
from jobrunner.lifecycle import Outcome, State
from jobrunner.models import Attempt, CancelResult, Event, InsertResult, Job, JobInsert
from jobrunner.store.pg.claims import PgClaims
from jobrunner.store.pg.coordination import PgCoordination
from jobrunner.store.pg.feed import Q, append_events
from jobrunner.store.pg.hooks import PgHooks
from jobrunner.store.pg.schema import migrate
from jobrunner.store.pg.signals import FeedListener, PgOutput, WakeListener, notify
from jobrunner.store.sqlite_sql import (
    event_from_row,
    event_row,
    insert_row,
    job_from_row,
    submitted_event,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CANCEL_DATA = {"reason": "cancelled before it started"}
RETRY_DATA = {"reason": "dlq retry"}
MAX_ID = 2**63 - 1
STATES = {s.value for s in State}


class PostgresStore(PgClaims, PgCoordination, PgHooks):
    """One connection (autocommit; write methods open their own transaction)."""

    def __init__(self, url: str, *, create: bool = True, writer: bool = False) -> None:
        self.path = url
        self.conn: Any = None
        self._connect()
        if create or writer:
            migrate(self.conn)
        self._output = PgOutput(url)

    def _connect(self) -> None:
        try:
            self.conn = psycopg.connect(self.path, autocommit=True)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"{_shown(self.path)}: cannot connect: {_first_line(exc)}"
            ) from None

    def _lost(self, exc: BaseException) -> StoreUnavailable:
        """The connection failed (the server restarted, the backend was terminated):
        it is dropped, the next call connects again, and this call's error is
        retryable. Nothing of a transaction that did not commit was written."""
        with contextlib.suppress(psycopg.Error):
            self.conn.close()
        return StoreUnavailable(f"{_shown(self.path)}: {_first_line(exc)}; try again")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write transaction; a lost connection is StoreUnavailable (retryable)."""
        if self.conn.closed:
            self._connect()
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                yield cur
        except psycopg.OperationalError as exc:
            raise self._lost(exc) from None

    def _rows(self, name: str, params: Any = ()) -> list[Any]:
        """A read; one that finds its connection lost connects again and reads once more
        (a read has nothing to undo)."""
        for again in (True, False):
            if self.conn.closed:
                self._connect()
            try:
                return list(self.conn.execute(Q[name], params).fetchall())
            except psycopg.OperationalError as exc:
                error = self._lost(exc)
                if not again:
                    raise error from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()

    # -- jobs: submit ---------------------------------------------------------------------

    def job_insert_many(self, jobs: Sequence[JobInsert], now: float) -> list[InsertResult]:
        results: list[InsertResult] = []
        events: list[tuple[Any, ...]] = []
        plain: list[tuple[Any, ...]] = []
        with self._tx() as cur:
            for job in jobs:
                row = insert_row(job, now)
                if job.key is None:
                    plain.append(row)
                    continue
                if plain:  # keep ids in submit order
                    self._insert_plain(cur, plain, now, results, events)
                    plain = []
                cur.execute(Q["job_insert_keyed"], row)
                got = cur.fetchone()
                if got is None:
                    cur.execute(Q["job_id_by_key"], (job.key,))
                    results.append(InsertResult(cur.fetchone()[0], False))
                    continue
                results.append(InsertResult(got[0], True))
                events.append(submitted_event(now, got[0], row))
            if plain:
                self._insert_plain(cur, plain, now, results, events)
            append_events(cur, events)
        return results

    @staticmethod
    def _insert_plain(
        cur: Any,
        rows: list[tuple[Any, ...]],
        now: float,
        results: list[InsertResult],
        events: list[tuple[Any, ...]],
    ) -> None:
        """Keyless rows in one pipelined executemany; their ids in order."""
        cur.executemany(Q["job_insert"], rows, returning=True)
        for row in rows:
            job_id = cur.fetchone()[0]
            results.append(InsertResult(job_id, True))
            events.append(submitted_event(now, job_id, row))
            cur.nextset()

    def job_insert_calls(
        self, template: JobInsert, args_json: Sequence[str], now: float
    ) -> list[int]:
        if template.key is not None or template.schedule is not None:
            raise ValueError("jobs inserted by calls carry no key and no schedule")
        row = insert_row(template, now)
        head, tail = row[:3], row[4:]
        results: list[InsertResult] = []
        events: list[tuple[Any, ...]] = []
        with self._tx() as cur:
            rows = [(*head, args, *tail) for args in args_json]
            if rows:
                self._insert_plain(cur, rows, now, results, events)
            append_events(cur, events)
        return [r.id for r in results]

    # -- jobs: read -----------------------------------------------------------------------

    def job_get(self, job_id: int) -> Job | None:
        rows = self._rows("job_get", (job_id,))
        return job_from_row(rows[0]) if rows else None

    def job_list(
        self,
        state: str | Sequence[str] | None = None,
        queue: str | None = None,
        limit: int = 50,
        task: str | None = None,
        before: int | None = None,
    ) -> list[Job]:
        states = None
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            unknown = [s for s in states if s not in STATES]
            if unknown:
                raise ValueError(f"not a job state: {unknown[0]!r}")
            if not states:
                return []
        params = {
            "upto": MAX_ID if before is None else before - 1,
            "states": states,
            "queue": queue,
            "task": task,
            "limit": limit,
        }
        return [job_from_row(r) for r in self._rows("job_list", params)]

    def job_counts(self) -> dict[tuple[str, str], int]:
        return {(s, q): n for s, q, n in self._rows("counts")}

    def job_recent_failures(self, limit: int) -> list[Job]:
        return [job_from_row(r) for r in self._rows("recent_failures", (limit,))]

    def job_running(self, limit: int) -> list[Job]:
        return [job_from_row(r) for r in self._rows("running_jobs", (limit,))]

    def job_count_ended_since(self, since: float) -> dict[str, int]:
        return {state: n for state, n in self._rows("ended_since", (since,))}

    def attempt_list(self, job_id: int) -> list[Attempt]:
        return [
            Attempt(
                r[0], r[1], Outcome(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]
            )
            for r in self._rows("attempts_of", (job_id,))
        ]

    def job_next_due(self) -> float | None:
        value = self._rows("next_due")[0][0]
        return float(value) if value is not None else None

    # -- jobs: cancel, retry, delete ------------------------------------------------------

    def job_cancel(self, job_id: int, now: float) -> CancelResult:
        with self._tx() as cur:
            cur.execute(Q["cancel_waiting"], (now, job_id))
            got = cur.fetchone()
            if got:
                append_events(
                    cur,
                    [event_row(now, job_id, got[0], "job.cancelled", "cancelled", CANCEL_DATA)],
                )
                return CancelResult("cancelled")
            cur.execute(Q["cancel_request"], (job_id,))
            if cur.rowcount:
                return CancelResult("requested")
            cur.execute(Q["job_state"], (job_id,))
            row = cur.fetchone()
        if row is None:
            raise JobNotFound(f"no job with id {job_id}")
        return CancelResult(row[0])

    def job_cancel_requests(self, owner: str) -> list[tuple[int, int]]:
        return [(r[0], r[1]) for r in self._rows("cancel_requests", (owner,))]

    def job_retry_dead(self, job_ids: Sequence[int] | None, now: float) -> list[int]:
        moved: list[int] = []
        events = []
        with self._tx() as cur:
            if job_ids is None:
                cur.execute(Q["dead_ids"])
                ids = [r[0] for r in cur.fetchall()]
            else:
                ids = list(job_ids)
            for job_id in ids:
                cur.execute(Q["dead_retry"], (now, job_id))
                got = cur.fetchone()
                if got:
                    moved.append(job_id)
                    events.append(
                        event_row(now, job_id, got[0], "job.queued", "queued", RETRY_DATA)
                    )
            append_events(cur, events)
        return moved

    def job_count_ended(self, state: str, before: float) -> int:
        if State(state) not in lifecycle.FINAL:
            raise ValueError(f"only ended jobs can be deleted, not {state!r}")
        return int(self._rows("ended_count", (state, before))[0][0])

    def job_ids(self, state: str, queue: str | None = None) -> list[int]:
        if State(state) in lifecycle.FINAL:
            raise ValueError(f"only jobs that have not ended are listed by id, not {state!r}")
        if state == State.RUNNING.value:
            rows = self._rows("running_ids", (queue, queue))
        else:
            rows = self._rows("waiting_ids", (state, queue, queue))
        return sorted(r[0] for r in rows)

    def job_delete_ended(self, state: str, before: float, batch: int = 1000) -> list[int]:
        if State(state) not in lifecycle.FINAL:
            raise ValueError(f"only ended jobs can be deleted, not {state!r}")
        with self._tx() as cur:
            cur.execute(Q["ended_delete"], (state, before, batch))
            ids = [r[0] for r in cur.fetchall()]
            if ids:
                cur.execute(Q["attempts_delete"], (ids,))
        return ids

    # -- the event feed -------------------------------------------------------------------

    def events_after(self, seq: int, job_id: int | None = None, limit: int = 1000) -> list[Event]:
        if job_id is None:
            rows = self._rows("events_after", (seq, limit))
        else:
            rows = self._rows("events_of_job_after", (job_id, seq, limit))
        return [event_from_row(r) for r in rows]

    def events_last_seq(self) -> int:
        return int(self._rows("events_last_seq")[0][0])

    def events_watch(self, output: bool = False) -> FeedListener:
        return FeedListener(self.path)

    def events_prune(self, before: float, batch: int = 1000) -> int:
        with self._tx() as cur:
            cur.execute(Q["events_prune_upto"], (batch, before))
            upto = cur.fetchone()[0]
            if upto is None:
                return 0
            cur.execute(Q["events_delete_upto"], (upto,))
            return int(cur.rowcount)

    # -- what differs by backend -----------------------------------------------------------

    def waker(self, name: str) -> WakeListener:
        return WakeListener(self.path)

    def wake(self, message: bytes) -> int:
        """Every daemon of the database, on every host (best effort: 0 when it fails)."""
        if self.conn.closed:
            self._connect()
        try:
            return notify(self.conn, message)
        except psycopg.OperationalError as exc:
            self._lost(exc)
            return 0

    def output(self) -> PgOutput:
        return self._output

    def maintenance(self) -> None:
        return None  # no file of ours to back up, checkpoint or check: the server's own


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _shown(url: str) -> str:
    """The URL without a password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
