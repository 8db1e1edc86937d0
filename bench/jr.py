"""jobrunner's side of the benchmarks: drain, end-to-end, pickup, submit rates, CPU-heavy
jobs, the CLI's wall time and the idle daemon's cost. See bench/README.md."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import apsw

from bench.procs import (
    CLK_TCK,
    BenchError,
    Service,
    chdir,
    clean_env,
    cpu_ticks,
    end_to_end_figures,
    idle_cpu,
    latency_figures,
    percentile,
    proc_stat,
    pss_kib,
    status_kib,
    wait_until,
)
from jobrunner.client import Client
from jobrunner.config import Config
from jobrunner.models import JobInsert
from jobrunner.store import open_store
from jobrunner.store.sqlite_wake import wake_dir

NOOP = "work:noop"
BURN = "work:burn"
DB_NAME = "jobrunner.db"  # the CLI's default name, so `jobrunner submit` finds it from cwd
POLL = 0.02  # completion is polled this often, for both runners, with an indexed count
READY_TIMEOUT = 20.0  # daemon start -> registered, wake socket bound, workers forked


@dataclass
class Settings:
    synchronous: str = "FULL"
    workers: int = 2
    burn_n: int = 0  # loop turns of work.burn for about 50 ms


def is_worker(pid: int) -> bool:
    """A worker leads its own process group inside the daemon's session; a helper the
    daemon forks for itself (the group guard) runs in a session of its own."""
    fields = proc_stat(pid)
    return bool(fields) and int(fields[2]) == pid and int(fields[3]) != pid


class Daemon(Service):
    """`python -m jobrunner --db DB daemon --workers N` in `cwd`."""

    name = "daemon"

    def __init__(self, workdir: str, workers: int) -> None:
        argv = [sys.executable, "-m", "jobrunner", "--db", DB_NAME, "daemon"]
        super().__init__(workdir, [*argv, "--workers", str(workers)])
        self.workers = workers

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Its wake socket bound and all its workers forked."""
        folder = wake_dir(os.path.join(self.workdir, DB_NAME))

        def ready() -> bool:
            self.check_alive()
            sockets = os.path.isdir(folder) and any(n.endswith(".sock") for n in os.listdir(folder))
            workers = [kid for kid in self.children() if is_worker(kid)]
            return sockets and len(workers) >= self.workers

        wait_until("the daemon to be ready", ready, timeout)

    def cpu_split(self) -> tuple[float, float]:
        """CPU seconds so far of the supervisor, and of its workers together."""
        workers = [kid for kid in self.children() if is_worker(kid)]
        return (cpu_ticks(self.pid) or 0) / CLK_TCK, sum(
            cpu_ticks(w) or 0 for w in workers
        ) / CLK_TCK


def write_config(path: str, synchronous: str) -> None:
    """A jobrunner.toml only when not the default, so the default runs read no config."""
    if synchronous != "FULL":
        with open(os.path.join(path, "jobrunner.toml"), "w") as f:
            f.write(f'synchronous = "{synchronous}"\n')


def make_client(path: str, s: Settings) -> Client:
    return Client(os.path.join(path, DB_NAME), Config(synchronous=s.synchronous))


def read_only(db: str, sql: str) -> list[tuple[Any, ...]]:
    conn = apsw.Connection(db, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(row) for row in conn.execute(sql)]
    finally:
        conn.close()


def wait_succeeded(store: Any, daemon: Daemon, n: int, timeout: float) -> int:
    """Poll until n jobs succeeded; returns the number of polls. The count comes from
    the index of ended jobs, so polling costs the daemon little."""
    polls = 0
    deadline = time.perf_counter() + timeout
    while True:
        ended = store.job_count_ended_since(0.0)
        polls += 1
        done = ended.get("succeeded", 0)
        if done >= n:
            return polls
        bad = {s: c for s, c in ended.items() if s != "succeeded"}
        if bad:
            raise BenchError(f"jobs did not succeed: {bad}\n{daemon.log_tail()}")
        daemon.check_alive()
        if time.perf_counter() >= deadline:
            raise BenchError(f"{done}/{n} succeeded after {timeout:.0f}s")
        time.sleep(POLL)


# -- the measurements --------------------------------------------------------------------


