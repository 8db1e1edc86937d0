"""systemd's readiness protocol (sd_notify), spoken by the daemon when systemd asks for it.

Under `Type=notify` systemd passes a datagram socket in NOTIFY_SOCKET (a path, or an
abstract name written with a leading `@`) and waits for `READY=1` before it counts the
service as started; `STOPPING=1` says a drain has begun, `STATUS=` is a line for
`systemctl status`, and `WATCHDOG=1` pets the watchdog when WatchdogSec= is set. Without
NOTIFY_SOCKET every call is a no-op, so the daemon speaks it unconditionally. The
variable is taken out of the environment at once: workers and jobs inherit the
environment, and a job that spoke to systemd would be speaking for the daemon.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", "")
        watchdog_usec = env.pop("WATCHDOG_USEC", "")
        watchdog_pid = env.pop("WATCHDOG_PID", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None
        # The watchdog's period, when it is ours (WATCHDOG_PID names this process, or none)
        self.watchdog: float | None = None
        if watchdog_usec.isdigit() and watchdog_pid in ("", str(os.getpid())):
            self.watchdog = int(watchdog_usec) / 1e6
        self.next_pet = 0.0  # monotonic time of the next WATCHDOG=1

    def pet(self, mono: float) -> None:
        """The daemon's loop came round: tell the watchdog, twice a period (as systemd
        asks), when WatchdogSec= is set."""
        if self.watchdog is not None and mono >= self.next_pet:
            self.send("WATCHDOG=1")
            self.next_pet = mono + self.watchdog / 2

    def send(self, *fields: str) -> None:
        """Send `KEY=value` lines in one datagram; a socket gone is not the daemon's
        problem (systemd restarting) and is ignored."""
        if self.address is None:
            return
        message = "\n".join(fields).encode("utf-8", "replace")
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock,
        ):
            sock.connect(self.address)
            sock.sendall(message)
