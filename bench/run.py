"""jobrunner benchmarks: drain, pickup latency, submit rates, CLI wall time, idle cost.

    python bench/run.py [--quick] [--repeat N] [--out FILE] [--synchronous FULL|NORMAL]
                        [--only drain,pickup,submit,cli,idle]

Prints one JSON document to stdout (progress goes to stderr). Every run uses a fresh
database in a fresh temp dir; every process started here is stopped by pid in a
`finally`; every wait is bounded. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import apsw

from jobrunner.client import Client
from jobrunner.config import Config
from jobrunner.models import JobInsert
from jobrunner.store import open_store
from jobrunner.wake import wake_dir

TASK = "noop:noop"
NOOP_MODULE = "def noop():\n    pass\n"
DB_NAME = "jobrunner.db"  # the CLI's default name, so `jobrunner submit` finds it from cwd
DAEMON_WORKERS = 2
POLL_COUNTS = 0.05  # the drain polls job_counts this often
STOP_TIMEOUT = 30.0  # SIGTERM -> exit; then SIGKILL
READY_TIMEOUT = 20.0  # daemon start -> registered, wake socket bound, workers forked

FULL = {"drain": 20_000, "pickup": 50, "single": 2_000, "bulk": 100_000, "cli": 20, "idle": 10.0}
QUICK = {"drain": 5_000, "pickup": 20, "single": 2_000, "bulk": 20_000, "cli": 20, "idle": 5.0}

# From the issue; "min" figures must be at least the target, "max" ones at most.
TARGETS: dict[str, tuple[str, str, float]] = {
    "drain_jobs_per_s": ("drain", "jobs_per_s", 10_000),
    "pickup_p50_ms": ("pickup", "p50_ms", 2.0),
    "idle_cpu_pct": ("idle", "cpu_pct", 1.0),
    "bulk_submit_jobs_per_s": ("submit_bulk", "jobs_per_s", 200_000),
    "single_submit_jobs_per_s": ("submit_single", "jobs_per_s", 5_000),
    "cli_submit_median_ms": ("cli_submit", "median_ms", 60.0),
}
LOWER_IS_BETTER = {"pickup_p50_ms", "idle_cpu_pct", "cli_submit_median_ms"}

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class BenchError(RuntimeError):
    pass


def progress(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# -- small statistics ---------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}") if abs(value) < 1000 else round(value, 1)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def median_of_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median, key by key, of the numeric figures of the runs that succeeded."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {}
    out: dict[str, Any] = {}
    for key, first in ok[0].items():
        if isinstance(first, bool):
            continue
        if isinstance(first, int | float):
            values = [r[key] for r in ok if isinstance(r.get(key), int | float)]
            out[key] = statistics.median(values)
        elif isinstance(first, dict):
            sub = median_of_runs([r[key] for r in ok if isinstance(r.get(key), dict)])
            if sub:
                out[key] = sub
    return out


# -- processes ------------------------------------------------------------------------------


PYCACHE: dict[str, str] = {}  # {"dir": ...} while main() runs


def clean_env() -> dict[str, str]:
    """The environment for the processes started here.

    Without JOBRUNNER_* settings, which would redirect the database. With bytecode
    caching on, in a private PYTHONPYCACHEPREFIX: PYTHONDONTWRITEBYTECODE (set in some
    sandboxes) would make every `jobrunner submit` compile jobrunner from source,
    which no installed copy does, and a private prefix keeps .pyc files out of the
    source tree and never stale while jobrunner/ is being edited.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUNNER_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if "dir" in PYCACHE:
        env["PYTHONPYCACHEPREFIX"] = PYCACHE["dir"]
    return env


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = proc_stat(pid)
    return int(fields[19]) if fields else None  # field 22: starttime


def cpu_ticks(pid: int) -> int | None:
    fields = proc_stat(pid)
    return int(fields[11]) + int(fields[12]) if fields else None  # utime + stime


