"""What is PostgreSQL's own in the store: a connection the server ends (a restart,
pg_terminate_backend) costs one retryable error at most and loses nothing committed;
the wake-up and feed connections hear commits from any connection."""

from __future__ import annotations

import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator

import psycopg
import pytest

from jobrunner.errors import StoreUnavailable
from jobrunner.models import JobInsert
from jobrunner.store import WAKE_SUBMIT, WAKE_TRAILING, open_store
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


def test_output_is_read_from_any_offset_and_an_attempt_can_be_shipped_again(
    pg: PostgresStore,
) -> None:
    """Output shipped in pieces reads back as one stream from any offset; a capped
    attempt's pieces are replaced whole (daemon/shipping.py); a reader on another
    connection is told of each shipment."""
    out = pg.output()
    with pg.events_watch(output=True) as watch:
        assert out.ship([], [(7, b"hello "), (8, b"other job")]) == [0, 0]
        watch.wait(5)  # returns: the shipment's NOTIFY came
        assert out.ship([], [(7, b"world\n")]) == [6]
        assert out.read(7, 0) == b"hello world\n"
        assert out.read(7, 3) == b"lo world\n"
        assert out.read(7, 8) == b"rld\n"
        assert out.read(7, 12) == b""
        out.ship([(7, 6)], [(7, b"[capped] end\n")])  # attempt from offset 6 replaced
        assert out.read(7, 0) == b"hello [capped] end\n"
        out.delete([7])
        assert out.read(7, 0) == b""
        assert out.read(8, 0) == b"other job"


def test_a_dead_daemons_output_is_shipped_once_by_the_next() -> None:
    from jobrunner.daemon.shipping import _overlap

    # the dead daemon shipped "abc" of "abcdef" after an earlier attempt's "xyz"
    assert _overlap(b"xyz\nabc", b"abcdef") == 3
    assert _overlap(b"", b"abcdef") == 0
    assert _overlap(b"abcdef", b"abcdef") == 6
    assert _overlap(b"xyz", b"abcdef") == 0
    long = bytes(range(256)) * 4
    assert _overlap(b"earlier attempt\n" + long[:300], long) == 300
    assert _overlap(long[:300], long + b"more") == 300


def heard(waker: object, within: float = 5.0) -> bytes:
    """What the waker got within `within` seconds of the first wake-up (b"" for none)."""
    ready, _, _ = select.select([waker.fileno()], [], [], within)  # type: ignore[attr-defined]
    if not ready:
        return b""
    got = waker.drain()  # type: ignore[attr-defined]
    while select.select([waker.fileno()], [], [], 0.3)[0]:  # type: ignore[attr-defined]
        got += waker.drain()  # type: ignore[attr-defined]
    return bytes(got)


