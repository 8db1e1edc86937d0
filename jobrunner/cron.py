"""Which fires of a schedule fall in a window of real time, through DST. Pure.

A cron expression names wall-clock times in the schedule's timezone. Wall-clock time
and real time part ways twice a year, so each candidate wall time is mapped to real
instants by these rules (cronie's, made exact):

- An ordinary wall time is one instant.
- A *fixed-time* entry (its minute and hour fields are not wildcards, e.g. `30 2 * * *`)
  that falls in a skipped hour (spring forward) fires once, at the first valid instant
  after it (the end of the gap); in a repeated hour (fall back) it fires once, on the
  first pass.
- A *frequent* entry (`*/15 * * * *`, `0 * * * *`: a wildcard in the minute or hour
  field) fires at every real instant its wall times name: none inside a skipped hour,
  both passes of a repeated hour, never the same instant twice.

`every` schedules are plain real-time intervals aligned to the Unix epoch, so every
daemon and every restart computes the same fire times.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

UTC = dt.UTC
# How far back from the window's start to begin iterating wall times: a fall-back
# transition can put an instant's wall time up to this much before the naive start.
_LOOKBACK = dt.timedelta(hours=3)


class CronSpec:
    """A parsed cron expression in a timezone."""

    __slots__ = ("expr", "tz", "fixed", "has_seconds")

    def __init__(self, expr: str, tz: str = "UTC") -> None:
        fields = expr.split()
        if len(fields) not in (5, 6):
            raise ValueError(
                f"cron {expr!r}: expected 5 fields (minute hour day month weekday), "
                f"or 6 with seconds last; got {len(fields)}"
            )
        try:
            croniter(expr, dt.datetime(2000, 1, 1)).get_next()  # Feb 30th never comes
        except CroniterBadDateError:
            raise ValueError(f"cron {expr!r}: names no date that exists; it never fires") from None
        except (ValueError, KeyError) as exc:
            # croniter quotes the expression raw: a newline in it must not split the error
            raise ValueError(f"cron {expr!r}: {' '.join(str(exc).split())}") from None
        self.expr = expr
        self.tz = ZoneInfo(tz)
        self.has_seconds = len(fields) == 6
        minute, hour = fields[0], fields[1]
        # README: fixed-time = no wildcard, range or step; a list (`30 2,14`) is fixed times
        wild = any(c in minute + hour for c in "*/-") or (
            self.has_seconds and any(c in fields[5] for c in "*/-")
        )
        self.fixed = not wild

    def fires(self, since: float, until: float) -> list[float]:
        """Fire instants (epoch seconds) t with since < t <= until, ascending, unique."""
        if until <= since:
            return []
        # Wall times run up to the lookback behind or ahead of real time across a
        # transition, so scan a little wider and filter on real instants. Away from any
        # transition wall time is real time plus a fixed offset: scan just the window
        # (a per-second cron would otherwise step through 6 hours of seconds each tick).
        margin = _LOOKBACK if _near_transition(since, until, self.tz) else dt.timedelta(0)
        end = _wall(until, self.tz) + margin
        it = croniter(self.expr, _wall(since, self.tz) - margin)
        found: set[float] = set()
        while True:
            wall = it.get_next(dt.datetime)
            if wall > end:
                return sorted(found)
            found.update(t for t in self._instants(wall) if since < t <= until)

    def _instants(self, wall: dt.datetime) -> list[float]:
        first = _instant(wall, self.tz, fold=0)
        second = _instant(wall, self.tz, fold=1)
        if first == second:
            return [first]
        if _wall(first, self.tz) == wall or _wall(second, self.tz) == wall:
            # repeated wall time (fall back): `first` is the first pass
            return [first] if self.fixed else sorted({first, second})
        # skipped wall time (spring forward)
        return (
            [_gap_end(wall, self.tz, min(first, second), max(first, second))] if self.fixed else []
        )

    def next_fires(self, after: float, count: int) -> list[float]:
        """The next `count` fires after `after` (fewer if none within ~3 years)."""
        out: list[float] = []
        window = 60.0
        since = after
        while len(out) < count and since - after < 86400 * 1100:
            out.extend(self.fires(since, since + window))
            since += window
            window = min(window * 4, 86400 * 31)
        return out[:count]


def interval_fires(every: float, since: float, until: float) -> Iterator[float]:
    """Multiples of `every` seconds since the epoch in (since, until]."""
    k = int(since // every) + 1
    while k * every <= until:
        yield k * every
        k += 1


def _near_transition(since: float, until: float, tz: ZoneInfo) -> bool:
    """Whether the UTC offset changes within the lookback of either end of the window.
    (A change further inside it moves wall times by less than their distance from the
    ends, so the window's own wall times still cover them.)"""
    span = _LOOKBACK.total_seconds()
    for edge in (since, until):
        offsets = {_offset(edge + d, tz) for d in (-span, 0.0, span)}
        if len(offsets) > 1:
            return True
    return False


def _offset(ts: float, tz: ZoneInfo) -> dt.timedelta | None:
    return dt.datetime.fromtimestamp(ts, tz).utcoffset()


def _wall(ts: float, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz).replace(tzinfo=None)


def _instant(wall: dt.datetime, tz: ZoneInfo, fold: int) -> float:
    return wall.replace(tzinfo=tz, fold=fold).timestamp()


def _gap_end(wall: dt.datetime, tz: ZoneInfo, low: float, high: float) -> float:
    """The first real instant whose wall time is after the skipped `wall`."""
    lo, hi = low, high  # wall(lo) < wall, wall(hi) > wall
    while hi - lo > 0.5:
        mid = (lo + hi) / 2
        if _wall(mid, tz) > wall:
            hi = mid
        else:
            lo = mid
    return float(round(hi))


def describe_instant(ts: float, tz: str) -> tuple[str, str]:
    """(local ISO time with offset, UTC ISO time) for display."""
    local = dt.datetime.fromtimestamp(ts, ZoneInfo(tz)).isoformat()
    utc = dt.datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    return local, utc