def drain(path: str, n: int, s: Settings, task: str = NOOP, args: Any = None) -> dict[str, Any]:
    """n jobs queued before the daemon starts; from its start to all succeeded."""
    db = os.path.join(path, DB_NAME)
    write_config(path, s.synchronous)
    store = open_store(db, synchronous=s.synchronous)
    daemon = Daemon(path, s.workers)
    try:
        t = time.perf_counter()
        store.job_insert_many(
            [JobInsert(task=task, args=args or []) for _ in range(n)], time.time()
        )
        insert_s = time.perf_counter() - t
        t0 = time.perf_counter()
        wall0 = daemon.start()
        polls = wait_succeeded(store, daemon, n, 60 + n / 50)
        elapsed = time.perf_counter() - t0
        daemon_cpu, workers_cpu = daemon.cpu_split()
    finally:
        code = daemon.stop()
        store.close()
    first_start, first_end, last_end = read_only(
        db, "SELECT min(started_at), min(finished_at), max(finished_at) FROM jobs"
    )[0]
    span = last_end - first_end
    return {
        "jobs": n,
        "seconds": elapsed,
        "jobs_per_s": n / elapsed,
        "jobs_per_s_finished_span": (n - 1) / span if span > 0 else 0.0,
        "startup_s": first_start - wall0,  # process start -> first job started
        "daemon_cpu_us_per_job": 1e6 * daemon_cpu / n,
        "workers_cpu_us_per_job": 1e6 * workers_cpu / n,
        "count_polls": polls,
        "insert_s": insert_s,
        "daemon_exit": code,
    }


def end_to_end(path: str, n: int, s: Settings, batch: int = 1) -> dict[str, Any]:
    """A running daemon; n submits, one transaction each (or `batch` jobs per
    transaction with submit_many), as fast as they go; from the first submit to all
    succeeded."""
    write_config(path, s.synchronous)
    client = make_client(path, s)
    daemon = Daemon(path, s.workers)
    try:
        with chdir(path):
            client.store  # noqa: B018 - open (and create) the database before the daemon
            daemon.start()
            daemon.wait_ready()
            t0 = time.perf_counter()
            if batch == 1:
                for _ in range(n):
                    client.submit(NOOP)
            else:
                for start in range(0, n, batch):
                    client.submit_many(NOOP, [[] for _ in range(min(batch, n - start))])
            submitted = time.perf_counter() - t0
            wait_succeeded(client.store, daemon, n, 60 + n / 50)
            elapsed = time.perf_counter() - t0
    finally:
        code = daemon.stop()
        client.close()
    return {**end_to_end_figures(n, elapsed, submitted), "daemon_exit": code}


def end_to_end_bulk(path: str, n: int, s: Settings) -> dict[str, Any]:
    return end_to_end(path, n, s, batch=BATCH)


BATCH = 100  # jobs per submit in the bulk end-to-end run


def pickup(path: str, n: int, s: Settings) -> dict[str, Any]:
    """Single submits to an idle daemon: created_at -> started_at."""
    write_config(path, s.synchronous)
    client = make_client(path, s)
    daemon = Daemon(path, s.workers)
    latencies: list[float] = []
    after_commit: list[float] = []
    roundtrips: list[float] = []
    try:
        with chdir(path):
            client.store  # noqa: B018
            daemon.start()
            daemon.wait_ready()
            time.sleep(0.2)  # let its first claim/poll pass
            for _ in range(n):
                handle = client.submit(NOOP)
                committed = time.time()  # submit returned: committed and the daemon woken
                job = client.wait(handle.id, timeout=10)
                if job.state != "succeeded" or job.started_at is None or job.finished_at is None:
                    raise BenchError(f"pickup: job {job.id} ended {job.state}: {job.error}")
                latencies.append((job.started_at - job.created_at) * 1000)
                after_commit.append((job.started_at - committed) * 1000)
                roundtrips.append((job.finished_at - job.created_at) * 1000)
                time.sleep(0.02)  # the daemon is idle again before the next submit
    finally:
        code = daemon.stop()
        client.close()
    return {
        **latency_figures(latencies),
        "after_submit_p50_ms": percentile(after_commit, 50),
        "finished_p50_ms": percentile(roundtrips, 50),
        "daemon_exit": code,
    }


