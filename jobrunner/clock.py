"""The only place that reads the clock (docs/architecture.md, "Time").

Services take `now` as a parameter; the daemon asks a Clock for it, and tests pass
a fake one. Wall time (`now`) is for what is stored and compared across processes;
monotonic time (`monotonic`) is for measuring intervals inside one process.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
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
        return time.time()

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


def now() -> float:
    """Wall time from the system clock, for code that has no injected clock (CLI, workers)."""
    return time.time()


def monotonic() -> float:
    return time.monotonic()
