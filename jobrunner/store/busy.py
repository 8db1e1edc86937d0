"""Waiting for SQLite's write lock in short naps.

SQLite's own busy handler (sqlite3_busy_timeout) sleeps 1, 2, 5, 10, 15, 20, 25 ms
... between tries. A jobrunner write transaction holds the lock for 0.05-0.5 ms, so
with the default handler a submit that meets the daemon's claim (or the other way
round) sleeps at least twice as long as the lock was held, and a steady stream of
submits against a busy daemon spends most of its time asleep. This handler starts at
50 us and doubles up to 2 ms, so a short wait stays short while a long one (another
process holding the lock for seconds) still costs ~500 wakeups a second at most.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

FIRST_NAP_S = 0.000_05
LONGEST_NAP_S = 0.002


class BusyWait:
    """An apsw busy handler: True to try again, False to give up (SQLITE_BUSY)."""

    __slots__ = ("timeout_s", "_since", "_clock", "_sleep")

    def __init__(
        self,
        timeout_ms: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout_s = timeout_ms / 1000
        self._since = 0.0
        self._clock = clock
        self._sleep = sleep

    def __call__(self, prior_calls: int) -> bool:
        now = self._clock()
        if prior_calls == 0:
            self._since = now
        elif now - self._since >= self.timeout_s:
            return False
        self._sleep(min(FIRST_NAP_S * (1 << min(prior_calls, 10)), LONGEST_NAP_S))
        return True
