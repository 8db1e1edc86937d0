"""The work both job runners run: the same functions, in a module written into each
benchmark's temp dir (`work.py`), wrapped as huey tasks there for huey.

`burn(n)` is pure-Python CPU work: a fixed number of loop turns, calibrated once per
bench run to take about 50 ms here, so both runners do exactly the same work.
"""

from __future__ import annotations

import os
import time

WORK_SOURCE = """
import time


def noop(*args):
    return 1


def stamp():
    return time.time()


def burn(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
"""

HUEY_SOURCE = """
import os

from huey import SqliteHuey

import work

huey = SqliteHuey(filename=os.path.join(os.path.dirname(os.path.abspath(__file__)), "huey.db"))

noop = huey.task()(work.noop)
stamp = huey.task()(work.stamp)
burn = huey.task()(work.burn)
"""


def write_workload(path: str) -> None:
    for name, source in (("work.py", WORK_SOURCE), ("hueytasks.py", HUEY_SOURCE)):
        with open(os.path.join(path, name), "w") as f:
            f.write(source)


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate_burn(target_s: float = 0.05) -> int:
    """Loop turns of `burn` that take about target_s on this machine (best of 5)."""
    n = 20_000
    while True:
        best = min(_timed_burn(n) for _ in range(3))
        if best >= 0.01:
            break
        n *= 4
    scaled = int(n * target_s / best)
    best = min(_timed_burn(scaled) for _ in range(5))
    return int(scaled * target_s / best)


def _timed_burn(n: int) -> float:
    t0 = time.perf_counter()
    burn(n)
    return time.perf_counter() - t0
