"""Sleeping until something is committed to an SQLite database.

A reader of the event feed (`wait`, `events --follow`, `logs --follow`) must wake when a
writer commits, in another process, and cost nothing meanwhile. Every commit in WAL mode
appends frames to the `-wal` file, so the reader watches that file with inotify and
sleeps in `select` until the kernel reports a write (docs/architecture.md, "Events").

A write to the log comes a little before the commit is visible: the writer syncs the log
and only then publishes the new frames in the shared index (`-shm`, a memory map, which
inotify does not see). So a wake-up is confirmed with `PRAGMA data_version` (cheap: it
reads the shared index), rechecked after short growing pauses until it moves, for up to
SETTLE seconds. A reader also looks at least every FALLBACK seconds, and that is all it
does where inotify is not available: later, never wrong.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import struct
import time
from collections.abc import Callable

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
FALLBACK = 1.0  # seconds between looks when nothing can tell us of a write
SETTLE = 0.25  # seconds a write may take to become a visible commit (the log's fsync)

_libc = None
with contextlib.suppress(OSError):
    _libc = ctypes.CDLL(None, use_errno=True)


class Watch:
    """Wakes when one of `paths` (files, or folders: a file in them) is written, and,
    given `version` (the connection's data_version), once that write is committed."""

    def __init__(self, paths: list[str], version: Callable[[], int] | None = None) -> None:
        self.version = version
        self.seen = version() if version is not None else 0
        self.fd = -1
        if _libc is None or not hasattr(_libc, "inotify_init1"):
            return
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            return
        mask = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO
        self.wds = [_libc.inotify_add_watch(fd, os.fsencode(path), mask) for path in paths]
        if any(wd >= 0 for wd in self.wds):
            self.fd = fd
        else:
            os.close(fd)

    def wait(self, timeout: float | None) -> None:
        """Sleep until something is committed (or a watched path is written), at most
        `timeout` and FALLBACK seconds; a commit since the last wait returns at once."""
        limit = FALLBACK if timeout is None else min(FALLBACK, timeout)
        if self._committed():
            return
        if self.fd < 0:
            select.select([], [], [], limit)
            return
        ready, _, _ = select.select([self.fd], [], [], limit)
        if not ready:
            return
        if self._drain() or self.version is None:
            return  # a path other than the database's log was written: nothing to confirm
        pause, waited = 0.001, 0.0
        while not self._committed() and waited < SETTLE:  # written, not yet visible
            time.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.002)  # the log's fsync: a reader wakes within 2 ms of it

    def _committed(self) -> bool:
        """Whether another connection committed since we last looked."""
        if self.version is None:
            return False
        now = self.version()
        if now == self.seen:
            return False
        self.seen = now
        return True

    def _drain(self) -> bool:
        """Read the pending notifications; True when one is of a path other than the
        first (the database's write-ahead log)."""
        other = False
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self.fd, 1 << 16):
                pos = 0
                while pos + _EVENT.size <= len(data):
                    wd, _mask, _cookie, size = _EVENT.unpack_from(data, pos)
                    other |= wd != self.wds[0]
                    pos += _EVENT.size + size
        return other

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
