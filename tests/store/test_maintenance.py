"""The store's maintenance methods: backup, WAL checkpoints, and the reads `top` makes
(ended-since counts, running jobs). Real database files; a second connection plays
the long reader."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from jobrunner.errors import UsageError
from jobrunner.lifecycle import Outcome, State
from jobrunner.models import AttemptEnd, ClaimRequest, Job, JobInsert
from jobrunner.store import open_store
from jobrunner.store.base import Store
from jobrunner.store.sqlite import Q, SQLiteStore

NOW = 1_800_000_000.0
OWNER = "host-a:100:aaaa"


def ended(store: Store, state: State, finished_at: float, **fields: Any) -> Job:
    """A job that ended in `state` at `finished_at` (cancelled: before it ever ran)."""
    (result,) = store.job_insert_many([JobInsert(task="app.tasks:work", **fields)], NOW - 100)
    if state is State.CANCELLED:
        store.job_cancel(result.id, finished_at)
    else:
        (job,) = store.job_claim(ClaimRequest(OWNER, NOW - 50, 1))
        assert job.id == result.id
        outcome = Outcome.SUCCEEDED if state is State.SUCCEEDED else Outcome.FAILED
        end = AttemptEnd(
            job.id, job.attempts, outcome, state, started_at=NOW - 50, finished_at=finished_at
        )
        assert store.job_end_many(OWNER, [end]) == [True]
    found = store.job_get(result.id)
    assert found is not None and found.state is state
    return found


# -- ended-since counts and running jobs (backend-neutral) --------------------------------------


def test_count_ended_since_counts_jobs_finished_after_the_bound_by_state(store: Store) -> None:
    assert store.job_count_ended_since(0.0) == {}
    ended(store, State.SUCCEEDED, NOW - 120)  # outside the window
    ended(store, State.SUCCEEDED, NOW - 30)
    ended(store, State.SUCCEEDED, NOW - 1)
    ended(store, State.DEAD, NOW - 10, retries=0)
    ended(store, State.CANCELLED, NOW - 5)
    (waiting,) = store.job_insert_many([JobInsert(task="app.tasks:work")], NOW)
    assert store.job_count_ended_since(NOW - 60) == {"succeeded": 2, "dead": 1, "cancelled": 1}
    assert store.job_count_ended_since(NOW - 1) == {}  # strictly after
    assert store.job_count_ended_since(NOW - 200) == {"succeeded": 3, "dead": 1, "cancelled": 1}
    assert store.job_get(waiting.id) is not None


def test_running_lists_only_running_jobs_longest_running_first(store: Store) -> None:
    ended(store, State.SUCCEEDED, NOW - 1)
    ids = [r.id for r in store.job_insert_many([JobInsert(task="a:b")] * 3, NOW - 10)]
    first = store.job_claim(ClaimRequest(OWNER, NOW - 9, 1))
    second = store.job_claim(ClaimRequest(OWNER, NOW - 5, 1))
    running = store.job_running(10)
    assert [j.id for j in running] == [first[0].id, second[0].id] == ids[:2]
    assert all(j.state is State.RUNNING for j in running)
    assert [j.id for j in store.job_running(1)] == [first[0].id]


# -- backup --------------------------------------------------------------------------------------


def test_backup_is_a_valid_database_with_the_same_jobs(sqlite: SQLiteStore, tmp_path: Path) -> None:
    store = sqlite  # a backup is of the database's file: SQLite's alone
    done = ended(store, State.SUCCEEDED, NOW - 1, args=[1, "two"], key="k1")
    dead = ended(store, State.DEAD, NOW - 2, retries=0)
    store.job_insert_many([JobInsert(task="a:b", queue="q2", priority=5)] * 3, NOW)
    target = tmp_path / "copy.db"
    size = store.maintenance().backup(str(target))
    assert size == target.stat().st_size > 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # as private as the database
    copy = open_store(str(target), create=False)
    try:
        assert copy.job_list(limit=100) == store.job_list(limit=100)
        assert copy.attempt_list(dead.id) == store.attempt_list(dead.id)
        assert copy.job_counts() == store.job_counts()
        # still a jobrunner database that takes writes
        copy.job_insert_many([JobInsert(task="a:b")], NOW)
        assert copy.job_get(done.id) == done
    finally:
        copy.close()


def test_backup_refuses_an_existing_path_and_leaves_it_alone(
    sqlite: SQLiteStore, tmp_path: Path
) -> None:
    store = sqlite  # a backup is of the database's file: SQLite's alone
    existing = tmp_path / "there.db"
    existing.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        store.maintenance().backup(str(existing))
    assert existing.read_bytes() == b"precious"
    empty = tmp_path / "empty.db"
    empty.touch()  # even an empty file: it is someone's
    with pytest.raises(UsageError, match="already exists"):
        store.maintenance().backup(str(empty))
    assert empty.read_bytes() == b""


def test_backup_into_a_missing_folder_is_a_clear_error(sqlite: SQLiteStore, tmp_path: Path) -> None:
    store = sqlite  # a backup is of the database's file: SQLite's alone
    target = tmp_path / "no" / "such" / "copy.db"
    with pytest.raises(UsageError, match="cannot create"):
        store.maintenance().backup(str(target))
    assert not target.parent.exists()


def test_backup_while_another_connection_writes(sqlite: SQLiteStore, tmp_path: Path) -> None:
    """Online: a write transaction open elsewhere neither blocks the backup nor leaks into it."""
    store = sqlite
    store.job_insert_many([JobInsert(task="a:b")] * 5, NOW)
    writer = apsw.Connection(store.path)
    writer.setbusytimeout(5000)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM jobs")
    try:
        store.maintenance().backup(str(tmp_path / "copy.db"))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    copy = open_store(str(tmp_path / "copy.db"), create=False)
    try:
        assert len(copy.job_list(limit=100)) == 5
    finally:
        copy.close()


# -- WAL checkpoints (SQLite) ---------------------------------------------------------------------


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = open_store(str(tmp_path / "jobs.db"))
    assert isinstance(opened, SQLiteStore)
    yield opened
    opened.close()


def burst(store: Store, jobs: int = 2000) -> None:
    store.job_insert_calls(JobInsert(task="a:b"), [f'["{"x" * 500}"]'] * jobs, NOW)


def wal_size(store: Store) -> int:
    try:
        return os.stat(store.path + "-wal").st_size
    except FileNotFoundError:
        return 0


def test_wal_bytes_is_the_size_of_the_wal_file(sqlite: SQLiteStore) -> None:
    burst(sqlite)
    assert sqlite.maintenance().wal_bytes() == wal_size(sqlite) > 500_000


def test_checkpoint_truncates_the_wal(sqlite: SQLiteStore) -> None:
    burst(sqlite)
    before = wal_size(sqlite)
    assert before > 500_000
    result = sqlite.maintenance().checkpoint()
    assert not result.busy
    assert result.wal_bytes == wal_size(sqlite) == 0
    assert len(sqlite.job_list(limit=5000)) == 2000  # everything made it into the database
    other = open_store(sqlite.path)
    try:
        assert len(other.job_list(limit=5000)) == 2000
    finally:
        other.close()


def test_checkpoint_held_back_by_a_reader_neither_waits_nor_truncates(
    sqlite: SQLiteStore,
) -> None:
    burst(sqlite, 100)
    reader = apsw.Connection(sqlite.path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM jobs").fetchall() == [(100,)]  # a snapshot
    try:
        burst(sqlite, 1000)  # written after the reader's snapshot: cannot be reset past it
        started = time.monotonic()
        result = sqlite.maintenance().checkpoint()
        # the store's busy timeout is 10 s; the checkpoint must not wait on the reader
        assert time.monotonic() - started < 5
        assert result.busy
        assert result.wal_bytes == wal_size(sqlite) > 0
    finally:
        reader.execute("COMMIT")
        reader.close()
    result = sqlite.maintenance().checkpoint()
    assert (result.busy, result.wal_bytes) == (False, 0)
    # the busy timeout is back for ordinary writes
    assert sqlite.db.execute("PRAGMA busy_timeout").fetchall() == [(10_000,)]


def test_count_ended_since_is_served_by_the_ended_index(sqlite: SQLiteStore) -> None:
    plan = sqlite.db.execute("EXPLAIN QUERY PLAN " + Q["ended_since"], (NOW,)).fetchall()
    text = " ".join(str(row[-1]) for row in plan)
    assert "jobs_ended" in text and "SCAN" not in text


def test_running_jobs_is_served_by_the_running_index(sqlite: SQLiteStore) -> None:
    plan = sqlite.db.execute("EXPLAIN QUERY PLAN " + Q["running_jobs"], (10,)).fetchall()
    assert "jobs_running" in " ".join(str(row[-1]) for row in plan)
