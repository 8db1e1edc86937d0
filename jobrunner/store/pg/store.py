"""The PostgreSQL store (psycopg 3): the Store protocol of store/base.py, one transaction
per method, every transition out of `running` fenced as on SQLite, events appended last in
each transaction under the feed lock (store/pg/feed.py). Claims: store/pg/claims.py;
schedules, daemons, leases: store/pg/coordination.py; webhooks: store/pg/hooks.py.
(docs/architecture.md, "PostgreSQL")."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

import psycopg

from jobrunner import clock, lifecycle
from jobrunner.errors import JobNotFound, NotADatabase, StoreUnavailable
from jobrunner.lifecycle import Dependency, Outcome, State
from jobrunner.models import (
    Attempt,
    CancelResult,
    Event,
    InsertResult,
    Job,
    JobInsert,
    JobQuery,
    SearchPage,
)
from jobrunner.store import WAKE_SUBMIT, WAKE_TRAILING
from jobrunner.store.pg.claims import PgClaims
from jobrunner.store.pg.coordination import PgCoordination
from jobrunner.store.pg.deps import insert_after, release, revive
from jobrunner.store.pg.feed import Q, append_events
from jobrunner.store.pg.hooks import PgHooks
from jobrunner.store.pg.output import PgOutput
from jobrunner.store.pg.schema import SCHEMA_VERSION, check_ours, migrate
from jobrunner.store.pg.signals import (
    FeedListener,
    PollingFeed,
    QuietWaker,
    WakeListener,
    WakeWindow,
    listeners,
    notify,
)
from jobrunner.store.sqlite_sql import (
    JOB_COLUMNS,
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
FOLD_AT = 10_000  # count deltas a reader sums before it folds them itself
STATES = {s.value for s in State}


class PostgresStore(PgClaims, PgCoordination, PgHooks):
    """One connection (autocommit; write methods open their own transaction)."""

    # A submit's transaction NOTIFYs the daemons itself, at its commit: no wake-up for a
    # submit that rolled back, no round trip after it (ops.submit sends none).
    wakes_on_submit = True

    def __init__(
        self, url: str, *, create: bool = True, writer: bool = False, listen: bool = True
    ) -> None:
        self.path = url
        self.listen = listen  # false: no LISTEN connections (a pooler in transaction mode)
        self.conn: Any = None
        self.wakes = WakeWindow()  # when this store's submits last woke each queue
        self._connect()
        self.applied_migrations: list[int] = []
        try:
            version = check_ours(self.conn, _shown(url))
            self.schema_version = version
            if create or (writer and version > 0):
                self.applied_migrations = migrate(self.conn)
                self.schema_version = SCHEMA_VERSION
        except psycopg.OperationalError as exc:
            # connected, then lost (a server restarting): as retryable as not connecting
            raise self._lost(exc) from None
        except BaseException:
            self.close()
            raise
        if self.schema_version == 0:  # nothing of ours to read or change: say so
            self.close()
            raise NotADatabase(
                f"{_shown(url)}: no jobrunner database here (submit a job or start the "
                "daemon to create one, or pass --db)"
            )
        self._output = PgOutput(self)
        # Hosts' clocks disagree; the database's is the one they share (clock.py).
        clock.follow(self.db_time)

    def _connect(self) -> None:
        try:
            self.conn = psycopg.connect(self.path, autocommit=True)
        except psycopg.OperationalError as exc:
            reason = _first_line(exc).removeprefix("connection failed: ")
            raise StoreUnavailable(
                f"{_shown(self.path)}: cannot reach the database ({reason}); try again"
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
        return self._sql_rows(Q[name], params)

    def _sql_rows(self, sql: str, params: Any = ()) -> list[Any]:
        """_rows of a query made from a named one (store/search.py)."""
        for again in (True, False):
            if self.conn.closed:
                self._connect()
            try:
                return list(self.conn.execute(sql, params).fetchall())
            except psycopg.OperationalError as exc:
                error = self._lost(exc)
                if not again:
                    raise error from None
        raise AssertionError("unreachable")

    def db_time(self) -> float:
        """The database's clock, read on this store's connection (never reconnecting: a
        closed store tells no time)."""
        return float(self.conn.execute(Q["db_time"]).fetchone()[0])

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()

    # -- jobs: submit ---------------------------------------------------------------------

    def job_insert_many(self, jobs: Sequence[JobInsert], now: float) -> list[InsertResult]:
        results: list[InsertResult] = []
        events: list[tuple[Any, ...]] = []
        plain: list[tuple[Any, ...]] = []
        began = time.monotonic()
        with self._tx() as cur:
            for index, job in enumerate(jobs):
                row = insert_row(job, now)
                if job.key is None and not (job.after or job.after_ended):
                    plain.append(row)
                    continue
                if plain:  # keep ids in submit order
                    self._insert_plain(cur, plain, now, results, events)
                    plain = []
                if job.after or job.after_ended:
                    results.append(insert_after(cur, job, row, now, events, index)[0])
                    continue
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
            made = {job.queue for job, r in zip(jobs, results, strict=True) if r.created}
            due = self.wakes.due(made, began)
            append_events(cur, events, WAKE_TRAILING if due else None)
        self._submitted(made, due, began)
        return results

    def _submitted(self, made: set[str], due: list[str], began: float) -> None:
        """After a submit's commit: date the wake-ups it sent, and send one now for a
        queue it left silent if its commit came too late for the daemons' second claim
        (WakeWindow). A fast submitter sends a few hundred NOTIFYs a second, not one
        per transaction: each wakes every daemon on every host."""
        self.wakes.woke(due, began)
        late = self.wakes.late(made.difference(due), time.monotonic())
        if late:
            sent = time.monotonic()
            with contextlib.suppress(psycopg.OperationalError):  # best effort: polls remain
                notify(self.conn, WAKE_TRAILING)
                self.wakes.woke(late, sent)

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
        began = time.monotonic()
        made = {template.queue} if args_json else set()
        due = self.wakes.due(made, began)
        with self._tx() as cur:
            rows = [(*head, args, *tail) for args in args_json]
            if rows:
                self._insert_plain(cur, rows, now, results, events)
            append_events(cur, events, WAKE_TRAILING if due else None)
        self._submitted(made, due, began)
        return [r.id for r in results]

    # -- jobs: read -----------------------------------------------------------------------

    def job_get(self, job_id: int) -> Job | None:
        rows = self._rows("job_get", (job_id,))
        return job_from_row(rows[0]) if rows else None

    def queue_rate_counts(self) -> dict[str, tuple[float, int]]:
        return {q: (float(w), int(n)) for q, w, n in self._rows("queue_rates")}

    def job_dependencies(self, job_id: int) -> list[Dependency]:
        return [
            Dependency(after_id, need, State(state) if state else None)
            for after_id, need, state in self._rows("deps_list", (job_id,))
        ]

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

    def job_search(
        self, query: JobQuery, before: int | None, limit: int, window: int = 100_000
    ) -> SearchPage:
        from jobrunner.store.search import PAGE_TAIL, search

        page = Q["job_search"].format(what=JOB_COLUMNS, tail=PAGE_TAIL.format(limit="%(limit)s"))

        def matches(params: dict[str, Any]) -> list[Job]:
            return [job_from_row(r) for r in self._sql_rows(page, params)]

        return search(matches, self._search_window, query, before, limit, window)

    def job_search_ids(self, query: JobQuery, window: int = 100_000) -> list[int]:
        from jobrunner.store.search import IDS_TAIL, every_id

        sql = Q["job_search"].format(what="id", tail=IDS_TAIL)
        return every_id(
            lambda params: [r[0] for r in self._sql_rows(sql, params)],
            self._search_window,
            query,
            window,
        )

    def _search_window(self, params: dict[str, Any]) -> tuple[int, int | None]:
        held, lowest = self._rows("job_search_window", params)[0]
        return int(held), lowest

    def job_counts(self) -> dict[tuple[str, str], int]:
        rows = self._rows("counts")
        if sum(r[3] for r in rows) > FOLD_AT:  # no leader folded them lately (no daemon)
            self.job_counts_fold()
        return {(s, q): n for s, q, n, _ in rows if n > 0}

    def job_counts_fold(self) -> None:
        with self._tx() as cur:
            cur.execute(Q["counts_fold"])

    def job_recent_failures(self, limit: int) -> list[Job]:
        return [job_from_row(r) for r in self._rows("recent_failures", {"limit": limit})]

    def job_running(self, limit: int) -> list[Job]:
        return [job_from_row(r) for r in self._rows("running_jobs", (limit,))]

    def job_ended_per_minute(self, since: float) -> dict[tuple[str, int], int]:
        return {(s, m): n for s, m, n in self._rows("ended_per_minute", {"since": since})}

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
                events = [event_row(now, job_id, got[0], "job.cancelled", "cancelled", CANCEL_DATA)]
                ready = release(cur, [job_id], now, events) if got[1] else None
                append_events(cur, events, WAKE_SUBMIT if ready else None)
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
            had_dependents = []
            for job_id in ids:
                cur.execute(Q["dead_retry"], (now, job_id))
                got = cur.fetchone()
                if got:
                    moved.append(job_id)
                    events.append(
                        event_row(now, job_id, got[0], "job.queued", "queued", RETRY_DATA)
                    )
                    if got[1]:
                        had_dependents.append(job_id)
            if had_dependents:  # the jobs their deaths cancelled wait for them again
                revive(cur, had_dependents, now, events)
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
        elif state == State.BLOCKED.value:
            rows = self._rows("blocked_ids", (queue, queue))
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

    def job_delete_ids(self, job_ids: Sequence[int]) -> list[int]:
        with self._tx() as cur:
            cur.execute(Q["ended_delete_ids"], (list(job_ids),))
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

    def events_watch(self, output: bool = False) -> FeedListener | PollingFeed:
        return FeedListener(self.path, output) if self.listen else PollingFeed()

    def events_prune(self, before: float, batch: int = 1000) -> int:
        with self._tx() as cur:
            cur.execute(Q["events_prune_upto"], (batch, before))
            upto = cur.fetchone()[0]
            if upto is None:
                return 0
            cur.execute(Q["events_delete_upto"], (upto,))
            return int(cur.rowcount)

    # -- what differs by backend -----------------------------------------------------------

    def waker(self, name: str) -> WakeListener | QuietWaker:
        return WakeListener(self.path) if self.listen else QuietWaker()

    def wake(self, message: bytes) -> int:
        """Every daemon of the database, on every host (best effort: 0 when it fails)."""
        if self.conn.closed:
            self._connect()
        try:
            notify(self.conn, message)
            return listeners(self.conn)
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
    from jobrunner.store import shown_location

    return shown_location(url)
