"""The daemon's helper processes: the HTTP server (`jobrunner serve`, with an [http]
table; docs/http.md) and the webhook dispatcher (`jobrunner webhooks dispatch`, with
a [webhooks] table; docs/webhooks.md), each run with the daemon's database and config.

Separate processes, so nothing of the ASGI stack or the HTTP client is loaded into the
supervisor or its workers, and a helper that dies takes no claim with it. The
supervisor's loop owns them: `start` once the daemon is ready, `exited` when the
supervisor reaps one (the restart is due after a backoff), `tick` restarts it when due,
`stop` at the daemon's shutdown. Their output (stdout and stderr) comes back through a
pipe the loop polls, and goes to the daemon's log a line at a time. Nothing here blocks
the loop but `stop`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys

from jobrunner.store import absolute

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from jobrunner.config import Config

log = logging.getLogger("jobrunner.daemon")

RESTART_FIRST = 1.0  # seconds before the first restart, doubling up to RESTART_MAX
RESTART_MAX = 30.0
HEALTHY_AFTER = 30.0  # a server that ran this long restarts after RESTART_FIRST again
STOP_GRACE = 8.0  # SIGTERM, then SIGKILL (the HTTP server itself drains for 5 s)
MAX_LINE = 4096  # bytes of one output line kept for the log


def jobrunner_command() -> list[str]:
    """How to run this jobrunner again: the interpreter with `-m jobrunner`, or in the
    single-file build (`make dist`: a frozen bundle) the bundle's own executable."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "jobrunner"]


class Child:
    """One helper process: `name` in the log ("HTTP server"), `tag` before its output's
    lines ("http"), `command` the jobrunner subcommand it runs."""

    def __init__(
        self,
        name: str,
        tag: str,
        command: list[str],
        db_path: str,
        config_file: str | None,
        poller: select.poll,
    ) -> None:
        self.name, self.tag = name, tag
        # a file by its absolute path (the child may start elsewhere); a URL as it is
        self.argv = [*jobrunner_command(), "--db", absolute(db_path)]
        if config_file is not None:
            self.argv += ["--config", os.path.abspath(config_file)]
        self.argv += command
        self.pid: int | None = None
        self.fd: int | None = None  # the read end of its output, while it runs
        self.restart_at: float | None = None
        self.started_at = 0.0
        self.delay = RESTART_FIRST
        self._partial = b""
        self.poller = poller  # the supervisor's: the output's fd is registered there
        self.on_fork = die_with_parent()

    def start(self, mono: float) -> None:
        """Start it (a session of its own: a Ctrl-C at the daemon's terminal is the
        daemon's to handle, and it stops its children)."""
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=write_end,
                start_new_session=True,
                preexec_fn=self.on_fork,  # noqa: PLW1509 - the supervisor has no threads
            )
        except OSError as exc:
            os.close(read_end)
            log.error("cannot start the %s: %s", self.name, exc)
            self._schedule_restart(mono)
            return
        finally:
            os.close(write_end)
        # The supervisor reaps it with os.wait4 (SIGCHLD); Popen must not reap it too.
        proc.returncode = 0
        os.set_blocking(read_end, False)
        self.pid, self.fd = proc.pid, read_end
        self.poller.register(read_end, select.POLLIN)
        self.started_at = mono
        self.restart_at = None
        log.info("%s started (pid %d)", self.name, proc.pid)

    def read(self) -> None:
        """Its output so far, to the log a line at a time; at EOF the fd is closed."""
        if self.fd is None:
            return
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self._close_output()
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[-MAX_LINE:]
        for line in lines:
            self._log_line(line)

    def _log_line(self, line: bytes) -> None:
        text = line[:MAX_LINE].decode(errors="replace").rstrip()
        if text:
            log.info("%s: %s", self.tag, text)

    def _close_output(self) -> None:
        if self.fd is not None:
            self.poller.unregister(self.fd)  # before the number can be reused
            os.close(self.fd)
            self.fd = None
        if self._partial:
            self._log_line(self._partial)
            self._partial = b""

    def exited(self, how: str, mono: float, stopping: bool) -> None:
        """The supervisor reaped it: restart after the backoff, unless the daemon stops."""
        self.pid = None
        if stopping:
            return
        if mono - self.started_at >= HEALTHY_AFTER:
            self.delay = RESTART_FIRST
        log.warning("%s %s; restarting in %gs", self.name, how, self.delay)
        self._schedule_restart(mono)

    def _schedule_restart(self, mono: float) -> None:
        self.restart_at = mono + self.delay
        self.delay = min(self.delay * 2, RESTART_MAX)

    def tick(self, mono: float) -> None:
        """Restart it if that is due."""
        if self.pid is not None or self.restart_at is None or mono < self.restart_at:
            return
        if self.fd is not None:  # what the old one wrote last
            with contextlib.suppress(OSError):
                self.read()
            self._close_output()
        self.start(mono)

    def stop(self) -> None:
        """SIGTERM, wait for it (SIGKILL after STOP_GRACE); at the daemon's shutdown."""
        self.restart_at = None
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _reaped_within(pid, STOP_GRACE):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            self.pid = None
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.read()
            self._close_output()


def die_with_parent() -> Callable[[], None] | None:
    """What the forked child runs before exec so that it gets SIGTERM when the daemon
    dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG; elsewhere nothing): a server left
    behind would hold the port the next daemon's server needs, a dispatcher would go on
    sending for a daemon that is gone."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def on_fork() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before the prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return on_fork


PR_SET_PDEATHSIG = 1


def _reaped_within(pid: int, seconds: float) -> bool:
    """Wait up to `seconds` for child `pid` to exit, and reap it. (A blocking wait: used
    only at shutdown, when the loop has stopped.)"""
    import time

    for _ in range(int(seconds / 0.05)):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped already
            return True
        if done:
            return True
        time.sleep(0.05)
    return False


def helpers_for(
    config: Config, db_path: str, config_file: str | None, poller: select.poll
) -> list[Child]:
    """The helper processes the config asks for."""
    children = []
    if config.http is not None:
        children.append(Child("HTTP server", "http", ["serve"], db_path, config_file, poller))
    if config.webhooks is not None:
        children.append(
            Child(
                "webhook dispatcher",
                "webhooks",
                ["webhooks", "dispatch"],
                db_path,
                config_file,
                poller,
            )
        )
    return children
