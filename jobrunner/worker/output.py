"""A job's output when its disk cannot take it: dropped and counted, never an error.

The rule: output that cannot be written is dropped, with a marker in the job's log
where space allows and a warning in the daemon's log (JobDone.note); the job's own
outcome stands. A worker never dies, and a Python job's print() never raises,
because the log's file system is full (ENOSPC), over quota (EDQUOT), over the file
size limit (EFBIG), or failing (EIO, EROFS once it was remounted read-only after
errors): the output is lost either way, and failing or re-running a job that did
its work would not bring it back, on a device that would likely fail it again.
Other errors (EBADF: a job that closed its own stdout) are bugs and still raise.

Every write of a job's output in a worker goes through `write_output`: the worker's
sys.stdout and sys.stderr (`install_std_streams`), a command's stdout and stderr as
the worker pumps them (usage.ProgressLines), and attempt headers. Writes that other
processes make straight to the log (a Python job's subprocesses) are theirs.
"""

from __future__ import annotations

import errno
import io
import os
import select
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from _typeshed import ReadableBuffer

# a write failing with one of these drops the output instead of raising
DROPPED_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})
NEWLINE = 10


class Tally:
    """What the running job's output lost: this process runs one job at a time.

    `unmarked` counts the dropped bytes no marker in the log mentions yet: the next
    write that gets through writes one first, so the marker sits where the gap is."""

    __slots__ = ("dropped", "unmarked", "reason", "at_line_start", "no_log")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.dropped = 0
        self.unmarked = 0
        self.reason: str | None = None
        self.at_line_start = True
        self.no_log: str | None = None  # why the job has no log at all: all output dropped

    def drop(self, size: int, reason: str) -> None:
        self.dropped += size
        self.unmarked += size
        if self.reason is None:
            self.reason = reason

    def state(self) -> tuple[int, int, str | None, bool, str | None]:
        return (self.dropped, self.unmarked, self.reason, self.at_line_start, self.no_log)

    def restore(self, state: tuple[int, int, str | None, bool, str | None]) -> None:
        """Take over the state a job's own process (forked for its limits) ended with."""
        self.dropped, self.unmarked, self.reason, self.at_line_start, self.no_log = state

    def describe(self) -> str | None:
        """The warning for the daemon's log, if any output was lost."""
        if not self.dropped:
            return None
        if self.no_log is not None:
            return f"{self.dropped} bytes of output dropped: no log ({self.no_log})"
        return f"{self.dropped} bytes of output dropped: {self.reason}"


tally = Tally()


def write_output(fd: int, data: ReadableBuffer) -> None:
    """Write all of `data` to the job's log `fd`. What the disk refuses is dropped and
    counted in `tally`, never raised; a marker follows once writes get through again."""
    view = memoryview(data).cast("B")
    if tally.no_log is not None:
        tally.drop(len(view), tally.no_log)
        return
    if tally.unmarked and view:
        _write_marker(fd)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:  # a non-blocking fd (a worker's own stdout): wait for room
            select.select([], [fd], [])
            continue
        except OSError as exc:
            if exc.errno not in DROPPED_ERRNOS:
                raise
            tally.drop(len(view), exc.strerror or str(exc))
            return
        if not written:  # no progress and no error: do not spin
            tally.drop(len(view), "the write made no progress")
            return
        tally.at_line_start = view[written - 1] == NEWLINE
        view = view[written:]


def finish_output(fd: int) -> None:
    """At the end of a job: the marker for output dropped since the last one, if the
    disk takes it now (best effort; the daemon's log has the warning either way)."""
    if tally.unmarked and tally.no_log is None:
        _write_marker(fd)


def _write_marker(fd: int) -> None:
    text = f"[jobrunner: {tally.unmarked} bytes of output dropped: {tally.reason}]\n"
    data = (text if tally.at_line_start else "\n" + text).encode()
    try:
        written = os.write(fd, data)
    except OSError:
        return  # still no room: the bytes stay unmarked
    if written:
        tally.at_line_start = data[written - 1] == NEWLINE
    if written == len(data):
        tally.unmarked = 0


class _DroppingWriter(io.RawIOBase):
    """The raw layer under the worker's sys.stdout and sys.stderr: whatever fd 1 or 2
    is at the time (the job's log while a job runs), through `write_output`."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        try:
            return os.isatty(self._fd)
        except OSError:
            return False

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data)
        write_output(self._fd, view)
        return view.nbytes


_replaced: list[object] = []


def install_std_streams() -> None:
    """Give this process (a worker, just forked) a sys.stdout and sys.stderr whose
    writes never raise because the job's log cannot take them, with the encoding and
    buffering of the ones they replace. Those are kept, unflushed and never freed:
    what their buffers held at the fork is the daemon's to write, not this process's."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name)
        _replaced.append(old)
        binary: Any = _DroppingWriter(fd)
        if isinstance(getattr(old, "buffer", None), io.BufferedWriter):  # else python -u
            binary = io.BufferedWriter(binary)
        stream = io.TextIOWrapper(
            binary,
            encoding=getattr(old, "encoding", None) or "utf-8",
            errors=getattr(old, "errors", None) or "backslashreplace",
            line_buffering=bool(getattr(old, "line_buffering", name == "stderr")),
            write_through=bool(getattr(old, "write_through", False)),
        )
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
