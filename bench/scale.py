"""jobrunner with a backlog: does claiming cost more when a million jobs wait?

For each backlog B (10^3, 10^5, 10^6 by default), WINDOW + B no-op jobs are inserted
before a daemon starts; the daemon drains the first WINDOW of them, so at least B
jobs wait behind every claim, and the rate is taken from the finished_at span of
those WINDOW jobs, which leaves out start-up. The
daemon's RSS is sampled while it works: it must not grow with the backlog. Runs go
through the backlogs in alternating order.

`footprint` drains a million jobs to the end and reports the database's size per
million finished jobs, before and after `jobrunner prune`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from bench.jr import DB_NAME, NOOP, Daemon, Settings, read_only
from bench.procs import BenchError, clean_env, progress, status_kib, summarize
from jobrunner.models import JobInsert
from jobrunner.store import open_store

WINDOW = 20_000
CHUNK = 100_000  # jobs inserted per transaction, so the bench itself stays small
DEFAULT_BACKLOGS = [1_000, 100_000, 1_000_000]
QUICK_BACKLOGS = [1_000, 100_000]


def parse_backlogs(text: str | None, quick: bool) -> list[int]:
    if text is None:
        return QUICK_BACKLOGS if quick else DEFAULT_BACKLOGS
    values = [int(v) for v in text.split(",")]
    if any(v < 0 for v in values):
        raise ValueError("a backlog cannot be negative")
    return values


def fill(store: Any, n: int) -> float:
    t0 = time.perf_counter()
    now = time.time()
    for start in range(0, n, CHUNK):
        store.job_insert_many([JobInsert(task=NOOP) for _ in range(min(CHUNK, n - start))], now)
    return time.perf_counter() - t0


def file_bytes(db: str) -> int:
    return sum(os.path.getsize(db + ext) for ext in ("", "-wal") if os.path.exists(db + ext))


def drain_window(path: str, backlog: int, s: Settings) -> dict[str, Any]:
    db = os.path.join(path, DB_NAME)
    store = open_store(db)
    daemon = Daemon(path, s.workers)
    window = WINDOW
    rss_max = 0
    try:
        insert_s = fill(store, window + backlog)
        waiting_bytes = file_bytes(db)
        daemon.start()
        deadline = time.perf_counter() + 60 + window / 50
        while sum(store.job_count_ended_since(0.0).values()) < window:
            daemon.check_alive()
            rss_max = max(rss_max, status_kib(daemon.pid, "VmRSS") or 0)
            if time.perf_counter() >= deadline:
                raise BenchError(f"scale {backlog}: the window did not drain in time")
            time.sleep(0.05)
        rss_max = max(rss_max, status_kib(daemon.pid, "VmRSS") or 0)
    finally:
        code = daemon.stop()
        store.close()
    # The first `window` jobs by id are the ones the daemon took first.
    first, last = read_only(
        db,
        f"SELECT min(finished_at), max(finished_at) FROM "
        f"(SELECT finished_at FROM jobs WHERE state = 'succeeded' ORDER BY id LIMIT {window})",
    )[0]
    span = last - first
    return {
        "backlog": backlog,
        "window": window,
        "jobs_per_s": (window - 1) / span if span > 0 else 0.0,
        "daemon_rss_mib_max": rss_max / 1024,
        "db_bytes_waiting": waiting_bytes,
        "insert_s": insert_s,
        "daemon_exit": code,
    }


def footprint(path: str, n: int, s: Settings) -> dict[str, Any]:
    """Drain n jobs to the end; database bytes per million finished, before and after
    `jobrunner prune`."""
    db = os.path.join(path, DB_NAME)
    store = open_store(db)
    daemon = Daemon(path, s.workers)
    try:
        fill(store, n)
        t0 = time.perf_counter()
        daemon.start()
        deadline = t0 + 120 + n / 50
        while store.job_count_ended_since(0.0).get("succeeded", 0) < n:
            daemon.check_alive()
            if time.perf_counter() >= deadline:
                raise BenchError("footprint: the jobs did not drain in time")
            time.sleep(0.2)
        drain_s = time.perf_counter() - t0
    finally:
        code = daemon.stop()
        store.close()
    finished = file_bytes(db)
    time.sleep(1.1)
    t0 = time.perf_counter()
    pruned = subprocess.run(
        [sys.executable, "-m", "jobrunner", "--db", db, "prune", "--older-than", "1s", "--yes"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    prune_s = time.perf_counter() - t0
    if pruned.returncode != 0:
        raise BenchError(f"prune failed: {pruned.stderr.strip()}")
    pages, free, size = read_only(
        db, "SELECT * FROM pragma_page_count, pragma_freelist_count, pragma_page_size"
    )[0]
    per_million = 1_000_000 / n
    return {
        "jobs": n,
        "drain_s": drain_s,
        "drain_jobs_per_s": n / drain_s,
        "bytes_per_million_finished": finished * per_million,
        "prune_s": prune_s,
        "after_prune_file_bytes": file_bytes(db),
        "after_prune_used_bytes": (pages - free) * size,
        "daemon_exit": code,
    }


def run(path: str, backlogs: list[int], s: Settings, repeat: int) -> dict[str, Any]:
    from bench.run import workdir  # the temp dir maker (no import cycle at load time)

    runs: dict[int, list[dict[str, Any]]] = {b: [] for b in backlogs}
    for i in range(repeat):
        order = backlogs if i % 2 == 0 else list(reversed(backlogs))
        for backlog in order:
            progress(f"scale backlog {backlog:,} run {i + 1}/{repeat}")
            with workdir(False) as one:
                try:
                    result = drain_window(one, backlog, s)
                except BenchError as exc:
                    progress(f"  FAILED: {exc}")
                    result = {"error": str(exc)}
            progress(f"  {result}")
            runs[backlog].append(result)
    out: dict[str, Any] = {"backlogs": {str(b): summarize(r) for b, r in runs.items()}}
    smallest, largest = min(backlogs), max(backlogs)
    low = out["backlogs"][str(smallest)]["median"].get("jobs_per_s")
    high = out["backlogs"][str(largest)]["median"].get("jobs_per_s")
    if low and high:
        out["largest_vs_smallest"] = high / low
    n = max(backlogs)
    progress(f"footprint: draining {n:,} jobs to the end, then prune")
    try:
        out["footprint"] = footprint(path, n, s)
    except BenchError as exc:
        out["footprint"] = {"error": str(exc)}
    progress(f"  {out['footprint']}")
    return out
