"""A submit's arguments checked and converted before anything is written, for the
Python clients (client.py, and client_http.py over HTTP): durations, times and sizes
given as numbers or text, JSON that every reader can take, bounds far from what
overflows, a callback that can be signed, and a call that fits its function. Each
problem is a UsageError (or TaskCheckFailed) naming the argument."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jobrunner.durations import MAX_DURATION, MAX_SIZE
from jobrunner.errors import UsageError
from jobrunner.jsonutil import depth_error, dumps
from jobrunner.models import JobInsert
from jobrunner.taskref import TaskCheckFailed, check_task

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    import datetime
    from typing import Any

    from jobrunner.config import Config

    Duration = float | str | datetime.timedelta
    When = float | str | datetime.datetime

# how the Python API says to skip the task check (the CLI says --no-check)
CHECK_HINT = "check=False submits it for a daemon with another environment"


def check_json(name: str, value: Any) -> None:
    encode_json(name, value)


def encode_json(name: str, value: Any) -> str:
    """`value` as the JSON text stored, or a UsageError: not JSON, not valid Unicode, or
    nested deeper than every reader can take (jsonutil.MAX_DEPTH)."""
    try:
        text = dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise UsageError(f"{name}: not JSON-serializable: {exc}") from None
    check_text(name, text)
    problem = depth_error(text)
    if problem is not None:
        raise UsageError(f"{name}: {problem}")
    return text


def check_callback(url: object, config: Config) -> None:
    """A callback is signed with the [webhooks] secret: without one it could not be
    sent, so it is refused here rather than lost later."""
    from jobrunner.webhooks.settings import url_problem

    problem = url_problem(url)
    if problem:
        raise UsageError(f"callback: {problem}")
    if config.webhooks is None:
        where = f" ({config.path})" if config.path else ""
        raise UsageError(
            f"callback: the config{where} has no [webhooks] table with a secret to sign it"
        )
    if not config.webhooks.allow_private:
        # A literal address is known now: refuse it here rather than at delivery. (A
        # name is judged at each attempt, by what it resolves to then.)
        from jobrunner.webhooks.guard import literal_reason

        why = literal_reason(str(url))
        if why:
            raise UsageError(f"callback: {why}; [webhooks] allow_private = true allows it")


def check_text(name: str, text: str) -> None:
    """Text is stored as UTF-8: a lone surrogate (what Python makes of invalid UTF-8 in
    argv, or a JSON escape like \\ud800) cannot be, and would fail mid-insert."""
    if text.isascii():  # the common case, and cheap
        return
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise UsageError(
            f"{name}: not valid Unicode text: lone surrogate {bad!r} (invalid UTF-8 in the input?)"
        ) from None


def seconds(name: str, value: Duration | None) -> float | None:
    """A duration option as seconds: a number, a `timedelta` or text like "10m"."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        from jobrunner.durations import parse_duration

        return parse_duration(value, where=name)
    import datetime as dt

    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raise UsageError(
        f"{name}: expected seconds, a datetime.timedelta or a duration like '5m', got {value!r}"
    )


def timestamp(value: When | None, where: str = "at") -> float | None:
    """`at` as a Unix time: a number, a `datetime` (naive: local time, as `at(1)` reads
    it) or text (ISO 8601, HH:MM, tomorrow HH:MM: durations.parse_time)."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    import datetime as dt

    if isinstance(value, str):  # as the CLI's --at reads it
        from jobrunner import clock
        from jobrunner.durations import parse_time

        return parse_time(value, clock.now(), where)
    if isinstance(value, dt.datetime):
        when = value
    else:
        raise UsageError(
            f"{where}: expected a Unix time, a datetime.datetime or ISO 8601 text, got {value!r}"
        )
    try:
        if when.tzinfo is None:
            when = when.astimezone()  # local time
        ts = when.timestamp()
        when.astimezone(dt.UTC)  # shown in UTC: must stay within years 1..9999 there
    except (OverflowError, ValueError):
        raise UsageError(f"{where}: {value!r} is out of range (years 1 to 9999 in UTC)") from None
    return ts


def size(name: str, value: int | str | None) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        from jobrunner.durations import parse_size

        return parse_size(value, where=name)
    raise UsageError(f"{name}: expected bytes or a size like '512MB', got {value!r}")


def check_signature(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    """TaskCheckFailed when `fn(*args, **kwargs)` does not fit `fn`'s parameters: the
    job would fail every attempt."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (some builtins): let through
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        name = getattr(fn, "__name__", repr(fn))
        raise TaskCheckFailed(f"{name}(): {exc}") from None


def call_check(
    task: str | Callable[..., Any] | None, template: JobInsert, config: Config
) -> Callable[[Sequence[Any]], None] | None:
    """For submit_many: what checks each call's args against the task's parameters."""
    if callable(task):
        fn = task
        return lambda args: check_signature(fn, args, {})
    function = template.task
    if function is None or template.options.get("task_name"):
        return None  # a command, or a [tasks.NAME] (the daemon's config: not checked)

    from jobrunner.config import import_folders

    folders = import_folders(config)

    def fits(args: Sequence[Any]) -> None:
        try:
            check_task(function, args, {}, folders)
        except TaskCheckFailed as exc:
            raise TaskCheckFailed(exc.reason, CHECK_HINT) from None

    return fits


def task_reference(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise UsageError(f"{fn!r}: only module-level functions can be tasks")
    if module == "__main__":
        raise UsageError(
            f"{qualname}: defined in __main__, which a daemon cannot import; move it into a module"
        )
    return f"{module}:{qualname}"


# SQLite stores 64-bit integers; these bounds keep far from that and from datetime's
# year 9999, so an absurd value is a usage error here, not an OverflowError later.
MAX_INT_OPTION = 2**31 - 1
MAX_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z
MIN_TIMESTAMP = -62135596800.0  # 0001-01-01T00:00:00Z


def check_bounds(
    priority: int | None,
    retries: int | None,
    durations: tuple[float | None, ...],
    at: float | None,
    memory_limit: int | None,
) -> None:
    for name, value in (("priority", priority), ("retries", retries)):
        if value is not None and not -MAX_INT_OPTION <= value <= MAX_INT_OPTION:
            raise UsageError(f"{name} must be within +-{MAX_INT_OPTION}, got {value}")
    for duration in durations:
        if duration is not None and not duration <= MAX_DURATION:  # NaN fails too
            raise UsageError(f"durations must be at most 100 years, got {duration}")
    if at is not None and not MIN_TIMESTAMP <= at <= MAX_TIMESTAMP:
        raise UsageError(f"at must be a time between the years 1 and 9999, got {at}")
    if memory_limit is not None and not 0 < memory_limit <= MAX_SIZE:
        raise UsageError(f"memory_limit must be 1 byte to 1EiB, got {memory_limit}")