def cpu_ns(pid: int) -> int | None:
    """Time on CPU in ns from /proc/PID/schedstat (finer than the stat ticks)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def pss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def children_of(pid: int) -> list[int]:
    """Direct children, from /proc/PID/task/*/children or else every /proc/*/stat ppid."""
    found: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.update(int(c) for c in f.read().split())
        return sorted(found)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = proc_stat(int(name))
            if fields and int(fields[1]) == pid:
                found.add(int(name))
    return sorted(found)


def is_worker(pid: int) -> bool:
    """A worker leads its own process group inside the daemon's session; a helper the
    daemon forks for itself (the group guard) runs in a session of its own."""
    fields = proc_stat(pid)
    return bool(fields) and int(fields[2]) == pid and int(fields[3]) != pid


def wait_until(what: str, check: Callable[[], bool], timeout: float, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class Daemon:
    """`python -m jobrunner --db DB daemon --workers N` in `cwd`, stopped by pid."""

    def __init__(self, workdir: str, workers: int = DAEMON_WORKERS) -> None:
        self.workdir = workdir
        self.workers = workers
        self.log_path = os.path.join(workdir, "daemon.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_pid: int | None = None  # kept after stop(), for reporting
        self.known_children: dict[int, int | None] = {}  # pid -> starttime

    def start(self) -> float:
        """Start it; returns the wall time just before the process was created."""
        argv = [sys.executable, "-m", "jobrunner", "--db", DB_NAME, "daemon"]
        argv += ["--workers", str(self.workers)]
        with open(self.log_path, "ab") as log:
            wall = time.time()
            self.proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=clean_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a ^C here reaches only the bench, which stops it
            )
        self.started_pid = self.proc.pid
        return wall

    @property
    def pid(self) -> int:
        if self.started_pid is None:
            raise BenchError("the daemon was never started")
        return self.started_pid

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")

    def children(self) -> list[int]:
        """Every child: its workers and any helper (see is_worker)."""
        kids = children_of(self.pid)
        for kid in kids:
            self.known_children.setdefault(kid, start_time(kid))
        return kids

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Its wake socket bound and all its workers forked."""
        folder = wake_dir(os.path.join(self.workdir, DB_NAME))

        def ready() -> bool:
            self.check_alive()
            sockets = os.path.isdir(folder) and any(n.endswith(".sock") for n in os.listdir(folder))
            workers = [kid for kid in self.children() if is_worker(kid)]
            return sockets and len(workers) >= self.workers

        wait_until("the daemon to be ready", ready, timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> int | None:
        """SIGTERM by pid and wait; SIGKILL if it does not exit. Returns the exit code."""
        if self.proc is None:
            return None
        with contextlib.suppress(BenchError):
            self.children()  # remember the workers, to clean up stragglers by pid
        code: int | None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                progress(f"daemon {self.proc.pid} ignored SIGTERM for {STOP_TIMEOUT}s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                code = self.proc.wait(timeout=STOP_TIMEOUT)
        else:
            code = self.proc.returncode
        for kid, started in self.known_children.items():
            # Only the very process we saw (same pid and start time), never a reused pid.
            deadline = time.monotonic() + 5
            while start_time(kid) == started and started is not None:
                if time.monotonic() >= deadline:
                    progress(f"worker {kid} outlived its daemon: SIGKILL")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(kid, signal.SIGKILL)
                    break
                time.sleep(0.01)
        self.proc = None
        return code


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[str]:
    """A fresh temp dir holding the noop task module; removed afterwards."""
    path = tempfile.mkdtemp(prefix="jrbench-")
    try:
        with open(os.path.join(path, "noop.py"), "w") as f:
            f.write(NOOP_MODULE)
        yield path
    finally:
        if keep:
            progress(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def chdir(path: str) -> Iterator[None]:
    """Submitters check from cwd that the task's module is findable, as a user's would."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def write_config(path: str, synchronous: str) -> str | None:
    """A jobrunner.toml only when not the default, so the default runs read no config."""
    if synchronous == "FULL":
        return None
    config = os.path.join(path, "jobrunner.toml")
    with open(config, "w") as f:
        f.write(f'synchronous = "{synchronous}"\n')
    return config


def make_client(path: str, synchronous: str) -> Client:
    return Client(os.path.join(path, DB_NAME), Config(synchronous=synchronous))


# -- the measurements --------------------------------------------------------------------


def bench_drain(path: str, n: int, synchronous: str) -> dict[str, Any]:
    db = os.path.join(path, DB_NAME)
    write_config(path, synchronous)
    store = open_store(db, synchronous=synchronous)
    daemon = Daemon(path)
    try:
        t = time.perf_counter()
        store.job_insert_many([JobInsert(task=TASK) for _ in range(n)], time.time())
        insert_s = time.perf_counter() - t
        timeout = 60 + n / 200  # generous: 200 jobs/s would already be a failure
        polls = 0
        t0 = time.perf_counter()
        wall0 = daemon.start()
        deadline = t0 + timeout
        while True:
            counts = store.job_counts()
            polls += 1
            done = sum(c for (state, _), c in counts.items() if state == "succeeded")
            if done >= n:
                break
            bad = {s: c for (s, _), c in counts.items() if s in ("dead", "retrying", "cancelled")}
            if bad:
                raise BenchError(f"drain: jobs did not succeed: {bad}\n{daemon.log_tail()}")
            daemon.check_alive()
            if time.perf_counter() >= deadline:
                raise BenchError(f"drain: {done}/{n} succeeded after {timeout:.0f}s")
            time.sleep(POLL_COUNTS)
        elapsed = time.perf_counter() - t0
        # CPU spent by the supervisor and by its workers from start to drained.
        workers = [kid for kid in daemon.children() if is_worker(kid)]
        daemon_cpu = (cpu_ticks(daemon.pid) or 0) / CLK_TCK
        workers_cpu = sum(cpu_ticks(w) or 0 for w in workers) / CLK_TCK
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
        "finished_span_s": span,
        "jobs_per_s_finished_span": (n - 1) / span if span > 0 else 0.0,
        "startup_s": first_start - wall0,  # process start -> first job started
        "daemon_cpu_s": daemon_cpu,
        "workers_cpu_s": workers_cpu,
        "daemon_cpu_us_per_job": 1e6 * daemon_cpu / n,
        "workers_cpu_us_per_job": 1e6 * workers_cpu / n,
        "count_polls": polls,
        "insert_s": insert_s,
        "daemon_exit": code,
    }


def read_only(db: str, sql: str) -> list[tuple[Any, ...]]:
    conn = apsw.Connection(db, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(row) for row in conn.execute(sql)]
    finally:
        conn.close()


def bench_pickup(path: str, n: int, synchronous: str) -> dict[str, Any]:
    write_config(path, synchronous)
    client = make_client(path, synchronous)
    daemon = Daemon(path)
    latencies: list[float] = []
    after_commit: list[float] = []
    roundtrips: list[float] = []
    try:
        with chdir(path):
            client.store  # noqa: B018 - open (and create) the database before the daemon
            daemon.start()
            daemon.wait_ready()
            time.sleep(0.2)  # let its first claim/poll pass
            for _ in range(n):
                handle = client.submit(TASK)
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
        "jobs": n,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "max_ms": max(latencies),
        "min_ms": min(latencies),
        # submit returned -> started: the daemon's share, without the submitter's commit
        "after_submit_p50_ms": percentile(after_commit, 50),
        "finished_p50_ms": percentile(roundtrips, 50),  # created -> finished
        "daemon_exit": code,
    }


def bench_submit_single(path: str, n: int, synchronous: str) -> dict[str, Any]:
    client = make_client(path, synchronous)
    try:
        with chdir(path):
            client.store  # noqa: B018 - opening and creating the database is not timed
            t0 = time.perf_counter()
            for _ in range(n):
                client.submit(TASK)
            cold = time.perf_counter() - t0
            # Steady state: the WAL has reached its working size and commits overwrite it
            # instead of growing the file (a growing file costs each fsync a metadata flush).
            t0 = time.perf_counter()
            for _ in range(n):
                client.submit(TASK)
            elapsed = time.perf_counter() - t0
    finally:
        client.close()
    return {"jobs": n, "seconds": elapsed, "jobs_per_s": n / elapsed, "cold_jobs_per_s": n / cold}


def bench_submit_bulk(path: str, n: int, synchronous: str) -> dict[str, Any]:
    client = make_client(path, synchronous)
    try:
        with chdir(path):
            client.store  # noqa: B018
            t0 = time.perf_counter()
            jobs = [client.prepare(TASK) for _ in range(n)]
            t1 = time.perf_counter()
            ids = client.insert(jobs)
            t2 = time.perf_counter()
            many = client.submit_many(TASK, [[i] for i in range(n)])
            t3 = time.perf_counter()
    finally:
        client.close()
    if len(ids) != n or len(many) != n:
        raise BenchError(f"bulk: inserted {len(ids)} and {len(many)} of {n}")
    return {
        "jobs": n,
        # Client.submit_many: one task, n argument lists, one transaction
        "seconds": t3 - t2,
        "jobs_per_s": n / (t3 - t2),
        "prepare_each_then_insert_jobs_per_s": n / (t2 - t0),
        "prepare_s": t1 - t0,
        "prepare_jobs_per_s": n / (t1 - t0),
        "insert_s": t2 - t1,
        "insert_jobs_per_s": n / (t2 - t1),
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


def bench_cli(path: str, n: int, synchronous: str) -> dict[str, Any]:
    write_config(path, synchronous)
    script = jobrunner_script()
    argv = [script, "submit", TASK]
    bare_argv = [sys.executable, "-c", "pass"]
    import_argv = [sys.executable, "-c", "import jobrunner.cli.main"]
    for warm in (argv, bare_argv, import_argv):  # creates the database, the .pyc files
        time_command(warm, path, 1)
    submit = time_command(argv, path, n)
    bare = time_command(bare_argv, path, n)
    imports = time_command(import_argv, path, n)
    count = read_only(os.path.join(path, DB_NAME), "SELECT count(*) FROM jobs")[0][0]
    if count != n + 1:
        raise BenchError(f"cli: {count} jobs in the database, expected {n + 1}")
    return {
        "submits": n,
        "median_ms": statistics.median(submit),
        "p95_ms": percentile(submit, 95),
        "min_ms": min(submit),
        "python_pass_median_ms": statistics.median(bare),
        "python_pass_p95_ms": percentile(bare, 95),
        "import_cli_main_median_ms": statistics.median(imports),
        "over_bare_python_median_ms": statistics.median(submit) - statistics.median(bare),
    }


def cpu_sample(pids: list[int]) -> dict[int, tuple[int, int | None]]:
    """(utime+stime ticks, schedstat ns) per pid; BenchError if one is gone."""
    sample: dict[int, tuple[int, int | None]] = {}
    for pid in pids:
        ticks = cpu_ticks(pid)
        if ticks is None:
            raise BenchError(f"idle: process {pid} went away during the measurement")
        sample[pid] = (ticks, cpu_ns(pid))
    return sample


def bench_idle(path: str, seconds: float, synchronous: str) -> dict[str, Any]:
    write_config(path, synchronous)
    daemon = Daemon(path)
    try:
        daemon.start()
        daemon.wait_ready()
        time.sleep(1.0)  # past start-up: the first rescue, claim and next-due checks
        daemon.check_alive()
        pids = [daemon.pid, *daemon.children()]
        roles = {p: "worker" if is_worker(p) else "helper" for p in pids}
        before = cpu_sample(pids)
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        daemon.check_alive()
        after = cpu_sample(pids)
        rss = {p: (status_kib(p, "VmRSS") or 0) / 1024 for p in pids}
        pss = [pss_kib(p) for p in pids]
    finally:
        code = daemon.stop()
    pct = {p: 100 * (after[p][0] - before[p][0]) / CLK_TCK / elapsed for p in pids}
    workers = [p for p in pids if p != daemon.pid and roles[p] == "worker"]
    helpers = [p for p in pids if p != daemon.pid and roles[p] != "worker"]
    result: dict[str, Any] = {
        "seconds": elapsed,
        "cpu_pct": sum(pct.values()),  # the daemon and every child
        "daemon_cpu_pct": pct[daemon.pid],
        "workers_cpu_pct": sum(pct[p] for p in workers),
        "helpers_cpu_pct": sum(pct[p] for p in helpers),
    }
    ns = [(after[p][1], before[p][1]) for p in pids]
    if all(a is not None and b is not None for a, b in ns):
        total_ns = sum(a - b for a, b in ns if a is not None and b is not None)
        result["cpu_pct_schedstat"] = 100 * total_ns / 1e9 / elapsed
    result["daemon_rss_mib"] = rss[daemon.pid]
    result["worker_rss_mib"] = [rss[p] for p in workers]
    result["worker_rss_mib_max"] = max((rss[p] for p in workers), default=0.0)
    result["helper_rss_mib"] = [rss[p] for p in helpers]
    result["total_rss_mib"] = sum(rss.values())
    if all(v is not None for v in pss):
        result["total_pss_mib"] = sum(v for v in pss if v is not None) / 1024
    result["workers"] = len(workers)
    result["helpers"] = len(helpers)
    result["daemon_exit"] = code
    return result


# -- the driver ---------------------------------------------------------------------------

Measurement = Callable[[str, Any, str], dict[str, Any]]


def plan(sizes: dict[str, Any]) -> list[tuple[str, str, Measurement, Any]]:
    """(group for --only, name in the JSON, function, size)."""
    return [
        ("drain", "drain", bench_drain, sizes["drain"]),
        ("pickup", "pickup", bench_pickup, sizes["pickup"]),
        ("submit", "submit_single", bench_submit_single, sizes["single"]),
        ("submit", "submit_bulk", bench_submit_bulk, sizes["bulk"]),
        ("cli", "cli_submit", bench_cli, sizes["cli"]),
        ("idle", "idle", bench_idle, sizes["idle"]),
    ]


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "apsw": apsw.apsw_version(),
        "sqlite": apsw.sqlite_lib_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    tmp = tempfile.gettempdir()
    info["tmpdir"] = tmp
    with contextlib.suppress(OSError):
        with open("/proc/mounts") as f:
            mounts = [line.split() for line in f]
        best = max(
            (m for m in mounts if tmp == m[1] or tmp.startswith(m[1].rstrip("/") + "/")),
            key=lambda m: len(m[1]),
            default=None,
        )
        if best:
            info["tmpdir_fs"] = best[2]
    return info


def summary(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (group, key, target) in TARGETS.items():
        value = results.get(group, {}).get("median", {}).get(key)
        if value is None:
            continue
        ok = value <= target if name in LOWER_IS_BETTER else value >= target
        out[name] = {
            "median": value,
            "target": target,
            "kind": "max" if name in LOWER_IS_BETTER else "min",
            "meets": ok,
        }
    return out


def warm_pycache() -> None:
    """Compile what the daemon and the CLI import into the private .pyc prefix."""
    modules = "jobrunner.cli.main, jobrunner.cli.submit, jobrunner.cli.daemon, jobrunner.client"
    code = f"import {modules}, jobrunner.daemon.supervisor, jobrunner.store.sqlite"
    subprocess.run([sys.executable, "-c", code], env=clean_env(), check=True, timeout=60)


def run_all(
    steps: list[tuple[str, str, Measurement, Any]],
    only: set[str],
    repeat: int,
    args: argparse.Namespace,
    results: dict[str, Any],
) -> bool:
    """Run every selected measurement `repeat` times into `results`; True if one failed."""
    failed = False
    for group, name, fn, size in steps:
        if group not in only:
            continue
        runs: list[dict[str, Any]] = []
        for i in range(repeat):
            progress(f"{name} run {i + 1}/{repeat} (size {size}, synchronous={args.synchronous})")
            load = os.getloadavg()[0]  # other work on the machine skews every figure
            with workdir(args.keep) as path:
                try:
                    run = fn(path, size, args.synchronous)
                except (BenchError, OSError, apsw.Error, subprocess.SubprocessError) as exc:
                    progress(f"{name} run {i + 1} FAILED: {exc}")
                    run = {"error": str(exc)}
                    failed = True
            run["loadavg_1m_before"] = load
            runs.append(run)
            shown = {k: v for k, v in rounded(run).items() if not isinstance(v, list | dict)}
            progress(f"  {shown}")
        results[name] = {"runs": runs, "median": median_of_runs(runs)}
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run each")
    parser.add_argument("--repeat", type=int, help="runs per measurement (default 3; --quick 1)")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON here")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument(
        "--only", metavar="a,b", help="some of: drain,pickup,submit,cli,idle (default: all)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (debugging)")
    args = parser.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes = dict(QUICK if args.quick else FULL)
    groups = {"drain", "pickup", "submit", "cli", "idle"}
    only = set(args.only.split(",")) if args.only else groups
    if only - groups:
        parser.error(f"--only: unknown {sorted(only - groups)}; choose from {sorted(groups)}")

    # A SIGTERM to the bench unwinds like ^C, so every `finally` stops its daemon.
    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    results: dict[str, Any] = {}
    started = time.time()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        progress(
            f"warning: load average {load_before[0]:.2f} on {os.cpu_count()} cores; "
            "other work on this machine will skew the figures"
        )
    PYCACHE["dir"] = tempfile.mkdtemp(prefix="jrbench-pycache-")
    try:
        warm_pycache()
        failed = run_all(plan(sizes), only, repeat, args, results)
    finally:
        shutil.rmtree(PYCACHE.pop("dir"), ignore_errors=True)

    machine = machine_info()
    machine["loadavg_before"] = list(load_before)
    machine["loadavg_after"] = list(os.getloadavg())

    document = rounded(
        {
            "benchmark": "jobrunner",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "duration_s": time.time() - started,
            "settings": {
                "quick": args.quick,
                "repeat": repeat,
                "synchronous": args.synchronous,
                "daemon_workers": DAEMON_WORKERS,
                "sizes": sizes,
                "task": TASK,
            },
            "machine": machine,
            "results": results,
            "summary": summary(results),
        }
    )
    text = json.dumps(document, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    sys.stdout.write(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        progress("interrupted; every daemon started here has been stopped")
        raise SystemExit(130) from None
