"""Durations and times as users write them: `250ms`, `30s`, `5m`, `2h`, `7d`, `1h30m`, or
bare seconds; `--at` times: ISO 8601, `09:00`, `tomorrow 09:00`."""

from __future__ import annotations

import math
import re

from jobrunner.errors import UsageError

# Beyond these a value is a typo, and a hazard: times past year 9999 cannot be shown,
# and rlimits and SQLite integers overflow.
MAX_DURATION = 36500 * 86400.0  # 100 years
MAX_SIZE = 1 << 60  # 1 EiB

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
_PATTERN = re.compile(rf"^\s*({_NUMBER})\s*(ms|s|m|h|d)?\s*$")
# `1h30m`, `2d 12h`, `1m30.5s`: two or more parts, largest unit first, each unit once
_COMPOUND = re.compile(rf"^\s*(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*){{2,5}}$")
_PART = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)")
_HINT = "use e.g. 250ms, 30s, 5m, 2h, 7d, 1h30m or seconds"


def parse_duration(text: str | int | float, where: str = "duration") -> float:
    """Seconds in `text`; raises UsageError naming `where` on anything else."""
    # not a string or a number (a JSON line's list or null, a TOML table): a usage error,
    # not a TypeError from the regex
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise UsageError(f"{where}: expected a duration like 30s, 5m, 2h, got {text!r}")
    if isinstance(text, int | float):
        try:
            value = float(text)
        except OverflowError:  # an int beyond any float, e.g. from JSON
            value = math.inf
    elif match := _PATTERN.match(text):
        value = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    elif _COMPOUND.match(text):
        parts = _PART.findall(text)
        units = [unit for _, unit in parts]
        if units != sorted(set(units), key=lambda unit: -_UNITS[unit]):
            raise UsageError(
                f"{where}: {text!r} is not a duration (in 1h30m each unit comes once, "
                "the largest first)"
            )
        value = sum(float(number) * _UNITS[unit] for number, unit in parts)
    else:
        raise UsageError(f"{where}: {text!r} is not a duration ({_HINT})")
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{where}: {text!r} must be a finite, non-negative duration")
    if value > MAX_DURATION:
        raise UsageError(f"{where}: {text!r} is too long (at most 36500d)")
    return value


_CLOCK_TIME = re.compile(
    r"^\s*(?:(today|tomorrow)\s+)?(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$", re.IGNORECASE
)


def parse_time(text: str, now: float, where: str = "--at") -> float:
    """The instant `text` names, read as `at(1)` reads it: ISO 8601 (without an offset,
    local time); `HH:MM[:SS]`, the next time the local clock shows it (today, or tomorrow
    once it has passed); `today HH:MM`, `tomorrow HH:MM`. `now` is the time it is read at."""
    import datetime as dt

    clock_time = _CLOCK_TIME.match(text)
    try:
        if clock_time:
            day, hour, minute, second = clock_time.groups()
            today = dt.datetime.fromtimestamp(now).date()  # local
            start = today + dt.timedelta(days=1 if (day or "").lower() == "tomorrow" else 0)
            moment = dt.time(int(hour), int(minute), int(second or 0))
            when = dt.datetime.combine(start, moment).astimezone()
            if day is None and when.timestamp() <= now:  # passed today: tomorrow's
                when = dt.datetime.combine(today + dt.timedelta(days=1), moment).astimezone()
        else:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{where}: {text!r} is not a time (use ISO 8601, HH:MM or tomorrow HH:MM)"
        ) from None
    try:
        if when.tzinfo is None:
            when = when.astimezone()  # local time, as `at` reads it
        ts = when.timestamp()
        when.astimezone(dt.UTC)  # shown in UTC: must stay within years 1..9999 there
    except (OverflowError, ValueError):
        raise UsageError(f"{where}: {text!r} is out of range (years 1 to 9999 in UTC)") from None
    return ts


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int, where: str = "size") -> int:
    """Bytes in `text`: `512MB`, `2GiB`, `800k`, or a bare number of bytes."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise UsageError(f"{where}: expected a size like 512MB, got {text!r}")
    if isinstance(text, int):
        value = float(min(text, 2 * MAX_SIZE))  # no OverflowError for a huge JSON int
    else:
        match = _SIZE.match(text)
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _SIZE_UNITS:
            raise UsageError(f"{where}: {text!r} is not a size (use e.g. 512MB, 2GiB, 800kB)")
        value = float(match.group(1)) * _SIZE_UNITS[unit]
    if not math.isfinite(value) or value > MAX_SIZE:
        raise UsageError(f"{where}: {text!r} is too large (at most 1EiB)")
    if value < 4096:
        raise UsageError(f"{where}: {text!r} is too small (at least 4kB)")
    return int(value)


def format_duration(seconds: float) -> str:
    """A short human form: 850ms, 12.3s, 4m05s, 2h10m, 3d04h."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 86400)}d{int(seconds % 86400 // 3600):02d}h"
