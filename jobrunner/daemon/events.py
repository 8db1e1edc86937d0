"""The daemon's log: one line per event, as text or JSON lines, written in batches.

Events carry fields (job, attempt, outcome, duration, ...): in JSON as they are (numbers,
booleans, lists of objects); in text as key=value, a list of objects as `7/1,8/1` (each
object's values joined by `/`). At thousands of jobs a
second, a write per line would cost the supervisor a syscall per job, so lines are
buffered and written once per loop iteration. Messages from the `logging` module
(jobrunner.daemon, jobrunner.scheduler) go through the same formatter.
"""

from __future__ import annotations

import logging
import os
import re
import time

from jobrunner import clock
from jobrunner.jsonutil import dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

FORMATS = ("text", "json")


_second_cache: list[Any] = [None, ""]


def _stamp(ts: float) -> str:
    """ISO 8601 UTC to the millisecond; the per-second part is formatted once a second."""
    whole = int(ts)
    if _second_cache[0] != whole:
        _second_cache[0] = whole
        _second_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second_cache[1]}.{int((ts - whole) * 1000):03d}Z"


_needs_quotes = re.compile(r'[\s"=]|^$').search


class EventLog:
    def __init__(self, stream: TextIO, fmt: str = "text", reopen_path: str | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.fd = stream.fileno()
        self.reopen_path = reopen_path  # the file behind `fd`, opened again on reopen()
        self.json = fmt == "json"
        self.lines: list[str] = []
        self.dropped = 0  # lines that could not be written, reported with the next ones
        self.why = ""

    def emit(self, event: str, level: str = "info", ts: float | None = None, **fields: Any) -> None:
        stamp = _stamp(clock.now() if ts is None else ts)
        if self.json:
            record = {"ts": stamp, "level": level, "event": event}
            record.update((k, v) for k, v in fields.items() if v is not None)
            self.lines.append(dumps(record))
            return
        parts = [stamp, level.upper(), event]
        for key, value in fields.items():
            if value is None:
                continue
            kind = type(value)
            if kind is int:
                text = str(value)
            elif kind is float:
                text = f"{value:.6g}"
            elif kind is bool:
                text = "true" if value else "false"
            elif kind is list:  # claimed jobs: [{"id": 7, "attempt": 1}, ...] -> 7/1,...
                text = ",".join("/".join(map(str, item.values())) for item in value)
            else:
                text = str(value)
                if _needs_quotes(text):
                    text = dumps(text)
            parts.append(f"{key}={text}")
        self.lines.append(" ".join(parts))

    def flush(self) -> None:
        if self.lines:
            count = len(self.lines)
            if self.dropped:
                self.lines.insert(0, f"[jobrunner: {self.dropped} log lines dropped: {self.why}]")
            data = ("\n".join(self.lines) + "\n").encode("utf-8", "replace")
            self.lines.clear()
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self.fd, view)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    # The log's disk is full (or gone): the daemon's jobs matter more than
                    # its log. What is lost is counted and said once writes work again.
                    self.dropped += count if len(view) == len(data) else 1
                    self.why = exc.strerror or str(exc)
                    return
                view = view[written:]
            self.dropped = 0

    def reopen(self) -> None:
        """Write to a new file at `reopen_path` from now on (logrotate moved the old one
        away), on the same descriptor: the daemon's stderr."""
        if self.reopen_path is None:
            return
        self.flush()
        try:
            fd = open_log_file(self.reopen_path)
        except OSError as exc:
            self.emit("log", "error", message=f"cannot reopen {self.reopen_path}: {exc.strerror}")
            return
        os.dup2(fd, self.fd)
        os.close(fd)


def open_log_file(path: str) -> int:
    """`path` opened for appending (created 0640), as a descriptor."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)


class EventHandler(logging.Handler):
    """Routes `logging` records into the event log: event "log" with the message."""

    def __init__(self, events: EventLog) -> None:
        super().__init__()
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.events.emit(
                "log", record.levelname.lower(), ts=record.created, message=record.getMessage()
            )
            if record.levelno >= logging.WARNING:
                self.events.flush()  # problems show at once
        except Exception:  # noqa: BLE001 - logging must never take the daemon down
            self.handleError(record)


def install(events: EventLog, level: int = logging.INFO) -> None:
    root = logging.getLogger("jobrunner")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(EventHandler(events))
    root.setLevel(level)
    root.propagate = False
