"""The config's [[schedules]] entries, read into ScheduleConfig (config.py reads the
rest of the file; jobrunner/cron.py and daemon/scheduler.py act on them)."""

from __future__ import annotations

from jobrunner.config_reader import TASK_NAME, Reader
from jobrunner.record import Record, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MISFIRE_POLICIES = ("skip", "once", "all")
OVERLAP_POLICIES = ("skip", "allow")


class ScheduleConfig(Record):
    """One [[schedules]] entry; `cron` or `every`, `task` or `command`."""

    name: str
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    task: str | None = None
    command: list[str] | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    retries: int | None = None
    backoff: float | None = None
    timeout: float | None = None
    misfire: str = "once"
    max_catchup: int = 100
    misfire_grace: float = 60.0
    overlap: str = "skip"
    jitter: float = 0.0

    @property
    def expression(self) -> str:
        return self.cron if self.cron is not None else f"every {self.every:g}s"


SCHEDULE_KEYS = {
    "name",
    "cron",
    "every",
    "timezone",
    "task",
    "command",
    "args",
    "kwargs",
    "queue",
    "priority",
    "retries",
    "backoff",
    "timeout",
    "misfire",
    "max_catchup",
    "misfire_grace",
    "overlap",
    "jitter",
}


def parse_schedule(r: Reader, index: int, entry: Any) -> ScheduleConfig:
    table = f"schedules[{index}]"
    if not isinstance(entry, dict):
        raise r.fail("", "schedules", "expected [[schedules]] tables")
    r.unknown_keys(table, entry, SCHEDULE_KEYS)
    name = entry.get("name")
    if not isinstance(name, str) or not TASK_NAME.match(name):
        raise r.fail(
            table,
            "name" if "name" in entry else None,
            "every schedule needs a name of letters, digits, '_' and '-'",
        )
    sc = ScheduleConfig(name=name)
    sc.timezone = r.string(table, entry, "timezone", "UTC")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(sc.timezone)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise r.fail(
            table,
            "timezone",
            f"unknown timezone {sc.timezone!r} (use an IANA name like Europe/Berlin)",
        ) from None
    if ("cron" in entry) == ("every" in entry):
        raise r.fail(table, None, f"schedule {name!r}: set exactly one of 'cron' or 'every'")
    if "cron" in entry:
        sc.cron = r.string(table, entry, "cron", None)
        from jobrunner.cron import CronSpec

        try:
            CronSpec(sc.cron or "", sc.timezone)
        except ValueError as exc:
            raise r.fail(table, "cron", str(exc)) from None
    else:
        sc.every = r.duration(table, entry, "every", None)
        if not sc.every or sc.every < 1:
            raise r.fail(table, "every", "must be at least 1s")
    sc.task = r.string(table, entry, "task", None)
    sc.command = r.string_list(table, entry, "command")
    if (sc.task is None) == (sc.command is None):
        raise r.fail(table, None, f"schedule {name!r}: set exactly one of 'task' or 'command'")
    if sc.command is not None and not sc.command:
        raise r.fail(table, "command", "must name a program")
    args = entry.get("args", [])
    if not isinstance(args, list):
        raise r.fail(table, "args", "expected an array")
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise r.fail(table, "kwargs", "expected a table")
    for key, value in (("args", args), ("kwargs", kwargs)):
        if problem := _json_problem(value):
            raise r.fail(table, key, problem)
    sc.args, sc.kwargs = list(args), dict(kwargs)
    sc.queue = r.string(table, entry, "queue", None)
    if "priority" in entry:
        sc.priority = r.integer(table, entry, "priority", 0, -(2**31))
    if "retries" in entry:
        sc.retries = r.integer(table, entry, "retries", 0, 0)
    sc.backoff = r.duration(table, entry, "backoff", None)
    sc.timeout = r.duration(table, entry, "timeout", None)
    sc.misfire = r.string(table, entry, "misfire", "once")
    if sc.misfire not in MISFIRE_POLICIES:
        raise r.fail(
            table, "misfire", f"must be one of {', '.join(MISFIRE_POLICIES)}, got {sc.misfire!r}"
        )
    sc.max_catchup = r.integer(table, entry, "max_catchup", 100, 1)
    sc.misfire_grace = r.duration(table, entry, "misfire_grace", 60.0)
    sc.overlap = r.string(table, entry, "overlap", "skip")
    if sc.overlap not in OVERLAP_POLICIES:
        raise r.fail(
            table, "overlap", f"must be one of {', '.join(OVERLAP_POLICIES)}, got {sc.overlap!r}"
        )
    sc.jitter = r.duration(table, entry, "jitter", 0.0)
    return sc


def _json_problem(value: object) -> str | None:
    """Why a schedule's args or kwargs cannot be a job's (a TOML date is not JSON; see
    jsonutil for the depth bound), or None."""
    from jobrunner.jsonutil import depth_error, dumps

    try:
        return depth_error(dumps(value))
    except (TypeError, ValueError, RecursionError) as exc:
        return f"not JSON-serializable: {exc}"
