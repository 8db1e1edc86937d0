"""Webhooks: how soon a delivery leaves after the job's final commit, how many
deliveries a daemon sends per second, and what that costs its job throughput (the drain
rate with an endpoint beside the drain rate without one, in the same run).

    .venv/bin/python -m bench.webhooks [--jobs 2000] [--latency-jobs 100] [--runs 3]

The receiver is bench/webhook_sink.py, a process of its own on 127.0.0.1. Every process
is stopped by pid; every wait is bounded.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.jr import DB_NAME, NOOP, Daemon, read_only, wait_succeeded
from bench.procs import percentile, progress, rounded, unwind_on_terminate, wait_until
from bench.workload import write_workload
from jobrunner.models import JobInsert
from jobrunner.store import open_store

SECRET = "whsec_" + base64.b64encode(b"bench-webhooks-key-0123456789ab").decode()


class Sink:
    """bench/webhook_sink.py in a process of its own."""

    def __init__(self, workdir: str) -> None:
        self.out = os.path.join(workdir, "arrivals.json")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.webhook_sink", self.out],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError(f"the sink did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/hooks"

    def arrivals(self) -> list[list[Any]]:
        """Stops it; what arrived, in order."""
        self.proc.terminate()
        self.proc.wait(15)
        with open(self.out) as f:
            return list(json.load(f))


def config(url: str | None) -> str:
    if url is None:
        return ""
    return (
        f'[webhooks]\nsecret = "{SECRET}"\nallow_private = true\nconcurrency = 16\n\n'
        f'[[webhooks.endpoints]]\nurl = "{url}"\n'
    )


def delivered(db: str) -> int:
    rows = read_only(db, "SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered'")
    return int(rows[0][0])


def ready(daemon: Daemon, with_endpoint: bool) -> None:
    """Its workers forked and, with an endpoint, its dispatcher started: a process
    starting (imports, a connection) costs CPU the drain would otherwise have."""
    daemon.wait_ready()
    if with_endpoint:
        wait_until("the dispatcher", lambda: "webhooks: started as" in daemon.log_tail(50), 20)


def drain(n: int, workers: int, with_endpoint: bool) -> dict[str, Any]:
    """n jobs submitted in one transaction to a daemon that is ready; from that commit to
    all succeeded (and, with an endpoint, to all delivered)."""
    path = tempfile.mkdtemp(prefix="jrbench-hooks-")
    write_workload(path)
    db = os.path.join(path, DB_NAME)
    sink = Sink(path) if with_endpoint else None
    with open(os.path.join(path, "jobrunner.toml"), "w") as f:
        f.write(config(sink.url if sink else None))
    store = open_store(db)
    daemon = Daemon(path, workers)
    out: dict[str, Any] = {"jobs": n}
    try:
        daemon.start()
        ready(daemon, with_endpoint)
        jobs = [JobInsert(task=NOOP) for _ in range(n)]
        t0 = time.perf_counter()
        store.job_insert_many(jobs, time.time())
        store.wake(b"s")
        wait_succeeded(store, daemon, n, 60 + n / 50)
        out["drain_s"] = time.perf_counter() - t0
        out["jobs_per_s"] = n / out["drain_s"]
        if sink is not None:
            wait_until("every delivery", lambda: delivered(db) >= n, 60 + n / 20)
            out["all_delivered_s"] = time.perf_counter() - t0
    finally:
        daemon.stop()
        store.close()
    if sink is not None:
        times = sorted(a[0] for a in sink.arrivals())
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        out["deliveries"] = len(times)
        out["deliveries_per_s"] = (len(times) - 1) / span if span > 0 else 0.0
    shutil.rmtree(path, ignore_errors=True)
    return out


def latency(n: int) -> dict[str, Any]:
    """One job at a time, each submitted after the previous one's delivery arrived: the
    delivery's arrival minus the job's finished_at (stamped just before the commit, so
    the figure is an upper bound)."""
    path = tempfile.mkdtemp(prefix="jrbench-hooks-")
    write_workload(path)
    db = os.path.join(path, DB_NAME)
    sink = Sink(path)
    with open(os.path.join(path, "jobrunner.toml"), "w") as f:
        f.write(config(sink.url))
    store = open_store(db)
    daemon = Daemon(path, 1)
    try:
        daemon.start()
        ready(daemon, True)
        for i in range(n):
            store.job_insert_many([JobInsert(task=NOOP)], time.time())
            store.wake(b"s")
            wait_until("the delivery", lambda i=i: delivered(db) > i, 30)
    finally:
        daemon.stop()
        store.close()
    ms = [1000 * (when - finished) for when, _, finished in sink.arrivals() if finished]
    shutil.rmtree(path, ignore_errors=True)
    return {
        "deliveries": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "max_ms": max(ms),
    }


def measure(jobs: int = 2000, latency_jobs: int = 100, workers: int = 2) -> dict[str, Any]:
    """Without and with an endpoint side by side, then the latency."""
    progress(f"drain of {jobs} jobs without [webhooks]")
    bare = drain(jobs, workers, with_endpoint=False)
    progress(f"drain of {jobs} jobs with an endpoint")
    hooked = drain(jobs, workers, with_endpoint=True)
    progress(f"delivery latency, {latency_jobs} jobs one at a time")
    late = latency(latency_jobs)
    return {
        "drain_without": bare,
        "drain_with": hooked,
        "drain_ratio": hooked["jobs_per_s"] / bare["jobs_per_s"],
        "deliveries_per_s": hooked.get("deliveries_per_s"),
        "latency": late,
    }


def main(argv: list[str] | None = None) -> int:
    unwind_on_terminate()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    runs = [measure(args.jobs, args.latency_jobs) for _ in range(args.runs)]
    for run in runs:
        print(
            json.dumps(
                {
                    "drain_jobs_per_s_without": rounded(run["drain_without"]["jobs_per_s"]),
                    "drain_jobs_per_s_with": rounded(run["drain_with"]["jobs_per_s"]),
                    "drain_ratio": rounded(run["drain_ratio"]),
                    "deliveries_per_s": rounded(run["deliveries_per_s"]),
                    "latency_p50_ms": rounded(run["latency"]["p50_ms"]),
                    "latency_p90_ms": rounded(run["latency"]["p90_ms"]),
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
