"""What only the SQLite backend promises: file safety, durability settings, the schema,
refusing foreign files, no connection across fork, and index-served queue queries."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from jobrunner.errors import NotADatabase, StoreUnavailable, StoreWriteFailed
from jobrunner.lifecycle import Outcome, State
from jobrunner.models import AttemptEnd, JobInsert
from jobrunner.store import open_store
from jobrunner.store.base import ClaimRequest
from jobrunner.store.sqlite import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    ForkedConnectionError,
    Q,
    SQLiteStore,
)
from jobrunner.store.sqlite_sql import LIST_INDEXES, job_list_sql

NOW = 1_800_000_000.0
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "jobrunner" / "store" / "migrations"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    opened = open_store(str(path))
    assert isinstance(opened, SQLiteStore)
    yield opened
    opened.close()


def pragma(store: SQLiteStore, name: str) -> Any:
    return store.db.execute(f"PRAGMA {name}").fetchall()[0][0]


def sidecars(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


# -- the file ----------------------------------------------------------------------------------


def test_database_file_is_private(path: Path) -> None:
    old = os.umask(0o022)  # the common default, which would give 0644
    try:
        store = open_store(str(path))
        store.job_insert_many([JobInsert(task="a.b:c")], NOW)  # creates -wal and -shm
        for name in (path, Path(f"{path}-wal")):
            assert name.exists()
            assert os.stat(name).st_mode & 0o777 == 0o600, name
        store.close()
    finally:
        os.umask(old)


def test_wal_and_synchronous_full_by_default(store: SQLiteStore) -> None:
    assert pragma(store, "journal_mode") == "wal"
    assert pragma(store, "synchronous") == 2  # FULL: an acknowledged submit survives power loss
    assert pragma(store, "busy_timeout") >= 5000  # seconds, not milliseconds


def test_synchronous_normal_is_an_opt_in(path: Path) -> None:
    store = open_store(str(path), synchronous="normal")
    try:
        assert pragma(store, "synchronous") == 1  # type: ignore[arg-type]
        assert pragma(store, "journal_mode") == "wal"  # type: ignore[arg-type]
    finally:
        store.close()


def test_create_false_does_not_create_a_database(path: Path) -> None:
    with pytest.raises(NotADatabase):
        open_store(str(path), create=False)
    assert not path.exists()
    assert sidecars(path) == []


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotADatabase):
        open_store(str(tmp_path / "no" / "such" / "jobs.db"))
    assert not (tmp_path / "no").exists()


def test_reopening_keeps_the_data(path: Path) -> None:
    first = open_store(str(path))
    (result,) = first.job_insert_many([JobInsert(task="a.b:c", args=[42])], NOW)
    first.close()
    again = open_store(str(path), create=False)
    try:
        got = again.job_get(result.id)
        assert got is not None and got.args == [42]
    finally:
        again.close()


# -- schema ------------------------------------------------------------------------------------


def migration_files() -> list[tuple[int, str]]:
    found = []
    for file in MIGRATIONS_DIR.glob("*.sql"):
        match = re.match(r"^(\d+)_", file.name)
        assert match, f"migration {file.name} must start with its number"
        found.append((int(match.group(1)), file.read_text(encoding="utf-8")))
    return sorted(found)


def schema_of(db: apsw.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name"
    ).fetchall()


def test_migrations_are_numbered_without_gaps() -> None:
    numbers = [n for n, _ in migration_files()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert numbers[-1] == SCHEMA_VERSION


def test_schema_equals_the_migrations_replayed(store: SQLiteStore) -> None:
    replayed = apsw.Connection(":memory:")
    for _, sql in migration_files():
        replayed.execute(sql)
    expected = schema_of(replayed)
    assert {name for kind, name, _, _ in expected if kind == "table"} >= {
        "jobs",
        "attempts",
        "daemons",
    }
    assert schema_of(store.db) == expected
    assert pragma(store, "user_version") == SCHEMA_VERSION
    assert pragma(store, "application_id") == APPLICATION_ID


# -- foreign files are refused and left untouched --------------------------------------------


def assert_refused_untouched(path: Path) -> str:
    before = path.read_bytes()
    before_sidecars = sidecars(path)
    for create in (True, False):
        with pytest.raises(NotADatabase) as info:
            open_store(str(path), create=create)
        assert info.value.exit_code != 0
    import gc

    gc.collect()  # any half-opened connection is gone: still nothing written
    assert path.read_bytes() == before
    assert sidecars(path) == before_sidecars
    return str(info.value)


def test_a_file_that_is_not_sqlite_is_refused(path: Path) -> None:
    path.write_bytes(b"my diary\n" * 500)
    message = assert_refused_untouched(path)
    assert str(path) in message


def test_a_short_text_file_is_refused(path: Path) -> None:
    path.write_bytes(b"hi\n")
    assert_refused_untouched(path)


def test_an_sqlite_file_of_another_application_is_refused(path: Path) -> None:
    other = apsw.Connection(str(path))
    other.execute("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me')")
    other.close()
    message = assert_refused_untouched(path)
    assert "another application" in message
    check = apsw.Connection(str(path))
    assert check.execute("SELECT body FROM notes").fetchall() == [("keep me",)]
    check.close()


def test_a_database_from_a_newer_jobrunner_is_refused(path: Path) -> None:
    newer = apsw.Connection(str(path))
    newer.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, future TEXT)")
    newer.execute(f"PRAGMA application_id = {0x4A6F6252}")
    newer.execute("PRAGMA user_version = 999")
    newer.close()
    message = assert_refused_untouched(path)
    assert "999" in message and "newer" in message


def test_a_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "jobs.db"
    folder.mkdir()
    with pytest.raises(NotADatabase):
        open_store(str(folder))
    assert list(folder.iterdir()) == []


# -- transactions --------------------------------------------------------------------------------


def test_a_database_locked_too_long_is_store_unavailable_and_writes_nothing(
    store: SQLiteStore, path: Path
) -> None:
    blocker = apsw.Connection(str(path))
    blocker.execute("BEGIN IMMEDIATE")
    try:
        store.db.setbusytimeout(50)  # the real timeout is seconds; keep the test quick
        with pytest.raises(StoreUnavailable):
            store.job_insert_many([JobInsert(task="a.b:c")], NOW)
        assert not store.db.in_transaction
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.job_list() == []
    store.job_insert_many([JobInsert(task="a.b:c")], NOW)  # and works once free
    assert len(store.job_list()) == 1


def test_a_failed_batch_writes_nothing(store: SQLiteStore) -> None:
    (kept,) = store.job_insert_many([JobInsert(task="a.b:c")], NOW)
    claimed = store.job_claim(ClaimRequest("me", NOW, 1))
    bad = AttemptEnd(kept.id, 1, Outcome.SUCCEEDED, State.SUCCEEDED, result_json='"\udcff"')
    with pytest.raises(UnicodeEncodeError):  # not UTF-8: the whole batch rolls back
        store.job_end_many("me", [AttemptEnd(kept.id, 1, Outcome.FAILED, State.DEAD), bad])
    assert not store.db.in_transaction
    got = store.job_get(kept.id)
    assert got is not None and got.state is State.RUNNING and claimed
    assert store.attempt_list(kept.id) == []


def test_a_database_that_turns_read_only_under_the_store_is_a_retryable_write_failure(
    store: SQLiteStore,
) -> None:
    """Not a raw apsw error (a traceback in the CLI, a dead daemon): one line, rolled
    back, retryable, and writes work again once the file can be written."""
    store.db.execute("PRAGMA query_only = 1")  # as a file that cannot be written now
    with pytest.raises(StoreWriteFailed, match="read-only.*nothing was written.*retryable"):
        store.job_insert_many([JobInsert(task="a.b:c")], NOW)
    assert not store.db.in_transaction and store.job_list() == []
    store.db.execute("PRAGMA query_only = 0")
    assert [r.created for r in store.job_insert_many([JobInsert(task="a.b:c")], NOW)] == [True]


# -- fork ----------------------------------------------------------------------------------------


def test_a_store_used_in_a_forked_child_raises_and_the_parent_keeps_working(
    store: SQLiteStore,
) -> None:
    (first,) = store.job_insert_many([JobInsert(task="a.b:c")], NOW)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 99
        try:
            try:
                store.job_get(first.id)
                code = 2  # used the parent's connection: the bug
            except ForkedConnectionError:
                code = 0
            except BaseException:  # noqa: BLE001
                code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # the parent's connection is unharmed by the child
    got = store.job_get(first.id)
    assert got is not None and got.task == "a.b:c"
    (second,) = store.job_insert_many([JobInsert(task="a.b:d")], NOW)
    assert [j.id for j in store.job_claim(ClaimRequest("me", NOW, 10))] == [first.id, second.id]
    assert store.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# -- every queue query is served by an index -------------------------------------------------------


def fill(store: SQLiteStore, n: int = 3000) -> None:
    """A backlog with every state, so ANALYZE gives the planner realistic statistics."""
    rng = random.Random(5)
    store.job_insert_many(
        [
            JobInsert(
                task="a.b:c",
                queue=rng.choice(["default", "email", "reports"]),
                priority=rng.randint(-2, 2),
                run_at=NOW + rng.uniform(-100, 100),
                key=f"k{i}" if i % 10 == 0 else None,
            )
            for i in range(n)
        ],
        NOW,
    )
    claimed = store.job_claim(ClaimRequest("me", NOW, n // 4))
    ends = [
        AttemptEnd(
            j.id, 1, Outcome.SUCCEEDED, (State.SUCCEEDED, State.DEAD)[i % 2], finished_at=NOW
        )
        for i, j in enumerate(claimed[: len(claimed) // 2])
    ]
    store.job_end_many("me", ends)
    store.db.execute("ANALYZE")


def plan(store: SQLiteStore, name: str, params: tuple[Any, ...]) -> list[str]:
    return [row[3] for row in store.db.execute("EXPLAIN QUERY PLAN " + Q[name], params)]


QUEUE_QUERIES = {
    "claim_candidates": (("default", NOW, 10), "USING INDEX jobs_ready (queue=?)"),
    "ready_queues": ((65,), "USING INDEX jobs_ready"),
    "claim_queued_anywhere": (('["email"]', 10), "SCAN jobs USING INDEX jobs_queued"),
    "claim_due_anywhere": ((NOW, 10), "USING INDEX jobs_due (run_at<?)"),
    "claim_jobs": (("me", NOW, "[1, 2]"), "USING INTEGER PRIMARY KEY"),
    "next_due": ((), "USING INDEX jobs_due"),
    "end_attempt": (
        ("retrying", NOW, None, None, None, None, 1, 1, "me", 0),
        "USING INTEGER PRIMARY KEY",
    ),
    "release": ((1, 1, "me"), "USING INTEGER PRIMARY KEY"),
    # every state, from a page's cursor down
    "job_list": ((None, None, 50, 100), "USING INTEGER PRIMARY KEY (rowid<?)"),
    "events_after": ((10, 100), "USING INTEGER PRIMARY KEY (rowid>?)"),
    "events_of_job_after": ((1, 10, 100), "USING INDEX job_events_job (job_id=? AND seq>?)"),
    "events_last_seq": ((), "SEARCH job_events"),
    "running_orphans": (("me",), "USING INDEX jobs_running"),
    "cancel_requests": (("me",), "USING INDEX jobs_running (owner=?)"),
    "ended_delete": (("succeeded", NOW, 100), "INDEX jobs_ended (state=? AND finished_at<?)"),
    "dead_ids": ((), "INDEX jobs_ended (state=?)"),
    # the newest dead jobs, not every one sorted (the dashboard, status, top)
    "recent_failures": ((10,), "SEARCH jobs USING INDEX jobs_ended (state=?)"),
    "ended_count": (("dead", NOW), "INDEX jobs_ended (state=? AND finished_at<?)"),
    "waiting_ids": (("queued", None), "USING INDEX jobs_queued"),
    "running_ids": ((None,), "USING INDEX jobs_running"),
    "job_id_by_key": (("k10",), "INDEX jobs_key (key=?)"),
    "attempts_of": ((1,), "USING INDEX attempts_job (job_id=?)"),
    # webhooks: the claim and its sleep walk only pending deliveries, in due order
    "webhook_claim": ((NOW, "me", NOW, 10, 5, "[]"), "INDEX webhook_deliveries_due (next_at<?)"),
    "webhook_next_due": ((), "USING INDEX webhook_deliveries_due"),
    "webhook_deliveries_of_job": ((1, None, 50, 100), "INDEX webhook_deliveries_job (job_id=?"),
    "webhook_attempts_of": ((1,), "INDEX webhook_attempts_delivery (delivery_id=?)"),
    # a schedule's latest job, and the jobs an overlap = "skip" schedule waits for
    "schedule_list": ((), "INDEX jobs_fire (schedule=?)"),
    "schedule_states": (('["a", "b"]',), "INDEX jobs_fire (schedule=?)"),
    "schedule_last_jobs": (("a", NOW), "INDEX jobs_fire (schedule=? AND scheduled_for>?)"),
}


@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "analyzed"])
@pytest.mark.parametrize("name", sorted(QUEUE_QUERIES))
def test_queue_queries_are_served_by_an_index(
    store: SQLiteStore, name: str, analyzed: bool
) -> None:
    if analyzed:
        fill(store)
    params, expected = QUEUE_QUERIES[name]
    steps = plan(store, name, params)
    assert any(expected in step for step in steps), steps
    # never a walk over the whole jobs table
    assert not [s for s in steps if re.fullmatch(r"SCAN jobs", s)], steps


@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "analyzed"])
def test_claim_reads_the_index_in_order_without_sorting_the_backlog(
    store: SQLiteStore, analyzed: bool
) -> None:
    """The claim's cost does not grow with the backlog: it walks jobs_ready in
    (priority DESC, run_at, id) order and stops at LIMIT, with no sort step."""
    if analyzed:
        fill(store)
    steps = plan(store, "claim_candidates", ("default", NOW, 10))
    assert steps == ["SEARCH jobs USING INDEX jobs_ready (queue=?)"], steps
    # across every queue: jobs_queued in its order, capped queues stepped over, no sort
    steps = plan(store, "claim_queued_anywhere", ('["email"]', 10))
    assert steps[0] == "SCAN jobs USING INDEX jobs_queued", steps
    assert not [s for s in steps if "TEMP B-TREE" in s], steps


@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "analyzed"])
def test_list_by_state_reads_each_states_index(store: SQLiteStore, analyzed: bool) -> None:
    """`list --state`: each state asked for is read from the partial index holding it,
    never by walking the whole table."""
    if analyzed:
        fill(store)
    indexes = {index for index, _ in LIST_INDEXES.values()}
    every = tuple(sorted(LIST_INDEXES))
    MAX = 2**63 - 1  # noqa: N806  (the largest id listed: all)
    steps = [
        row[3]
        for row in store.db.execute(
            "EXPLAIN QUERY PLAN " + job_list_sql(every), (None, None, 50, MAX)
        )
    ]
    assert {i for i in indexes if any(f"INDEX {i}" in step for step in steps)} == indexes, steps
    assert not [s for s in steps if re.fullmatch(r"SCAN jobs", s)], steps
    assert len(store.job_list(every, limit=10_000)) == len(store.job_list(limit=10_000))
