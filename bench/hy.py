"""huey's side of the benchmarks (SqliteHuey, process workers), measured the way
bench/jr.py measures jobrunner: the same work, the same sizes, the same polling.

huey keeps no record of a finished task unless it returns a value, so every task here
returns one and completion is counted in huey's result table (`kv`). Its consumer is
run with `-k process -w N`; `TUNED` is its best-latency polling (`-d 0.001 -m 0.01`:
workers poll the queue every 1-10 ms), `DEFAULT` its own defaults (0.1 s, backing off
to 10 s).
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from bench.jr import BATCH, POLL, Settings
from bench.procs import (
    CLK_TCK,
    BenchError,
    Service,
    cpu_ticks,
    end_to_end_figures,
    idle_cpu,
    latency_figures,
    status_kib,
)

TUNED = ["-d", "0.001", "-m", "0.01"]
DEFAULT: list[str] = []


def consumer_script() -> str:
    path = os.path.join(os.path.dirname(sys.executable), "huey_consumer")
    if not os.access(path, os.X_OK):
        raise BenchError("huey is not installed: pip install -e '.[bench]'")
    return path


class Consumer(Service):
    name = "huey_consumer"

    def __init__(self, workdir: str, workers: int, tuning: list[str]) -> None:
        argv = [consumer_script(), "hueytasks.huey", "-k", "process", "-w", str(workers)]
        super().__init__(workdir, [*argv, *tuning, "-q"])


@contextmanager
def tasks_of(path: str) -> Iterator[ModuleType]:
    """The temp dir's hueytasks module, imported fresh (every run has its own file)."""
    for name in ("hueytasks", "work"):
        sys.modules.pop(name, None)
    sys.path.insert(0, path)
    try:
        module = importlib.import_module("hueytasks")
        yield module
    finally:
        sys.path.remove(path)
        module_huey = sys.modules.get("hueytasks")
        if module_huey is not None:
            module_huey.huey.storage.close()
        for name in ("hueytasks", "work"):
            sys.modules.pop(name, None)