def submit_single(path: str, n: int, s: Settings) -> dict[str, Any]:
    client = make_client(path, s)
    try:
        with chdir(path):
            client.store  # noqa: B018 - opening and creating the database is not timed
            t0 = time.perf_counter()
            for _ in range(n):
                client.submit(NOOP)
            cold = time.perf_counter() - t0
            # Steady state: the WAL has reached its working size and commits overwrite it
            # instead of growing the file (a growing file costs each fsync a metadata flush).
            t0 = time.perf_counter()
            for _ in range(n):
                client.submit(NOOP)
            elapsed = time.perf_counter() - t0
    finally:
        client.close()
    return {"jobs": n, "jobs_per_s": n / elapsed, "cold_jobs_per_s": n / cold}


def submit_bulk(path: str, n: int, s: Settings) -> dict[str, Any]:
    client = make_client(path, s)
    try:
        with chdir(path):
            client.store  # noqa: B018
            t0 = time.perf_counter()
            jobs = [client.prepare(NOOP) for _ in range(n)]
            ids = client.insert(jobs)
            t2 = time.perf_counter()
            many = client.submit_many(NOOP, [[i] for i in range(n)])
            t3 = time.perf_counter()
    finally:
        client.close()
    if len(ids) != n or len(many) != n:
        raise BenchError(f"bulk: inserted {len(ids)} and {len(many)} of {n}")
    return {
        "jobs": n,
        "jobs_per_s": n / (t3 - t2),  # Client.submit_many: one transaction
        "prepare_each_then_insert_jobs_per_s": n / (t2 - t0),
    }


def cpu_heavy(path: str, n: int, s: Settings) -> dict[str, Any]:
    """n jobs of `burn` (~50 ms of pure Python each) drained by s.workers workers."""
    result = drain(path, n, s, task=BURN, args=[s.burn_n])
    return {
        "jobs": n,
        "workers": s.workers,
        "seconds": result["seconds"],
        "jobs_per_s": result["jobs_per_s"],
    }


def jobrunner_script() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "jobrunner")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("jobrunner")
    if not found:
        raise BenchError("no `jobrunner` console script beside the interpreter or on PATH")
    return found


def time_command(argv: list[str], cwd: str, n: int) -> list[float]:
    times = []
    env = clean_env()
    for _ in range(n):
        t0 = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr!r}")
    return times


def cli(path: str, n: int, s: Settings) -> dict[str, Any]:
    write_config(path, s.synchronous)
    argv = [jobrunner_script(), "submit", NOOP]
    bare_argv = [sys.executable, "-c", "pass"]
    for warm in (argv, bare_argv):  # creates the database, the .pyc files
        time_command(warm, path, 1)
    submit = time_command(argv, path, n)
    bare = time_command(bare_argv, path, n)
    count = read_only(os.path.join(path, DB_NAME), "SELECT count(*) FROM jobs")[0][0]
    if count != n + 1:
        raise BenchError(f"cli: {count} jobs in the database, expected {n + 1}")
    return {
        "submits": n,
        "median_ms": statistics.median(submit),
        "p95_ms": percentile(submit, 95),
        "python_pass_median_ms": statistics.median(bare),
    }


def idle(path: str, seconds: float, s: Settings) -> dict[str, Any]:
    write_config(path, s.synchronous)
    daemon = Daemon(path, s.workers)
    try:
        daemon.start()
        daemon.wait_ready()
        time.sleep(1.0)  # past start-up: the first rescue, claim and next-due checks
        daemon.check_alive()
        pids = [daemon.pid, *daemon.children()]
        workers = [p for p in pids[1:] if is_worker(p)]
        pct, fine, elapsed = idle_cpu(pids, seconds)
        daemon.check_alive()
        rss = {p: (status_kib(p, "VmRSS") or 0) / 1024 for p in pids}
        pss = [pss_kib(p) for p in pids]
    finally:
        code = daemon.stop()
    result: dict[str, Any] = {
        "seconds": elapsed,
        "cpu_pct": sum(pct.values()),  # the daemon and every child
        "daemon_cpu_pct": pct[daemon.pid],
        "daemon_rss_mib": rss[daemon.pid],
        "worker_rss_mib_max": max((rss[p] for p in workers), default=0.0),
        "total_rss_mib": sum(rss.values()),
        "daemon_exit": code,
    }
    if fine is not None:
        result["cpu_pct_schedstat"] = fine
    if all(v is not None for v in pss):
        result["total_pss_mib"] = sum(v for v in pss if v is not None) / 1024
    return result
