"""What an attempt cost (CPU time, peak RSS), per-job limits, and progress lines.

Runs inside workers. Limits (memory, CPU time, nice) apply to the job's own process:
a command's child, or for a Python job a child forked just for it, so the reused
worker keeps its own limits.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal

from jobrunner.worker.output import write_output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROGRESS_PREFIX = b"::progress "
PROGRESS_EVERY = 0.2  # seconds between progress messages of one job; the rest are dropped


class PeakRss:
    """Peak resident memory of this process per job: VmHWM, reset before each job.

    The files stay open (a pread costs ~2 us); they are opened after fork, since
    /proc/self is resolved when a file is opened."""

    def __init__(self) -> None:
        self.clear_fd = self.status_fd = -1
        with contextlib.suppress(OSError):
            self.clear_fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
        with contextlib.suppress(OSError):
            self.status_fd = os.open("/proc/self/status", os.O_RDONLY)

    def reset(self) -> None:
        if self.clear_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.clear_fd, b"5")  # 5: reset the peak RSS to the current RSS

    def read_kb(self) -> int | None:
        if self.status_fd < 0:
            return None
        data = os.pread(self.status_fd, 8192, 0)
        at = data.find(b"VmHWM:")
        if at < 0:
            return None
        return int(data[at + 6 : data.index(b"kB", at)])


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


class Limits:
    """memory_limit (bytes, RLIMIT_AS), cpu_limit (seconds, RLIMIT_CPU), nice."""

    __slots__ = ("memory", "cpu", "nice")

    def __init__(self, options: dict[str, Any]) -> None:
        self.memory: int | None = options.get("memory_limit")
        self.cpu: float | None = options.get("cpu_limit")
        self.nice: int | None = options.get("nice")

    def __bool__(self) -> bool:
        return self.memory is not None or self.cpu is not None or self.nice is not None

    def apply(self) -> None:
        """In the job's own process, before it runs the job."""
        if self.memory is not None:
            _lower(resource.RLIMIT_AS, self.memory)
        if self.cpu is not None:
            used = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF))
            # SIGXCPU at the soft limit, SIGKILL at the hard one a second later
            soft = max(1, round(used + self.cpu))  # RLIMIT_CPU counts whole seconds
            _lower(resource.RLIMIT_CPU, soft, soft + 1)
            signal.signal(signal.SIGXCPU, signal.SIG_DFL)
        if self.nice is not None:
            os.nice(self.nice)

    def cause_of(self, exit_signal: int | None, error: str | None, cpu: float | None) -> str | None:
        """Which limit an attempt hit, from how it ended."""
        if self.cpu is not None and (
            exit_signal == signal.SIGXCPU
            or (exit_signal == signal.SIGKILL and cpu is not None and cpu >= self.cpu)
        ):
            return "cpu_limit"
        if self.memory is not None and error is not None and error.startswith("MemoryError"):
            return "oom"
        return None


def _lower(which: int, soft: int, hard: int | None = None) -> None:
    old_soft, old_hard = resource.getrlimit(which)
    if hard is None:
        hard = soft
    if old_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, old_hard), min(hard, old_hard)
    resource.setrlimit(which, (soft, hard))


class ProgressLines:
    """Splits a command's stdout: `::progress 0.4 message` lines become progress
    reports; everything else goes to the job's log unchanged (through write_output:
    what a full disk refuses is dropped and counted, never raised)."""

    def __init__(self, log_fd: int, report: Any) -> None:
        self.log_fd = log_fd
        self.report = report
        self.pending = bytearray()
        # False after passing on part of a line without its newline: the rest of that
        # line is output too, even if it arrives in a read of its own.
        self.at_line_start = True

    def feed(self, data: bytes) -> None:
        self.pending += data
        while True:
            if not self.pending:
                return
            if not self.at_line_start or (
                not PROGRESS_PREFIX.startswith(bytes(self.pending[: len(PROGRESS_PREFIX)]))
                and not self.pending.startswith(PROGRESS_PREFIX)
            ):
                # not a progress line: pass everything up to and including the next newline
                end = self.pending.find(b"\n")
                cut = len(self.pending) if end < 0 else end + 1
                write_output(self.log_fd, self.pending[:cut])
                del self.pending[:cut]
                self.at_line_start = end >= 0
                continue
            end = self.pending.find(b"\n")
            if end < 0:
                if len(self.pending) > 4096:  # not a sane progress line; let it through
                    write_output(self.log_fd, self.pending)
                    self.pending.clear()
                    self.at_line_start = False
                return
            line = bytes(self.pending[:end])
            del self.pending[: end + 1]
            self._parse(line)

    def close(self) -> None:
        if self.pending:
            write_output(self.log_fd, self.pending)
            self.pending.clear()

    def _parse(self, line: bytes) -> None:
        fields = line[len(PROGRESS_PREFIX) :].decode("utf-8", "replace").strip().split(None, 1)
        try:
            fraction = float(fields[0]) if fields else float("nan")
        except ValueError:
            fraction = float("nan")
        if fraction != fraction:  # not a number: a line like any other
            write_output(self.log_fd, line + b"\n")
            return
        self.report(fraction, fields[1] if len(fields) > 1 else None)


class OomWatch:
    """Tells whether a SIGKILL was the kernel's OOM killer: the cgroup's count rose."""

    def __init__(self) -> None:
        self.seen = oom_kills()

    def killed(self, status: int) -> bool:
        now = oom_kills()
        rose = now is not None and self.seen is not None and now > self.seen
        self.seen = now
        return rose and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def oom_kills() -> int | None:
    """The kernel's OOM-kill count for this process's memory cgroup (v2 or v1)."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates = [f"/sys/fs/cgroup{path}/memory.events"]
        elif "memory" in controllers.split(","):
            candidates = [f"/sys/fs/cgroup/memory{path}/memory.oom_control"]
        else:
            continue
        for candidate in candidates:
            try:
                with open(candidate) as f:
                    for entry in f:
                        key, _, value = entry.partition(" ")
                        if key == "oom_kill":
                            return int(value)
            except (OSError, ValueError):
                continue
    return None
