"""Messages between the supervisor and its workers: length-prefixed pickles on pipes.

Supervisor -> worker:  ("run", epoch, [JobSpec, ...])  jobs to run in order, sent in the
                                                      lease's epoch (worker/starts.py)
                       ("skip", job_id, attempt)     drop that job if it has not started
Worker -> supervisor:  JobDone                       one per job run
                       ("skipped", job_id, attempt)  the job was dropped unstarted
                       ("stale", job_id, attempt)    not started: the lease had run out
                       ("progress", job_id, attempt, fraction, message)
Closing the supervisor's end tells the worker to exit once its current job is done.
"""

from __future__ import annotations

import operator
import os
import pickle
import signal
import struct
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_HEADER = struct.Struct("!I")


def _pickled_as_tuple(cls: type[T]) -> type[T]:
    """Pickle as (class, field values): half the cost of a slotted dataclass's default
    reduce, paid by the supervisor for every job it sends and every result it reads."""
    fields = operator.attrgetter(*cls.__match_args__)  # type: ignore[attr-defined]

    def __reduce__(self: T) -> tuple[type[T], tuple[Any, ...]]:
        return cls, fields(self)

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls


@_pickled_as_tuple
@dataclass(slots=True)
class JobSpec:
    """What a worker needs to run one attempt; no database handle."""

    id: int
    attempt: int
    task: str | None
    command: list[str] | None
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    queue: str


@_pickled_as_tuple
@dataclass(slots=True)
class JobDone:
    id: int
    attempt: int
    ok: bool
    result: str | None  # the return value as JSON text when ok (child.result_json)
    error: str | None
    traceback: str | None
    started_at: float
    finished_at: float
    retryable: bool = True
    cpu_seconds: float | None = None
    max_rss_kb: int | None = None
    exit_code: int | None = None  # a command's exit status
    signal: int | None = None  # the signal that ended the job's process
    cause: str | None = None  # "oom" or "cpu_limit" when a limit ended it
    note: str | None = None  # output trouble for the daemon's log: bytes dropped, a log not kept


def signal_name(number: int) -> str:
    """SIGKILL for 9; `signal N` for a number with no name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_status(status: int, who: str) -> str:
    """A wait status in words: `worker killed by signal 9 (SIGKILL)`."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"{who} killed by signal {number} ({signal_name(number)})"
    if os.WIFEXITED(status):
        return f"{who} exited with status {os.WEXITSTATUS(status)}"
    return f"{who} ended with wait status {status}"


def encode(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Reassembles frames from a byte stream read in arbitrary pieces."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self.buf += data
        out = []
        view = self.buf
        pos = 0
        while len(view) - pos >= 4:
            (size,) = _HEADER.unpack_from(view, pos)
            if len(view) - pos - 4 < size:
                break
            out.append(pickle.loads(view[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        if pos:
            del self.buf[:pos]
        return out


def write_all(fd: int, data: bytes) -> None:
    """Blocking write of all of `data` (the worker's side)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