def results_count(path: str) -> int:
    conn = sqlite3.connect(os.path.join(path, "huey.db"), timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM kv").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # no table yet
    finally:
        conn.close()


def wait_results(path: str, consumer: Consumer, n: int, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while (done := results_count(path)) < n:
        consumer.check_alive()
        if time.perf_counter() >= deadline:
            raise BenchError(
                f"huey: {done}/{n} results after {timeout:.0f}s\n{consumer.log_tail()}"
            )
        time.sleep(POLL)


def start_polling(consumer: Consumer, tasks: ModuleType) -> None:
    """Create the database, then start the consumer and give its workers time to be
    up and polling (huey says nothing when they are)."""
    tasks.huey.storage.queue_size()
    consumer.start()
    time.sleep(1.0)
    consumer.check_alive()


def consumer_cpu(consumer: Consumer) -> float:
    pids = [consumer.pid, *consumer.children()]
    return sum(cpu_ticks(p) or 0 for p in pids) / CLK_TCK


# -- the measurements --------------------------------------------------------------------


def drain(path: str, n: int, s: Settings, task: str = "noop", args: Any = ()) -> dict[str, Any]:
    with tasks_of(path) as tasks:
        fn = getattr(tasks, task)
        t = time.perf_counter()
        for _ in range(n):
            fn(*args)
        insert_s = time.perf_counter() - t
    consumer = Consumer(path, s.workers, TUNED)
    try:
        t0 = time.perf_counter()
        consumer.start()
        wait_results(path, consumer, n, 60 + n / 50)
        elapsed = time.perf_counter() - t0
        cpu = consumer_cpu(consumer)
    finally:
        code = consumer.stop()
    return {
        "jobs": n,
        "seconds": elapsed,
        "jobs_per_s": n / elapsed,
        "cpu_us_per_job": 1e6 * cpu / n,
        "insert_s": insert_s,
        "consumer_exit": code,
    }


def end_to_end(path: str, n: int, s: Settings, batch: int = 1) -> dict[str, Any]:
    """As jr.end_to_end; huey's bulk API, `task.map`, still commits once per job."""
    consumer = Consumer(path, s.workers, TUNED)
    try:
        with tasks_of(path) as tasks:
            start_polling(consumer, tasks)
            t0 = time.perf_counter()
            if batch == 1:
                for _ in range(n):
                    tasks.noop()
            else:
                for start in range(0, n, batch):
                    tasks.noop.map(range(min(batch, n - start)))
            submitted = time.perf_counter() - t0
        wait_results(path, consumer, n, 60 + n / 50)
        elapsed = time.perf_counter() - t0
    finally:
        code = consumer.stop()
    return {**end_to_end_figures(n, elapsed, submitted), "consumer_exit": code}


def end_to_end_bulk(path: str, n: int, s: Settings) -> dict[str, Any]:
    return end_to_end(path, n, s, batch=BATCH)


def pickup(path: str, n: int, s: Settings) -> dict[str, Any]:
    consumer = Consumer(path, s.workers, TUNED)
    latencies: list[float] = []
    try:
        with tasks_of(path) as tasks:
            start_polling(consumer, tasks)
            for _ in range(n):
                created = time.time()
                result = tasks.stamp()
                started = result.get(blocking=True, timeout=10)
                if started is None:
                    raise BenchError("huey pickup: no result within 10 s")
                latencies.append((started - created) * 1000)
                time.sleep(0.02)
    finally:
        code = consumer.stop()
    return {**latency_figures(latencies), "consumer_exit": code}


def submit_single(path: str, n: int, s: Settings) -> dict[str, Any]:
    with tasks_of(path) as tasks:
        tasks.huey.storage.queue_size()
        t0 = time.perf_counter()
        for _ in range(n):
            tasks.noop()
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(n):
            tasks.noop()
        elapsed = time.perf_counter() - t0
    return {"jobs": n, "jobs_per_s": n / elapsed, "cold_jobs_per_s": n / cold}


def submit_bulk(path: str, n: int, s: Settings) -> dict[str, Any]:
    """huey's bulk API, `task.map(iterable)`: one enqueue (one commit) per item."""
    with tasks_of(path) as tasks:
        tasks.huey.storage.queue_size()
        t0 = time.perf_counter()
        tasks.noop.map(range(n))
        elapsed = time.perf_counter() - t0
        queued = tasks.huey.storage.queue_size()
    if queued != n:
        raise BenchError(f"huey bulk: {queued} of {n} queued")
    return {"jobs": n, "jobs_per_s": n / elapsed}


def cpu_heavy(path: str, n: int, s: Settings) -> dict[str, Any]:
    result = drain(path, n, s, task="burn", args=(s.burn_n,))
    return {
        "jobs": n,
        "workers": s.workers,
        "seconds": result["seconds"],
        "jobs_per_s": result["jobs_per_s"],
    }


def idle(path: str, seconds: float, s: Settings, tuning: list[str]) -> dict[str, Any]:
    consumer = Consumer(path, s.workers, tuning)
    try:
        with tasks_of(path) as tasks:
            tasks.huey.storage.queue_size()
        consumer.start()
        time.sleep(2.0)  # past start-up, and past the default tuning's first back-offs
        consumer.check_alive()
        pids = [consumer.pid, *consumer.children()]
        pct, fine, elapsed = idle_cpu(pids, seconds)
        consumer.check_alive()
        rss = {p: (status_kib(p, "VmRSS") or 0) / 1024 for p in pids}
    finally:
        code = consumer.stop()
    result: dict[str, Any] = {
        "seconds": elapsed,
        "cpu_pct": sum(pct.values()),
        "consumer_rss_mib": rss[pids[0]],
        "total_rss_mib": sum(rss.values()),
        "consumer_exit": code,
    }
    if fine is not None:
        result["cpu_pct_schedstat"] = fine
    return result
