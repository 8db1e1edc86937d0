"""On PostgreSQL a sequence number is taken at insert, not at commit: without the feed
lock a reader walking the feed by seq passes a number that commits later, and never
sees it. With it (store/pg/feed.py), concurrent writers' events all reach a tailing
reader, in order, once each."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from jobrunner.store.pg.feed import Q, append_events, events_after, events_last_seq
from jobrunner.store.pg.schema import migrate
from tests.store.pg_support import fresh_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        yield url


def event(job_id: int) -> tuple[object, ...]:
    return (time.time(), job_id, 0, "job.queued", "queued", None)


def test_without_the_lock_a_reader_skips_a_late_commit(pg_url: str) -> None:
    """The hazard itself, step by step: why the lock is there."""
    with (
        psycopg.connect(pg_url) as early,
        psycopg.connect(pg_url) as late,
        psycopg.connect(pg_url, autocommit=True) as reader,
    ):
        early.execute(Q["event_insert"], event(1))  # takes seq 1, not committed
        late.execute(Q["event_insert"], event(2))  # takes seq 2
        late.commit()
        seen = events_after(reader, 0)
        assert [e.seq for e in seen] == [2]  # the reader moves its cursor to 2...
        early.commit()
        assert events_after(reader, 2) == []  # ...and seq 1 is never seen
        assert events_last_seq(reader) == 2


def test_with_the_lock_concurrent_appends_reach_a_tailing_reader_in_order(pg_url: str) -> None:
    writers, per_writer = 6, 40
    errors: list[BaseException] = []
    done = threading.Event()

    def write(index: int) -> None:
        rng = random.Random(index)
        try:
            with psycopg.connect(pg_url) as conn:
                for n in range(per_writer):
                    with conn.cursor() as cur:
                        cur.execute("SELECT 1")  # some work of the transaction first
                        append_events(cur, [event(index * 1000 + n)])
                        time.sleep(rng.uniform(0, 0.003))  # a commit that takes time
                    conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    seen: list[int] = []

    def tail() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            cursor = 0
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                batch = events_after(conn, cursor)
                seen.extend(e.seq for e in batch)
                if batch:
                    cursor = batch[-1].seq
                elif done.is_set() and cursor == events_last_seq(conn):
                    return
                else:
                    time.sleep(0.001)

    reader = threading.Thread(target=tail)
    reader.start()
    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    reader.join(60)
    assert errors == []
    assert seen == list(range(1, writers * per_writer + 1))  # every one, once, in order
