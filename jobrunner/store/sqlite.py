"""The SQLite store (apsw): WAL, BEGIN IMMEDIATE for every write, fenced transitions.

The only module besides migrations that holds SQL; the queries live in queries.sql.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

import apsw

from jobrunner import lifecycle
from jobrunner.errors import (
    JobNotFound,
    NotADatabase,
    StoreUnavailable,
)
from jobrunner.jsonutil import dumps as _dumps
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
from jobrunner.store import WAKE_SUBMIT
from jobrunner.store.forkguard import ForkedConnectionError as ForkedConnectionError  # re-export
from jobrunner.store.forkguard import open_stores
from jobrunner.store.sqlite_claims import SQLiteClaims
from jobrunner.store.sqlite_daemons import SQLiteDaemons
from jobrunner.store.sqlite_deps import insert_after
from jobrunner.store.sqlite_deps import release as release_dependents
from jobrunner.store.sqlite_deps import revive as revive_dependents
from jobrunner.store.sqlite_export import retired_error, retired_to
from jobrunner.store.sqlite_files import (
    file_id,
    leave_moved_path,
    open_or_create_file,
    read_only_name,
    read_only_reason,
    remove_new_sidecars,
    sidecar_ids,
)
from jobrunner.store.sqlite_maintenance import SQLiteMaintenance
from jobrunner.store.sqlite_output import FileOutput
from jobrunner.store.sqlite_sql import (
    APPLICATION_ID,
    BUSY_TIMEOUT_MS,
    INSERT_CHUNK,
    JOB_COLUMNS,
    LIST_INDEXES,
    MIGRATIONS,
    SCHEMA_VERSION,
    STATES,
    Q,
    event_from_row,
    event_row,
    insert_many_sql,
    insert_row,
    job_from_row,
    job_list_sql,
    submitted_event,
)
from jobrunner.store.sqlite_tx import (
    DAMAGE_ERRORS,
    WRITE_ERRORS,
    damaged,
    refusing_damage,
    write_transaction,
)
from jobrunner.store.sqlite_watch import Watch
from jobrunner.store.sqlite_webhooks import SQLiteWebhooks

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from typing import Any

    from jobrunner.store.sqlite_wake import WakeListener

SUBMITTED = {s.value: lifecycle.EVENT_TYPES[s] for s in (State.QUEUED, State.SCHEDULED)}
CANCEL_DATA = {"reason": "cancelled before it started"}
RETRY_DATA = {"reason": "dlq retry"}
MAX_ROWID = 2**63 - 1


@refusing_damage  # a damaged file: DatabaseCorrupt from every method, reads included
class SQLiteStore(SQLiteClaims, SQLiteDaemons, SQLiteWebhooks):
    """One connection; not shared across fork (workers never open the database)."""

    wakes_on_submit = False  # ops.submit wakes the daemons after the commit (sqlite_wake.py)

    def __init__(
        self,
        path: str,
        *,
        create: bool = True,
        synchronous: str = "FULL",
        writer: bool = False,
        _new: bool = False,
    ) -> None:
        """Open the jobrunner database at `path`; with `create`, make one when none is
        there. A database that cannot be written (a read-only mount, say) is opened to be
        read, creating no file; its writes fail with StoreUnavailable, and a `writer`
        (the daemon) is refused at once. (`_new`: `path` is the blank file
        create_database builds a database in.)"""
        self.path = path
        self.applied_migrations: list[int] = []
        self.retired: tuple[str, float] | None = None  # read once the file is open
        self.schema_version = SCHEMA_VERSION  # once open: older ones are migrated
        if not _new:
            open_or_create_file(
                path,
                create,
                lambda tmp: SQLiteStore(tmp, synchronous=synchronous, _new=True).close(),
            )
        # why the file cannot be written here, or None
        self.read_only = read_only_reason(path) if not _new else None
        if self.read_only and writer:
            raise StoreUnavailable(f"{path}: cannot write the database: {self.read_only}")
        name, flags = read_only_name(path) if self.read_only else (path, apsw.SQLITE_OPEN_READWRITE)
        sidecars = {s for s in ("-wal", "-shm") if os.path.exists(path + s)}
        try:
            self.db: Any = apsw.Connection(name, flags=flags)
            open_stores.add(self)
            # Until the file is known to be ours, closing must not checkpoint: that would
            # fold another application's leftover -wal into its database and delete it.
            self.db.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
            self.db.setbusytimeout(BUSY_TIMEOUT_MS)
            try:
                current = self._check_ours(_new)
            except (NotADatabase, apsw.CorruptError):
                self._close_quietly()
                remove_new_sidecars(path, sidecars)
                raise
            self.db.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0)
            if synchronous.upper() not in ("FULL", "NORMAL"):
                raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
            if self.read_only:
                if not current:
                    raise StoreUnavailable(
                        f"{path}: the database needs an upgrade this jobrunner would write, "
                        f"but cannot: {self.read_only}"
                    )
            else:
                if _new:  # (before WAL, which fixes it) what prune frees goes back to the
                    # file system by itself, in small steps (SQLiteMaintenance.release_free_pages)
                    self.db.execute(Q["auto_vacuum_incremental"])
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            if not current:
                # Only a new or older database is written to here: opening one that is
                # up to date must not write, or `status` would fail on a full disk.
                self._migrate()
            # The files this store has open (-wal and -shm stay open, and in place, while
            # a connection is): to notice when the path names other ones, see SQLiteMaintenance.moved.
            # a file `jobrunner copy --to` moved: read, never written (store/sqlite_export.py)
            self.retired = retired_to(self.db)
            if self.retired is not None and writer:
                raise retired_error(path, self.retired)
            self._maintenance = SQLiteMaintenance(path, self.db, file_id(path))
            self._sidecars = sidecar_ids(path)
            self._output = FileOutput(path)
        except apsw.NotADBError:
            self._close_quietly()
            raise NotADatabase(f"{path}: not a jobrunner database; left untouched") from None
        except apsw.CorruptError as exc:  # e.g. a damaged first page
            self._close_quietly()
            raise damaged(path, exc) from None
        except (apsw.BusyError, apsw.IOError, apsw.FullError, apsw.CantOpenError) as exc:
            self._close_quietly()
            raise StoreUnavailable(f"{path}: cannot open the database: {exc}") from None
        except BaseException:
            self._close_quietly()
            raise

    def _close_quietly(self) -> None:
        open_stores.discard(self)
        db = getattr(self, "db", None)
        if db is not None:
            with contextlib.suppress(apsw.Error):
                db.close()

    # -- setup --------------------------------------------------------------------------

    def _check_ours(self, new: bool) -> bool:
        """Read-only checks, before anything is written: ours, and not from the future;
        True when ours and up to date. A blank SQLite file (no tables, no application
        id) becomes ours only when `new`, the file create_database made: no other file
        is turned into a jobrunner database."""
        app_id = self.db.execute("PRAGMA application_id").fetchall()[0][0]
        version = self.db.execute("PRAGMA user_version").fetchall()[0][0]
        if app_id == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise NotADatabase(
                    f"{self.path}: database schema version {version} is newer than this "
                    f"jobrunner understands ({SCHEMA_VERSION}); upgrade jobrunner"
                )
            return version == SCHEMA_VERSION
        tables = self.db.execute("SELECT count(*) FROM sqlite_schema").fetchall()[0][0]
        if app_id != 0 or tables:
            raise NotADatabase(
                f"{self.path}: an SQLite database of another application; left untouched"
            )
        if not new:
            raise NotADatabase(
                f"{self.path}: an empty SQLite database, not a jobrunner one; left untouched"
            )
        return False

    def _migrate(self) -> None:
        # not _tx: an older file may not have the table that tells a retired one
        with write_transaction(self.db, self.path):
            version = self.db.execute("PRAGMA user_version").fetchall()[0][0]
            for number, sql in MIGRATIONS:
                if number > version:
                    self.db.execute(sql)
                    self.db.execute(f"PRAGMA user_version = {number}")
                    self.applied_migrations.append(number)
            self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def _tx(self) -> AbstractContextManager[Any]:
        if self.retired is not None:
            raise retired_error(self.path, self.retired)
        if self.read_only:
            raise StoreUnavailable(
                f"{self.path}: cannot write the database: {self.read_only}; nothing was written"
            )
        return self._write_unless_retired()

    @contextlib.contextmanager
    def _write_unless_retired(self) -> Iterator[Any]:
        """A write transaction, refused (rolled back) on a file retired since it was
        opened: a submit or daemon that opened it while `copy --to` ran writes nothing
        into it afterwards (one lookup in a one-row table per transaction)."""
        with write_transaction(self.db, self.path) as db:
            moved = retired_to(db)
            if moved is not None:
                self.retired = moved
                raise retired_error(self.path, moved)
            yield db

    def close(self) -> None:
        open_stores.discard(self)
        if self._maintenance.moved() is not None:
            leave_moved_path(self.db, self.path, self._sidecars)
        try:
            self.db.close()
        except (*WRITE_ERRORS, *DAMAGE_ERRORS):
            # The last connection's close checkpoints the WAL; on a full or failing disk
            # (or a damaged file) that fails, which loses nothing (the WAL stays and the
            # next open replays it), so the close is forced rather than failing a command
            # that succeeded.
            self.db.close(True)

    # -- jobs: submit ---------------------------------------------------------------------

    def job_insert_many(self, jobs: Sequence[JobInsert], now: float) -> list[InsertResult]:
        results: list[InsertResult] = []
        plain: list[tuple[Any, ...]] = []
        with self._tx() as db:
            for index, job in enumerate(jobs):
                row = insert_row(job, now)
                if job.key is None and not (job.after or job.after_ended):
                    plain.append(row)
                    continue
                if plain:  # keep ids in submit order
                    results.extend(self._insert_plain(db, plain))
                    plain = []
                if job.after or job.after_ended:
                    results.append(insert_after(db, job, row, now, index)[0])
                    continue
                got = db.execute(Q["job_insert_keyed"], row).fetchall()
                if got:
                    results.append(InsertResult(got[0][0], True))
                    db.execute(Q["event_insert"], submitted_event(now, got[0][0], row))
                else:
                    existing = db.execute(Q["job_id_by_key"], (job.key,)).fetchall()
                    results.append(InsertResult(existing[0][0], False))
            if plain:
                results.extend(self._insert_plain(db, plain))
        return results

    def job_insert_calls(
        self, template: JobInsert, args_json: Sequence[str], now: float
    ) -> list[int]:
        """One job per entry of `args_json` (its args, as checked JSON text), all else as
        in `template`; one transaction. The bulk path: the row is built once and only
        the args vary."""
        if template.key is not None or template.schedule is not None:
            raise ValueError("jobs inserted by calls carry no key and no schedule")
        row = insert_row(template, now)
        head, tail = row[:3], row[4:]
        rows = [(*head, args, *tail) for args in args_json]
        with self._tx() as db:
            return [r.id for r in self._insert_plain(db, rows)]

    @staticmethod
    def _insert_plain(db: Any, rows: list[tuple[Any, ...]]) -> list[InsertResult]:
        """Insert `rows` (keyless) and their `job.queued`/`job.scheduled` events."""
        whole = len(rows) - len(rows) % INSERT_CHUNK
        if whole:
            sql = insert_many_sql(INSERT_CHUNK)
            for start in range(0, whole, INSERT_CHUNK):
                db.execute(sql, [v for row in rows[start : start + INSERT_CHUNK] for v in row])
        if whole < len(rows):
            db.executemany(Q["job_insert"], rows[whole:])
        # Inside one write transaction on an AUTOINCREMENT table the new ids are
        # consecutive, ending at last_insert_rowid.
        last = db.last_insert_rowid()
        first = last - len(rows) + 1
        for state in {row[0] for row in rows}:  # their events, made by the database
            db.execute(Q["events_of_inserted"], (state, first, last, SUBMITTED[state]))
        return [InsertResult(i, True) for i in range(first, last + 1)]

    # -- jobs: read -----------------------------------------------------------------------

    def job_get(self, job_id: int) -> Job | None:
        rows = self.db.execute(Q["job_get"], (job_id,)).fetchall()
        return job_from_row(rows[0]) if rows else None

    def queue_rate_counts(self) -> dict[str, tuple[float, int]]:
        return {q: (w, n) for q, w, n in self.db.execute(Q["queue_rates"])}

    def job_dependencies(self, job_id: int) -> list[Dependency]:
        return [
            Dependency(after_id, need, STATES.get(state) if state else None)
            for after_id, need, state in self.db.execute(Q["deps_list"], (job_id,))
        ]

    def job_list(
        self,
        state: str | Sequence[str] | None = None,
        queue: str | None = None,
        limit: int = 50,
        task: str | None = None,
        before: int | None = None,
    ) -> list[Job]:
        """The newest jobs in any of `state` (one state or several; None: every state),
        in `queue`, of `task` (a function or a [tasks.NAME]); with `before`, only those
        with a smaller id (the next page, stable while jobs are added)."""
        if state is None:
            sql = Q["job_list"]
        else:
            states = (state,) if isinstance(state, str) else tuple(state)
            unknown = [s for s in states if s not in LIST_INDEXES]
            if unknown:
                raise ValueError(f"not a job state: {unknown[0]!r}")
            if not states:
                return []
            sql = job_list_sql(tuple(sorted(set(states))))
        upto = MAX_ROWID if before is None else before - 1
        return [job_from_row(r) for r in self.db.execute(sql, (queue, task, limit, upto))]

    def job_search(
        self, query: JobQuery, before: int | None, limit: int, window: int = 100_000
    ) -> SearchPage:
        from jobrunner.store.search import PAGE_TAIL, search

        page = Q["job_search"].format(what=JOB_COLUMNS, tail=PAGE_TAIL.format(limit=":limit"))

        def matches(params: dict[str, Any]) -> list[Job]:
            return [job_from_row(r) for r in self.db.execute(page, params)]

        return search(matches, self._search_window, query, before, limit, window, _dumps)

    def job_search_ids(self, query: JobQuery, window: int = 100_000) -> list[int]:
        from jobrunner.store.search import IDS_TAIL, every_id

        sql = Q["job_search"].format(what="id", tail=IDS_TAIL)

        def ids(params: dict[str, Any]) -> list[int]:
            return [r[0] for r in self.db.execute(sql, params)]

        return every_id(ids, self._search_window, query, window, _dumps)

    def _search_window(self, params: dict[str, Any]) -> tuple[int, int | None]:
        held, lowest = next(iter(self.db.execute(Q["job_search_window"], params)))
        return int(held), lowest

    def job_counts(self) -> dict[tuple[str, str], int]:
        return {(s, q): n for s, q, n in self.db.execute(Q["counts"])}

    def job_counts_fold(self) -> None:
        return None  # one row per (state, queue) already: the triggers update in place

    def job_recent_failures(self, limit: int) -> list[Job]:
        return [job_from_row(r) for r in self.db.execute(Q["recent_failures"], (limit,))]

    def job_running(self, limit: int) -> list[Job]:
        """Running jobs, longest-running first."""
        return [job_from_row(r) for r in self.db.execute(Q["running_jobs"], (limit,))]

    def job_count_ended_since(self, since: float) -> dict[str, int]:
        """How many jobs ended after `since`, by final state (throughput)."""
        return {state: n for state, n in self.db.execute(Q["ended_since"], (since,))}

    def job_ended_per_minute(self, since: float) -> dict[tuple[str, int], int]:
        return {(s, m): n for s, m, n in self.db.execute(Q["ended_per_minute"], (since,))}

    def attempt_list(self, job_id: int) -> list[Attempt]:
        return [
            Attempt(
                r[0], r[1], Outcome(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]
            )
            for r in self.db.execute(Q["attempts_of"], (job_id,))
        ]

    def job_next_due(self) -> float | None:
        value = self.db.execute(Q["next_due"]).fetchall()[0][0]
        return float(value) if value is not None else None

    # -- jobs: cancel, retry, delete (claims and their ends: sqlite_claims.py) ------------

    def job_cancel(self, job_id: int, now: float) -> CancelResult:
        ready: set[str] = set()
        with self._tx() as db:
            got = db.execute(Q["cancel_waiting"], (now, job_id)).fetchall()
            if got:
                db.execute(
                    Q["event_insert"],
                    event_row(now, job_id, got[0][0], "job.cancelled", "cancelled", CANCEL_DATA),
                )
                if got[0][1]:  # jobs run after it: settled in this transaction
                    ready = release_dependents(db, [job_id], now)
                outcome = "cancelled"
            else:
                db.execute(Q["cancel_request"], (job_id,))
                if db.changes():
                    outcome = "requested"
                else:
                    rows = db.execute(Q["job_state"], (job_id,)).fetchall()
                    if not rows:
                        raise JobNotFound(f"no job with id {job_id}")
                    outcome = rows[0][0]
        if ready:
            self.wake(WAKE_SUBMIT)  # jobs that ran after it whatever its end
        return CancelResult(outcome)

    def job_cancel_requests(self, owner: str) -> list[tuple[int, int]]:
        return [(r[0], r[1]) for r in self.db.execute(Q["cancel_requests"], (owner,))]

    def job_retry_dead(self, job_ids: Sequence[int] | None, now: float) -> list[int]:
        """Give dead jobs a fresh round of attempts, and the jobs their deaths cancelled
        back to waiting for them; returns the ids of the dead jobs that moved."""
        moved: list[int] = []
        with self._tx() as db:
            ids = [r[0] for r in db.execute(Q["dead_ids"])] if job_ids is None else list(job_ids)
            had_dependents = []
            for job_id in ids:
                got = db.execute(Q["dead_retry"], (now, job_id)).fetchall()
                if got:
                    moved.append(job_id)
                    db.execute(
                        Q["event_insert"],
                        event_row(now, job_id, got[0][0], "job.queued", "queued", RETRY_DATA),
                    )
                    if got[0][1]:
                        had_dependents.append(job_id)
            if had_dependents:
                revive_dependents(db, had_dependents, now)  # the jobs their deaths cancelled
        return moved

    def job_count_ended(self, state: str, before: float) -> int:
        """How many jobs in a final `state` ended before `before` (what job_delete_ended
        would delete, over all its batches)."""
        if State(state) not in lifecycle.FINAL:
            raise ValueError(f"only ended jobs can be deleted, not {state!r}")
        return int(self.db.execute(Q["ended_count"], (state, before)).fetchall()[0][0])

    def job_ids(self, state: str, queue: str | None = None) -> list[int]:
        """The ids of the jobs in a state that has not ended (in `queue`, or any), in
        order: what `cancel --state/--queue` names."""
        if State(state) in lifecycle.FINAL:
            raise ValueError(f"only jobs that have not ended are listed by id, not {state!r}")
        if state == State.RUNNING.value:
            rows = self.db.execute(Q["running_ids"], (queue,))
        elif state == State.BLOCKED.value:
            rows = self.db.execute(Q["blocked_ids"], (queue,))
        else:
            rows = self.db.execute(Q["waiting_ids"], (state, queue))
        return sorted(r[0] for r in rows)

    def job_delete_ended(self, state: str, before: float, batch: int = 1000) -> list[int]:
        """Delete up to `batch` jobs in a final `state` that ended before `before`."""
        if State(state) not in lifecycle.FINAL:
            raise ValueError(f"only ended jobs can be deleted, not {state!r}")
        with self._tx() as db:
            ids = [r[0] for r in db.execute(Q["ended_delete"], (state, before, batch))]
            if ids:
                db.execute(Q["attempts_delete"], (_dumps(ids),))
        return ids

    def job_delete_ids(self, job_ids: Sequence[int]) -> list[int]:
        """Delete the jobs named that have ended; returns those deleted."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute(Q["ended_delete_ids"], (_dumps(list(job_ids)),))]
            if ids:
                db.execute(Q["attempts_delete"], (_dumps(ids),))
        return ids

    # -- the event feed (docs/architecture.md, "Events") ---------------------------------

    def events_after(self, seq: int, job_id: int | None = None, limit: int = 1000) -> list[Event]:
        """The events after `seq`, oldest first: of every job, or of one."""
        if job_id is None:
            rows = self.db.execute(Q["events_after"], (seq, limit))
        else:
            rows = self.db.execute(Q["events_of_job_after"], (job_id, seq, limit))
        return [event_from_row(r) for r in rows]

    def events_last_seq(self) -> int:
        """The newest event's seq (0 for none): where a reader that wants only what comes
        next starts."""
        return int(self.db.execute(Q["events_last_seq"]).fetchall()[0][0])

    def events_watch(self, output: bool = False) -> Watch:
        """Something to sleep on until a commit (or, with `output`, new output of a
        job): the write-ahead log and the log folders, watched with inotify
        (sqlite_watch.py)."""
        also = self._output.watched() if output else []
        return Watch([self.path + "-wal", *also], self._data_version)

    def _data_version(self) -> int:
        return int(self.db.execute(Q["data_version"]).fetchall()[0][0])

    def events_prune(self, before: float, batch: int = 1000) -> int:
        """Delete up to `batch` of the oldest events, those from before `before`; returns
        how many went (fewer than `batch`: nothing older is left)."""
        with self._tx() as db:
            upto = db.execute(Q["events_prune_upto"], (batch, before)).fetchall()[0][0]
            if upto is None:
                return 0
            db.execute(Q["events_delete_upto"], (upto,))
            return int(db.changes())

    # -- capabilities (docs/architecture.md, "The store protocol") ----------------------

    def maintenance(self) -> SQLiteMaintenance:
        return self._maintenance

    def waker(self, name: str) -> WakeListener:
        """The daemon `name`'s end of wake-ups: a datagram socket beside the database."""
        from jobrunner.store.sqlite_wake import WakeListener

        return WakeListener(self.path, name)

    def wake(self, message: bytes) -> int:
        """Wake every daemon of this database on this machine (best effort)."""
        from jobrunner.store.sqlite_wake import notify

        return notify(self.path, message)

    def output(self) -> FileOutput:
        return self._output
