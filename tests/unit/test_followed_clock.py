"""A process on a database shared by hosts tells time by the database's clock
(clock.follow): hosts whose wall clocks disagree still agree on leases and due times."""

from __future__ import annotations

import os
import time

import pytest

from jobrunner import clock


@pytest.fixture(autouse=True)
def _unfollow():
    yield
    clock.follow(None)


def test_now_is_the_followed_clock_not_this_hosts():
    clock.follow(lambda: time.time() + 600.0)
    assert clock.now() - time.time() == pytest.approx(600.0, abs=0.05)
    assert clock.SYSTEM.now() - time.time() == pytest.approx(600.0, abs=0.05)
    clock.follow(None)
    assert clock.now() == pytest.approx(time.time(), abs=0.05)


def test_the_database_is_read_once_a_minute_not_at_every_now():
    reads = []

    def read() -> float:
        reads.append(1)
        return time.time() - 30.0

    clock.follow(read)
    for _ in range(1000):
        clock.now()
    assert len(reads) == 1


def test_a_step_of_this_hosts_wall_clock_changes_nothing(monkeypatch):
    """Between reads, time runs on the monotonic clock: an operator setting this host's
    clock back an hour is not seen."""
    told = time.time() + 5.0
    clock.follow(lambda: told)
    first = clock.now()
    real = time.time
    monkeypatch.setattr(clock.time, "time", lambda: real() - 3600.0)
    second = clock.now()
    assert first == pytest.approx(told, abs=0.05)
    assert 0.0 <= second - first < 0.05


def test_a_failed_read_keeps_the_host_clock_until_one_succeeds():
    answers: list[float | Exception] = [OSError("server gone")]

    def read() -> float:
        answer = answers.pop(0) if answers else time.time() + 120.0
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock.follow(read)
    assert clock.now() == pytest.approx(time.time(), abs=0.05)  # the host's, for now
    followed = clock._followed
    assert followed is not None and not followed.synced
    followed.next_sync = float("-inf")  # the retry a second later, without waiting it
    assert clock.now() - time.time() == pytest.approx(120.0, abs=0.05)


def test_a_forked_child_keeps_the_offset_and_never_reads_the_parents_connection():
    reads: list[int] = []

    def read() -> float:
        reads.append(os.getpid())
        return time.time() + 300.0

    clock.follow(read)
    clock.now()
    followed = clock._followed
    assert followed is not None
    followed.next_sync = float("-inf")  # due again: only the parent may read
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its offset and how many reads it made
        try:
            skew = clock.now() - time.time()
            os.write(w, f"{skew:.3f} {len(reads)}".encode())
        finally:
            os._exit(0)
    os.close(w)
    got = os.read(r, 100).decode().split()
    os.waitpid(pid, 0)
    os.close(r)
    assert float(got[0]) == pytest.approx(300.0, abs=0.05)
    assert int(got[1]) == 1  # the parent's one read, none in the child
