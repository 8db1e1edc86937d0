"""The supervisor's side of its workers: forking, dispatching, reading results, killing."""

from __future__ import annotations

import collections
import contextlib
import importlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from jobrunner.config import Config, import_folders
from jobrunner.durations import format_duration
from jobrunner.errors import ConfigError
from jobrunner.models import Job
from jobrunner.worker.child import worker_main
from jobrunner.worker.containment import (
    Containment,
    enter_cgroup,
    in_cgroup,
    kill_cgroup,
    signal_cgroup,
    signal_tree,
)
from jobrunner.worker.protocol import FrameReader, JobSpec, describe_status, encode
from jobrunner.worker.starts import SharedLease

log = logging.getLogger("jobrunner.daemon")


@dataclass(slots=True)
class KillOrder:
    """Why the supervisor is killing a worker's process group, and when to escalate."""

    reason: str  # "timeout", "cancel" or "shutdown"
    job_id: int
    kill_at: float  # monotonic time for SIGKILL
    detail: str = ""


@dataclass(slots=True)
class WorkerHandle:
    pid: int
    to_fd: int
    from_fd: int
    reader: FrameReader = field(default_factory=FrameReader)
    # jobs sent and not yet answered, in the order the worker runs them, by (job id,
    # attempt): a rescued job may come back to the same worker as its next attempt
    inflight: collections.OrderedDict[tuple[int, int], Job] = field(
        default_factory=collections.OrderedDict
    )
    head_since: float = 0.0  # monotonic time the first in-flight job started (approx.)
    head_wall: float | None = None  # the same, as wall time, for the attempt history
    outbuf: bytearray = field(default_factory=bytearray)
    kill: KillOrder | None = None
    eof: bool = False
    cgroup: str | None = None  # the worker's own cgroup, when the daemon has one

    @property
    def head(self) -> Job | None:
        return next(iter(self.inflight.values()), None)

    def send(self, message: Any) -> None:
        self.outbuf += encode(message)
        self.flush()

    def flush(self) -> None:
        """Write what the pipe takes now; the rest waits for POLLOUT."""
        while self.outbuf:
            try:
                written = os.write(self.to_fd, self.outbuf)
            except BlockingIOError:
                return
            except BrokenPipeError:
                self.outbuf.clear()  # it died; the reaper will tell
                return
            del self.outbuf[:written]

    def read(self) -> list[Any]:
        """Every complete message available now; sets `eof` when the pipe closed."""
        messages: list[Any] = []
        while True:
            try:
                data = os.read(self.from_fd, 1 << 16)
            except BlockingIOError:
                return messages
            if not data:
                self.eof = True
                return messages
            messages.extend(self.reader.feed(data))

    def enforce(self, mono: float, grace: float) -> None:
        """SIGKILL the group once its kill order's grace is over; SIGTERM it when the
        job at its head has run past its timeout (and give it `grace` to go)."""
        if self.kill is not None:
            if mono >= self.kill.kill_at:
                self.signal_group(signal.SIGKILL)
            return
        head = self.head
        if head is not None and head.timeout and mono - self.head_since >= head.timeout:
            self.kill = KillOrder("timeout", head.id, mono + grace, format_duration(head.timeout))
            self.signal_group(signal.SIGTERM)
            log.warning(
                "job %d (%s) timed out after %s: SIGTERM to its process group",
                head.id,
                head.label,
                self.kill.detail,
            )

    def signal_group(self, sig: int) -> None:
        """Signal the worker and everything its jobs started: its process group, and the
        processes that left it (a new session): its cgroup, or else its descendants (it
        is a subreaper, so its jobs' orphans stay its descendants while it lives)."""
        if in_cgroup(self.cgroup):
            assert self.cgroup is not None
            if sig == signal.SIGKILL:
                kill_cgroup(self.cgroup)
            else:
                signal_cgroup(self.cgroup, sig)
        elif self.pid > 0:  # the tree first: once the worker is gone, so is the tree
            signal_tree(self.pid, sig, rounds=20 if sig == signal.SIGKILL else 1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def close(self) -> None:
        for fd in (self.to_fd, self.from_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def spawn_worker(
    log_dir: str,
    log_max_bytes: int,
    close_in_child: list[int],
    lease: SharedLease | None = None,
    journal_dir: str | None = None,
    contain: Containment | None = None,
) -> WorkerHandle:
    """Fork one worker. The child leads its own process group and dies with us; it
    checks `lease` and journals to `journal_dir` before each job (worker/starts.py).
    It moves itself into its own cgroup (when `contain` has one) before it reads its
    first job: the move can take milliseconds (an RCU grace period), which the loop
    does not wait for."""
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child
        cgroup = contain.worker_cgroup(os.getpid()) if contain is not None else None
        if cgroup is not None and (problem := enter_cgroup(cgroup)) is not None:
            os.write(
                2, f"jobrunner worker {os.getpid()}: {problem}; its jobs run without\n".encode()
            )
        os.close(to_w)
        os.close(from_r)
        for fd in close_in_child:
            with contextlib.suppress(OSError):
                os.close(fd)
        worker_main(to_r, from_w, log_dir, log_max_bytes, parent, lease, journal_dir)
    os.close(to_r)
    os.close(from_w)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.setpgid(pid, pid)  # also done by the child; whichever runs first wins the race
    os.set_blocking(to_w, False)
    os.set_blocking(from_r, False)
    cgroup = contain.worker_cgroup(pid) if contain is not None else None
    return WorkerHandle(pid=pid, to_fd=to_w, from_fd=from_r, cgroup=cgroup)


def job_spec(job: Job) -> JobSpec:
    return JobSpec(
        id=job.id,
        attempt=job.attempts,
        task=job.task,
        command=job.command,
        args=job.args,
        kwargs=job.kwargs,
        options=job.options,
        queue=job.queue,
    )


def describe_exit(status: int) -> str:
    """A worker's wait status in words, with the signal's name."""
    return describe_status(status, "worker")


def preload(config: Config) -> None:
    """Make the config's folder and the daemon's importable and import `imports` once,
    before forking, so every worker shares them. A failing import is a config error."""
    folders = import_folders(config)
    sys.path[:0] = folders
    for module in config.imports:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is a config error
            where = ""
            if isinstance(exc, ModuleNotFoundError):
                where = f" (looked in {', '.join(folders)} and sys.path)"
            raise ConfigError(
                f"{config.path or 'config'}: imports: cannot import {module!r}: "
                f"{type(exc).__name__}: {exc}{where}"
            ) from None
