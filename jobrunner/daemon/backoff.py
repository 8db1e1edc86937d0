"""Riding out a database that cannot be written: disk full, an I/O error, or a lock
held past the busy timeout.

The supervisor keeps running its jobs meanwhile (reading results, reaping workers,
enforcing timeouts) and retries its store work after a pause that doubles from
FIRST up to MOST. A failure streak is logged once when it starts and once when it
ends, not once per retry.
"""

from __future__ import annotations

import logging

from jobrunner.errors import StoreUnavailable

log = logging.getLogger("jobrunner.daemon")

FIRST = 0.05
MOST = 5.0


class StoreBackoff:
    def __init__(self) -> None:
        self.failures = 0  # failed store rounds in a row
        self.retry_at = 0.0  # monotonic; no store work before it
        self.failed_at = 0.0

    def waiting(self, mono: float) -> bool:
        return mono < self.retry_at

    def failed(self, exc: StoreUnavailable, mono: float, pending: int) -> None:
        if not self.failures:
            self.failed_at = mono
            log.error(
                "database write failed; the daemon keeps running its jobs and retries with "
                "backoff (up to %gs), %d result(s) waiting to be recorded: %s",
                MOST,
                pending,
                exc,
            )
        self.retry_at = mono + min(MOST, FIRST * 2**self.failures)
        self.failures += 1

    def succeeded(self, mono: float) -> None:
        if not self.failures:
            return
        log.info(
            "database writable again after %.1fs (%d failed attempt(s)); resuming",
            mono - self.failed_at,
            self.failures,
        )
        self.failures = 0
        self.retry_at = 0.0

    def give_up(self, grace_over: bool, running: bool, unrecorded: int) -> bool:
        """Whether a stopping daemon should exit with records it could not write: once
        the grace is over, no job runs any more and the database is still unwritable.
        Those jobs are rescued when its lease expires (at-least-once); waiting forever
        would help nobody."""
        if not self.failures or running or not grace_over:
            return False
        log.error(
            "stopping with %d record(s) unwritten, the database is still not writable; "
            "their jobs are rescued when this daemon's lease expires",
            unrecorded,
        )
        return True
