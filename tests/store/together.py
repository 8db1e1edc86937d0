"""Running store calls from several connections at the same moment (the race tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_together(*loops: Callable[[], None]) -> None:
    """Start every loop in its own thread at the same moment; re-raise what failed."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(loops))

    def call(loop: Callable[[], None]) -> None:
        try:
            barrier.wait()
            loop()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(loop,)) for loop in loops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a loop did not finish"
    assert not errors, errors
