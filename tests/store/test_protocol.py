"""The store protocol as a whole: every method of store/base.py's Store is exercised by
this conformance suite, and the parts that differ by backend (waker, feed watch, output,
maintenance) behave as the daemon and the commands rely on."""

from __future__ import annotations

import inspect
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

from jobrunner.store import WAKE_CANCEL, WAKE_SUBMIT
from jobrunner.store.base import Store
from tests.helpers import wait_for
from tests.store.test_conformance import NOW, claim, daemon, insert, job

HERE = Path(__file__).parent


def protocol_methods() -> set[str]:
    return {
        name
        for name, member in vars(Store).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def test_every_store_method_is_called_by_the_conformance_suite() -> None:
    sources = "".join(p.read_text() for p in HERE.glob("test_*.py"))
    missing = sorted(m for m in protocol_methods() if f".{m}(" not in sources)
    assert missing == [], f"Store methods no conformance test calls: {missing}"


def test_orphans_are_the_running_jobs_of_no_registered_daemon(store: Store) -> None:
    live, dead = "host-a:1:live", "host-b:2:dead"
    store.daemon_register(daemon(live, lease_until=NOW + 300))
    store.daemon_register(daemon(dead, lease_until=NOW + 30))
    mine, theirs, nobodys, waiting = insert(store, job(), job(), job(), job())
    claim(store, owner=live, limit=1)
    claim(store, owner=dead, limit=1)
    claim(store, owner="host-z:9:gone", limit=1)  # a daemon that never registered
    assert store.job_orphans([], live) == [store.job_get(nobodys)]
    orphans = store.job_orphans([dead], "host-c:3:resc")
    assert sorted(j.id for j in orphans) == [theirs, nobodys]
    assert [d.id for d in store.daemon_list()] == [live]
    assert store.job_orphans([live], live) == [store.job_get(j) for j in (theirs, nobodys)]
    assert [d.id for d in store.daemon_list()] == [live]  # a rescuer never forgets itself
    assert store.job_get(mine) is not None and store.job_get(waiting) is not None


def test_a_feed_watch_wakes_on_another_connections_commit(connect: Callable[[], Store]) -> None:
    reader, writer = connect(), connect()
    with reader.events_watch() as watch:
        woke: list[float] = []

        def sleeper() -> None:
            watch.wait(30)
            woke.append(time.monotonic())

        thread = threading.Thread(target=sleeper)
        thread.start()
        committed = time.monotonic()
        insert(writer, job())
        thread.join(30)
        assert woke and woke[0] - committed < 30  # woke by the commit, not the timeout
        assert reader.events_after(0)[-1].type == "job.queued"


def test_a_feed_watch_returns_at_once_for_a_commit_made_since_its_last_wait(
    connect: Callable[[], Store],
) -> None:
    reader, writer = connect(), connect()
    with reader.events_watch() as watch:
        insert(writer, job())
        started = time.monotonic()
        watch.wait(30)
        assert time.monotonic() - started < 30


def test_the_waker_gets_what_any_connection_sends(connect: Callable[[], Store]) -> None:
    daemon_side, submitter = connect(), connect()
    waker = daemon_side.waker("daemon-1")
    try:
        assert submitter.wake(WAKE_SUBMIT) == 1
        assert submitter.wake(WAKE_CANCEL) == 1
        got = b""
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:  # a server's may come apart
            select.select([waker.fileno()], [], [], 1)
            got += waker.drain()
        assert got == WAKE_SUBMIT + WAKE_CANCEL
        assert waker.drain() == b""
    finally:
        waker.close()
    # nobody listens now (a server may take a moment to see the connection gone)
    wait_for(lambda: submitter.wake(WAKE_SUBMIT) == 0, timeout=10, what="no listener")


def test_output_of_an_unknown_or_silent_job_is_empty_and_deleting_it_is_harmless(
    store: Store,
) -> None:
    output = store.output()
    assert output.read(12345, 0) == b""
    output.delete([12345])
    assert output.read(12345, 0) == b""


def test_maintenance_is_offered_or_refused_as_a_whole(store: Store) -> None:
    maintenance = store.maintenance()
    if maintenance is None:
        return  # a backend without a database file: commands say so
    assert maintenance.moved() is None
    assert maintenance.check() == []
    assert maintenance.wal_bytes() >= 0
    assert maintenance.checkpoint().busy is False
