"""The storage boundary (River's driver interface, entity-first).

Every method is one transaction. Every transition out of `running` is fenced by
(id, state='running', attempt, owner), so a late result from a rescued attempt
changes nothing. A damaged database raises DatabaseCorrupt from any method, reads
included. A PostgreSQL backend implements this same protocol and passes the
same conformance suite (tests/store).

What differs by backend sits behind four small parts (docs/architecture.md, "The store
protocol"): the waker (how a submit reaches idle daemons), the feed watch (how a reader
sleeps until a commit), the output store (where jobs' output is kept), and maintenance
(what a database in one file needs; None where there is no such thing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from jobrunner.lifecycle import Dependency
from jobrunner.models import (
    Attempt,
    AttemptEnd,
    CancelResult,
    Checkpoint,
    ClaimRequest,
    DaemonInfo,
    Delivery,
    DeliveryAttempt,
    DeliveryInsert,
    DisabledEndpoint,
    Event,
    InsertResult,
    Job,
    JobInsert,
    JobQuery,
    ScheduleState,
    SearchPage,
)


class FeedWatch(Protocol):
    """Sleeps until something is committed: wait() returns at once if a commit came
    since the last wait (or since it was made)."""

    def wait(self, timeout: float | None) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> FeedWatch: ...
    def __exit__(self, *exc: object) -> None: ...


class Waker(Protocol):
    """A daemon's end of wake-ups: one file descriptor for its poll loop, whatever the
    backend (a datagram socket for SQLite, a LISTEN connection for PostgreSQL)."""

    # true: it never wakes anyone (PostgreSQL with [postgres] listen = false); the
    # daemon looks for work and cancel requests at each poll_interval instead
    deaf: bool

    def fileno(self) -> int: ...
    # what was sent since the last drain (WAKE_* bytes); StoreUnavailable when a waker
    # that has a connection lost it: the daemon makes another (supervisor._drain_wake)
    def drain(self) -> bytes: ...
    def close(self) -> None: ...


class OutputStore(Protocol):
    """Jobs' output. Workers write it on their own host, under `local_dir`; `read` gives
    it to any reader (the log, then a running attempt's output), `delete` goes with the
    jobs. When `shared`, the files under `local_dir` are only this host's staging: the
    daemon ships them (`SharedOutput.ship`) where every host reads them."""

    local_dir: str
    shared: bool

    def read(self, job_id: int, offset: int) -> bytes: ...
    def delete(self, job_ids: Sequence[int]) -> None: ...


class SharedOutput(OutputStore, Protocol):
    def ship(
        self, cuts: Sequence[tuple[int, int]], pieces: Sequence[tuple[int, bytes]]
    ) -> list[int | None]: ...  # cuts: (job, offset) dropped first; pieces appended


class Maintenance(Protocol):
    """What a database that is one file needs: commands ask `Store.maintenance()` for it
    and say plainly when a backend has none."""

    def backup(self, path: str) -> int: ...
    def backup_output(self, path: str) -> tuple[int, int]: ...  # files, bytes
    def checkpoint(self) -> Checkpoint: ...
    def wal_bytes(self) -> int: ...
    def moved(self) -> str | None: ...  # "deleted", "replaced by another file", or None
    def check(self) -> list[str]: ...  # the integrity check's problems, [] when sound
    def vacuum(self) -> tuple[int, int]: ...  # the file's bytes before and after
    def release_free_pages(self, at_most: int) -> int: ...  # free pages there were


class Store(Protocol):
    path: str
    # the migrations this open applied (`jobrunner migrate` says which), and the schema
    # version the database is at now
    applied_migrations: list[int]
    schema_version: int

    # jobs
    def job_insert_many(self, jobs: Sequence[JobInsert], now: float) -> list[InsertResult]: ...
    def job_insert_calls(
        self, template: JobInsert, args_json: Sequence[str], now: float
    ) -> list[int]: ...
    def job_get(self, job_id: int) -> Job | None: ...
    # rated queues' current windows: queue -> (window start, jobs started in it)
    def queue_rate_counts(self) -> dict[str, tuple[float, int]]: ...
    # the jobs it runs after, each with how it must end and where it is (None: deleted)
    def job_dependencies(self, job_id: int) -> list[Dependency]: ...
    def job_list(
        self,
        state: str | Sequence[str] | None = None,
        queue: str | None = None,
        limit: int = 50,
        task: str | None = None,
        before: int | None = None,  # only ids below it
    ) -> list[Job]: ...
    def job_search(  # the dashboard's filter: a window of the newest, never the table
        self, query: JobQuery, before: int | None, limit: int, window: int = ...
    ) -> SearchPage: ...
    def job_search_ids(self, query: JobQuery, window: int = ...) -> list[int]: ...  # all
    def job_counts(self) -> dict[tuple[str, str], int]: ...  # kept as jobs change
    def job_counts_fold(self) -> None: ...  # the leader's, now and then: keeps them cheap
    def job_recent_failures(self, limit: int) -> list[Job]: ...
    def job_running(self, limit: int) -> list[Job]: ...
    def job_count_ended_since(self, since: float) -> dict[str, int]: ...
    # (final state, minutes after `since`) -> how many ended then: the overview's chart
    def job_ended_per_minute(self, since: float) -> dict[tuple[str, int], int]: ...
    def job_claim(self, request: ClaimRequest) -> list[Job]: ...
    def job_next_due(self) -> float | None: ...
    def job_end_many(self, owner: str | None, ends: Sequence[AttemptEnd]) -> list[bool]: ...
    def job_progress_many(
        self, owner: str, updates: Sequence[tuple[int, int, float, str | None, float]]
    ) -> None: ...
    def job_release_many(self, owner: str, jobs: Sequence[tuple[int, int]], now: float) -> int: ...
    def job_orphans(self, dead: Sequence[str], rescuer: str | None) -> list[Job]: ...
    def job_cancel(self, job_id: int, now: float) -> CancelResult: ...
    def job_cancel_requests(self, owner: str) -> list[tuple[int, int]]: ...
    def job_retry_dead(self, job_ids: Sequence[int] | None, now: float) -> list[int]: ...
    def job_delete_ended(self, state: str, before: float, batch: int = 1000) -> list[int]: ...
    def job_delete_ids(self, job_ids: Sequence[int]) -> list[int]: ...  # those that ended
    def job_count_ended(self, state: str, before: float) -> int: ...
    def job_ids(self, state: str, queue: str | None = None) -> list[int]: ...
    def attempt_list(self, job_id: int) -> list[Attempt]: ...

    # the event feed: one row per state change, in commit order
    def events_after(
        self, seq: int, job_id: int | None = None, limit: int = 1000
    ) -> list[Event]: ...
    def events_last_seq(self) -> int: ...
    def events_watch(self, output: bool = False) -> FeedWatch: ...  # output: jobs' too
    def events_prune(self, before: float, batch: int = 1000) -> int: ...

    # schedules
    def schedule_list(self) -> list[ScheduleState]: ...
    def schedule_fire(
        self,
        name: str,
        expected_last: float | None,
        new_last: float,
        jobs: Sequence[JobInsert],
        now: float,
    ) -> list[int] | None: ...
    def schedule_set_paused(self, name: str, paused: bool, now: float) -> None: ...
    def schedule_states(self, names: Sequence[str]) -> list[ScheduleState]: ...
    def schedule_last_jobs(self, name: str, last_fire: float) -> list[Job]: ...

    # daemons
    def daemon_register(self, info: DaemonInfo) -> None: ...
    def daemon_heartbeat(self, daemon_id: str, now: float, lease_until: float) -> bool: ...
    def daemon_expire(self, daemon_id: str) -> None: ...
    def daemon_unregister(self, daemon_id: str) -> None: ...
    def daemon_list(self) -> list[DaemonInfo]: ...

    # leases: one holder at a time per name, until it expires unless renewed
    def lease_acquire(self, name: str, owner: str, ttl: float, now: float) -> str: ...  # holder
    def lease_renew(self, name: str, owner: str, ttl: float, now: float) -> bool: ...
    def lease_release(self, name: str, owner: str) -> None: ...

    # webhooks: the feed's final events become deliveries (docs/architecture.md, "Webhooks")
    def webhook_cursor(self) -> int: ...
    def webhook_events(
        self, after: int, types: Sequence[str], limit: int
    ) -> tuple[list[tuple[Event, str | None, str | None]], int]: ...  # (event, queue, callback)
    def webhook_enqueue(
        self, after: int, upto: int, deliveries: Sequence[DeliveryInsert], now: float
    ) -> bool: ...
    def webhook_claim(
        self,
        owner: str,
        now: float,
        lease: float,
        limit: int,
        per_url: int,
        room: Mapping[str, int] | None = None,
    ) -> list[Delivery]: ...
    def webhook_next_due(self) -> float | None: ...
    def webhook_attempt_end(
        self, owner: str, ends: Sequence[tuple[DeliveryAttempt, str, float | None, str | None]]
    ) -> list[bool]: ...
    def webhook_deliveries(
        self,
        job_id: int | None = None,
        state: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Delivery]: ...
    def webhook_delivery(self, delivery_id: int) -> Delivery | None: ...
    def webhook_attempts(self, delivery_id: int) -> list[DeliveryAttempt]: ...
    def webhook_redeliver(self, delivery_id: int, now: float) -> bool: ...
    def webhook_counts(self) -> dict[str, int]: ...
    def webhook_disabled(self) -> list[DisabledEndpoint]: ...
    def webhook_enable(self, url: str) -> bool: ...
    def webhook_prune(self, before: float, batch: int = 1000) -> int: ...

    # what differs by backend
    # True: job_insert_many and job_insert_calls wake the daemons in their transaction
    # (WAKE_TRAILING, at most once per queue per WAKE_WINDOW); False: the caller wakes
    # them after it (ops.submit)
    wakes_on_submit: bool

    def waker(self, name: str) -> Waker: ...
    def wake(self, message: bytes) -> int: ...  # reaches every waker; returns how many
    def output(self) -> OutputStore: ...
    def maintenance(self) -> Maintenance | None: ...

    def close(self) -> None: ...
