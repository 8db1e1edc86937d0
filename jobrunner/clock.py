"""The only place that reads the clock (docs/architecture.md, "Time").

Services take `now` as a parameter; the daemon asks a Clock for it, and tests pass
a fake one. Wall time (`now`) is for what is stored and compared across processes;
monotonic time (`monotonic`) is for measuring intervals inside one process.

On a database shared by many hosts, wall time is the database's: a store that has a clock
of its own (PostgreSQL) makes this process `follow` it, and `now()` is then this host's
monotonic clock plus an offset measured against the database's (re-measured every minute,
by the process that measured it; a forked child keeps the offset, CLOCK_MONOTONIC being
one clock for the whole host). Leases, "due" and every stored time then agree across
hosts whatever their wall clocks say, and a host's clock stepping changes nothing
(invariant 12; docs/architecture.md, "PostgreSQL").
"""

from __future__ import annotations

import os
import threading
import time

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Clock(Protocol):
        def now(self) -> float:
            """Seconds since the Unix epoch (UTC)."""
            ...

        def monotonic(self) -> float:
            """Seconds on a clock that never jumps; only differences mean anything."""
            ...


class SystemClock:
    def now(self) -> float:
        return now()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 1000.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    def step(self, seconds: float) -> None:
        """Step the wall clock alone, forward or back, as NTP or an operator does; the
        monotonic clock does not move."""
        self._now += seconds


SYSTEM = SystemClock()


RESYNC = 60.0  # seconds between measurements of a followed clock


class FollowedClock:
    """Wall time as a database tells it: `read()` gives the database's time (epoch
    seconds); `now()` is our monotonic time plus the offset the last read measured,
    the read's round trip split in half (its error is at most half the round trip).
    A read that fails keeps the last offset (or, before any, this host's wall clock)
    and is tried again at the next now() after a second."""

    def __init__(self, read: Callable[[], float], every: float = RESYNC) -> None:
        self.read = read
        self.every = every
        self.pid = os.getpid()
        self.offset = time.time() - time.monotonic()
        self.synced = False
        self.next_sync = float("-inf")
        self.lock = threading.Lock()

    def now(self) -> float:
        mono = time.monotonic()
        if mono >= self.next_sync and os.getpid() == self.pid and self.lock.acquire(False):
            try:
                self.sync()
            finally:
                self.lock.release()
            mono = time.monotonic()
        return mono + self.offset

    def sync(self) -> None:
        before = time.monotonic()
        try:
            told = self.read()
        except Exception:  # the database is away: keep the last offset, try again soon
            self.next_sync = time.monotonic() + 1.0
            return
        after = time.monotonic()
        self.offset = told - (before + after) / 2
        self.synced = True
        self.next_sync = after + self.every


_followed: FollowedClock | None = None


def follow(read: Callable[[], float] | None) -> None:
    """From now on judge wall time by `read` (a database's clock), or by this host's
    again (None). The store that opened last is followed."""
    global _followed
    _followed = None if read is None else FollowedClock(read)


def now() -> float:
    """Wall time, for code that has no injected clock (CLI, workers): this host's clock,
    or the database's when a store shared by hosts is open (see the module's doc)."""
    followed = _followed
    if followed is None:
        return time.time()
    return followed.now()


def monotonic() -> float:
    return time.monotonic()