def test_a_submit_wakes_the_daemons_in_its_transaction_once_per_queue_per_window(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No wake() after the commit: the submit's own NOTIFY, sent at the commit. A store
    sends at most one per queue per WAKE_WINDOW (a minute here, so the test cannot race
    it): the daemons it woke claim again after the window, finding the rest."""
    import jobrunner.store.pg.signals as pg_store

    monkeypatch.setattr(pg_store, "WAKE_TRAIL", 60.0)  # no commit here is too late for it

    assert pg.wakes_on_submit
    waker = pg.waker("d1")
    submitter = open_store(pg.path)
    try:
        submitter.job_insert_many([JobInsert(task="a:b")], NOW)
        assert heard(waker) == WAKE_TRAILING

        monkeypatch.setattr(pg_store, "WAKE_WINDOW", 60.0)
        submitter.job_insert_many([JobInsert(task="a:b")], NOW)  # in the window: not sent
        submitter.job_insert_calls(JobInsert(task="a:b"), ["[1]", "[2]"], NOW)
        assert heard(waker, within=1.0) == b""
        monkeypatch.setattr(pg_store, "WAKE_WINDOW", 0.5)
        time.sleep(0.5)
        submitter.job_insert_calls(JobInsert(task="a:b"), ["[3]"], NOW)  # window over: sent
        assert heard(waker) == WAKE_TRAILING
        monkeypatch.setattr(pg_store, "WAKE_WINDOW", 60.0)
        # another queue has a window of its own; a batch of two queues sends one
        submitter.job_insert_many([JobInsert(task="a:b", queue="q2")], NOW)
        assert heard(waker) == WAKE_TRAILING
        submitter.job_insert_many(
            [JobInsert(task="a:b", queue="q3"), JobInsert(task="a:b", queue="q4")], NOW
        )
        assert heard(waker) == WAKE_TRAILING
        # another submitter (another process, say) has windows of its own
        other = open_store(pg.path)
        other.job_insert_many([JobInsert(task="a:b")], NOW)
        assert heard(waker) == WAKE_TRAILING
        # a submit that makes nothing (its key was taken) wakes nobody
        other.job_insert_many([JobInsert(task="a:b", queue="q5", key="k")], NOW)
        assert heard(waker) == WAKE_TRAILING
        monkeypatch.setattr(pg_store, "WAKE_WINDOW", 0.0)
        other.job_insert_many([JobInsert(task="a:b", queue="q5", key="k")], NOW)
        assert heard(waker, within=1.0) == b""
        # a silent submit whose commit came after the daemons' second claim (a trail of 0
        # here) wakes them after its commit
        monkeypatch.setattr(pg_store, "WAKE_WINDOW", 60.0)
        monkeypatch.setattr(pg_store, "WAKE_TRAIL", 0.0)
        other.job_insert_many([JobInsert(task="a:b", queue="q5")], NOW)
        assert heard(waker) == WAKE_TRAILING
        other.close()
    finally:
        submitter.close()
        waker.close()


def test_recent_failures_walk_the_newest_dead_jobs_not_all_of_them(pg: PostgresStore) -> None:
    ids = pg.job_insert_calls(JobInsert(task="a:b"), ["[]"] * 3000, NOW)
    pg.conn.execute(
        "UPDATE jobs SET state = 'dead', finished_at = %s + id, error = 'x' WHERE id = ANY(%s)",
        (NOW, ids[:2900]),
    )
    pg.conn.execute("ANALYZE jobs")
    found = plan(pg, "recent_failures", {"limit": 10})
    assert "Index Scan Backward using jobs_ended" in found, found
    assert "Seq Scan on jobs" not in found, found
    assert [j.id for j in pg.job_recent_failures(3)] == ids[2899:2896:-1]


class CutAtFirstQuery:
    """A TCP relay to the test server that passes the connection's start-up and
    authentication, then closes both sides at the client's first query message: a
    server that went away between the connect and the first statement."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        threading.Thread(target=self._serve_one, daemon=True).start()

    def _serve_one(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(self.target, timeout=10)
        started = False  # the first client packet is the start-up message (no type byte)
        with client, server:
            while not self.cut.is_set():
                ready, _, _ = select.select([client, server], [], [], 10)
                if not ready:
                    return
                for side in ready:
                    data = side.recv(65536)
                    if not data:
                        return
                    if side is client and started and data[:1] in (b"P", b"Q"):
                        self.cut.set()  # the first query: go away
                        return
                    started = started or side is client
                    (server if side is client else client).sendall(data)

    def close(self) -> None:
        self.listener.close()


def test_a_connection_lost_before_the_first_statement_is_a_retryable_error() -> None:
    with fresh_database() as url:
        where = urllib.parse.urlsplit(url)
        relay = CutAtFirstQuery((where.hostname or "127.0.0.1", where.port or 5432))
        try:
            relayed = url.replace(f":{where.port}/", f":{relay.port}/")
            with pytest.raises(StoreUnavailable, match="try again"):
                PostgresStore(relayed)
            assert relay.cut.is_set()
        finally:
            relay.close()
