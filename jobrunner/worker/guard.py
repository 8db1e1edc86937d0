"""The group guard: kills the workers' processes when the supervisor dies.

PR_SET_PDEATHSIG takes a worker down with its daemon, but not the processes a job
started (`sh -c 'sleep 999 &'`): they would live on while another daemon rescues and
reruns the job. The guard is a tiny process in a session of its own (so a signal to
the daemon's group, or Ctrl-C, does not reach it) that holds the read end of a pipe
from the supervisor. The supervisor tells it each worker's group as it forks one and
forgets the group once it has killed what was left in it. When the supervisor dies,
however it dies, the pipe reads EOF and the guard SIGKILLs every group it still knows
and, when the daemon has a cgroup, everything in it (whatever session a job's process
started), then removes the daemon's cgroups. The guard itself is not in that cgroup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from jobrunner.worker.containment import kill_cgroup, remove_cgroup

# After killing the daemon's cgroup, how long the guard waits for its processes to be
# reaped (by init: the supervisor is gone) so that it can remove it: 200 x 10 ms.
REMOVE_TRIES = 200
REMOVE_PAUSE = 0.01


class GroupGuard:
    def __init__(
        self, close_in_child: list[int], groups: set[int] | None = None, cgroup: str | None = None
    ) -> None:
        read_fd, self.fd = os.pipe()
        self.groups: set[int] = set(groups or ())
        self.cgroup = cgroup
        pid = os.fork()
        if pid == 0:  # the guard
            os.close(self.fd)
            for fd in close_in_child:
                with contextlib.suppress(OSError):
                    os.close(fd)
            code = 0
            try:
                _guard_main(read_fd, self.groups, cgroup)
            except BaseException:  # noqa: BLE001 - never return into the daemon's code
                code = 70
            os._exit(code)
        os.close(read_fd)
        self.pid = pid

    def add(self, pgid: int) -> None:
        self.groups.add(pgid)
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self.groups.discard(pgid)
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        with contextlib.suppress(BrokenPipeError):  # it died: the reaper respawns it
            os.write(self.fd, line.encode())

    def close(self) -> None:
        """Let it kill what is left in the known groups and the cgroup, then reap it.
        Meanwhile reap the processes it kills that we adopted (we are a subreaper), so
        that the cgroup empties and it can remove it."""
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, 0)[0] != self.pid:
                pass


def _guard_main(read_fd: int, groups: set[int], cgroup: str | None) -> None:
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    pending = b""
    while True:
        data = os.read(read_fd, 4096)
        if not data:
            break
        pending += data
        *lines, rest = pending.split(b"\n")
        pending = rest
        for line in lines:
            if line.startswith(b"+"):
                groups.add(int(line[1:]))
            elif line.startswith(b"-"):
                groups.discard(int(line[1:]))
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    if cgroup is not None:
        kill_cgroup(cgroup)
        for _ in range(REMOVE_TRIES):  # bounded: the next daemon's sweep removes the rest
            if remove_cgroup(cgroup):
                break
            time.sleep(REMOVE_PAUSE)
