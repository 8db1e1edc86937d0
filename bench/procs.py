"""What every benchmark here shares: statistics, /proc readings, bounded waits, and a
service process (a jobrunner daemon or a huey consumer) that is stopped by pid.

Every process started here runs in a session of its own and is stopped by pid in a
`finally`; any child that outlives it is killed by pid, checked against its start
time so a reused pid is never hit. Nothing is killed by name; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT = 30.0  # SIGTERM -> exit; then SIGKILL


class BenchError(RuntimeError):
    pass


def unwind_on_terminate() -> None:
    """A bench's main calls this first: a SIGTERM or SIGHUP to it (`make bench` stopped,
    its terminal closed) then unwinds it as ^C does, so the `finally`s stop the services
    it started, which run in sessions of their own and do not get the signal."""

    def unwind(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, unwind)


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


def spread_of_runs(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """[min, max] of each top-level numeric figure over the runs that succeeded."""
    ok = [r for r in runs if "error" not in r]
    out: dict[str, list[float]] = {}
    for key in ok[0] if ok else ():
        values = [r[key] for r in ok if isinstance(r.get(key), int | float)]
        if values and not isinstance(ok[0][key], bool):
            out[key] = [min(values), max(values)]
    return out


def latency_figures(latencies_ms: list[float]) -> dict[str, Any]:
    """The pickup figures both runners report, with every latency for the charts."""
    return {
        "jobs": len(latencies_ms),
        "p50_ms": percentile(latencies_ms, 50),
        "p95_ms": percentile(latencies_ms, 95),
        "max_ms": max(latencies_ms),
        "min_ms": min(latencies_ms),
        "latencies_ms": latencies_ms,
    }


def end_to_end_figures(n: int, elapsed: float, submitted: float) -> dict[str, Any]:
    """From the first submit to all done, and the submit loop's own rate."""
    return {
        "jobs": n,
        "seconds": elapsed,
        "jobs_per_s": n / elapsed,
        "submit_jobs_per_s": n / submitted,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"runs": runs, "median": median_of_runs(runs), "spread": spread_of_runs(runs)}


# -- the environment of the processes started here ----------------------------------------

PYCACHE: dict[str, str] = {}  # {"dir": ...} while the driver runs


def clean_env(**extra: str) -> dict[str, str]:
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
    env.update(extra)
    return env


@contextlib.contextmanager
def chdir(path: str) -> Iterator[None]:
    """Submitters check from cwd that the task's module is findable, as a user's would."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# -- /proc ----------------------------------------------------------------------------------


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


def wait_until(what: str, check: Callable[[], bool], timeout: float, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def cpu_sample(pids: list[int]) -> dict[int, tuple[int, int | None]]:
    """(utime+stime ticks, schedstat ns) per pid; BenchError if one is gone."""
    sample: dict[int, tuple[int, int | None]] = {}
    for pid in pids:
        ticks = cpu_ticks(pid)
        if ticks is None:
            raise BenchError(f"process {pid} went away during the measurement")
        sample[pid] = (ticks, cpu_ns(pid))
    return sample


def idle_cpu(pids: list[int], seconds: float) -> tuple[dict[int, float], float | None, float]:
    """% of one core used by each pid over `seconds`, the schedstat total, the span."""
    before = cpu_sample(pids)
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    after = cpu_sample(pids)
    pct = {p: 100 * (after[p][0] - before[p][0]) / CLK_TCK / elapsed for p in pids}
    ns = [(after[p][1], before[p][1]) for p in pids]
    fine: float | None = None
    if all(a is not None and b is not None for a, b in ns):
        fine = 100 * sum(a - b for a, b in ns if a is not None and b is not None) / 1e9 / elapsed
    return pct, fine, elapsed


# -- a service process ----------------------------------------------------------------------


class Service:
    """A long-running process (argv in cwd) in its own session, stopped by pid."""

    name = "service"

    def __init__(self, workdir: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.argv = argv
        self.env = env if env is not None else clean_env()
        self.log_path = os.path.join(workdir, f"{self.name}.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_pid: int | None = None  # kept after stop(), for reporting
        self.known_children: dict[int, int | None] = {}  # pid -> starttime

    def start(self) -> float:
        """Start it; returns the wall time just before the process was created."""
        with open(self.log_path, "ab") as log:
            wall = time.time()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=self.env,
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
            raise BenchError(f"the {self.name} was never started")
        return self.started_pid

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def children(self) -> list[int]:
        kids = children_of(self.pid)
        for kid in kids:
            self.known_children.setdefault(kid, start_time(kid))
        return kids

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
            self.children()  # remember the children, to clean up stragglers by pid
        code: int | None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                progress(f"{self.name} {self.proc.pid} ignored SIGTERM: SIGKILL")
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
                    progress(f"child {kid} outlived its {self.name}: SIGKILL")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(kid, signal.SIGKILL)
                    break
                time.sleep(0.01)
        self.proc = None
        return code
