"""What is PostgreSQL's own in the store: a connection the server ends (a restart,
pg_terminate_backend) costs one retryable error at most and loses nothing committed;
the wake-up and feed connections hear commits from any connection."""

from __future__ import annotations

import select
from collections.abc import Iterator

import psycopg
import pytest

from jobrunner.errors import StoreUnavailable
from jobrunner.models import JobInsert
from jobrunner.store import WAKE_SUBMIT, open_store
from jobrunner.store.pg.store import PostgresStore
from tests.store.pg_support import fresh_database

NOW = 1_800_000_000.0


@pytest.fixture
def pg() -> Iterator[PostgresStore]:
    with fresh_database() as url:
        store = open_store(url)
        assert isinstance(store, PostgresStore)
        yield store
        store.close()


def terminate(store: PostgresStore) -> None:
    pid = store.conn.info.backend_pid
    with psycopg.connect(store.path, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_terminated_connection_is_replaced_and_nothing_is_lost(pg: PostgresStore) -> None:
    (first,) = pg.job_insert_many([JobInsert(task="a:b")], NOW)
    terminate(pg)
    assert pg.job_get(first.id) is not None  # a read reconnects and reads again
    terminate(pg)
    with pytest.raises(StoreUnavailable, match="try again"):
        pg.job_insert_many([JobInsert(task="a:c")], NOW)  # a write says so, retryable
    (second,) = pg.job_insert_many([JobInsert(task="a:c")], NOW)  # and the next one works
    assert [j.task for j in pg.job_list()] == ["a:c", "a:b"]
    assert [e.job_id for e in pg.events_after(0)] == [first.id, second.id]


def test_wakes_and_feed_commits_reach_listeners_on_other_connections(pg: PostgresStore) -> None:
    waker = pg.waker("d1")
    watch = pg.events_watch()
    try:
        other = open_store(pg.path)
        assert other.wake(WAKE_SUBMIT) >= 1  # the waker listens
        ready, _, _ = select.select([waker.fileno()], [], [], 5)
        assert ready and waker.drain() == WAKE_SUBMIT
        assert waker.drain() == b""
        watch.wait(0)  # nothing committed since it was made: returns after the timeout
        other.job_insert_many([JobInsert(task="a:b")], NOW)
        ready, _, _ = select.select([watch.fileno()], [], [], 5)
        assert ready
        other.close()
    finally:
        waker.close()
        watch.close()


def plan(store: PostgresStore, name: str, params: dict[str, object]) -> str:
    from jobrunner.store.pg.feed import Q

    return "\n".join(r[0] for r in store.conn.execute("EXPLAIN " + Q[name], params).fetchall())


def test_claims_walk_indexes_never_the_whole_table(pg: PostgresStore) -> None:
    pg.job_insert_calls(JobInsert(task="a:b"), ["[]"] * 5000, NOW)
    pg.job_insert_calls(JobInsert(task="a:b", run_at=NOW + 60), ["[]"] * 5000, NOW)
    pg.conn.execute("ANALYZE jobs")
    anywhere = plan(
        pg, "claim", {"owner": "o", "now": NOW, "queues": None, "capped": [], "limit": 10}
    )
    assert "Index Scan using jobs_queued" in anywhere, anywhere
    assert "Index Scan using jobs_due" in anywhere, anywhere
    assert "Seq Scan on jobs" not in anywhere, anywhere
    capped = plan(pg, "claim_queue", {"owner": "o", "now": NOW, "queue": "default", "limit": 3})
    assert "jobs_ready" in capped and "Seq Scan on jobs" not in capped, capped
