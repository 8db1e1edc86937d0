"""Which fires of a schedule fall in a window of real time, through DST. Pure.

A cron expression names wall-clock times in the schedule's timezone. Its fields mean
what they mean to cronie (crontab(5)): numbers, names, ranges, steps and lists; 0 and 7
are both Sunday; and when the day-of-month or the weekday field begins with `*` a day
must match both of them, while when both are restricted either suffices. croniter finds
the matching wall times; where it reads an expression otherwise (a range of one value,
`7-7`, is the whole field to croniter; `R` is drawn anew at every evaluation; `H` needs a
hash key) the expression is normalised or refused first.

Wall-clock time and real time part ways twice a year, so each candidate wall time is mapped
to real instants by these rules (cronie's, made exact):

- An ordinary wall time is one instant.
- A *fixed-time* entry (none of its minute, hour and seconds fields begins with `*`, e.g.
  `30 2 * * *` or `30 1-3 * * *`) that falls in a skipped hour (spring forward) fires
  once, at the first valid instant after it (the end of the gap); in a repeated hour
  (fall back) it fires once, on the first pass.
- A *frequent* entry (`*/15 * * * *`, `0 * * * *`: a time field that begins with `*`)
  fires at every real instant its wall times name: none inside a skipped hour, both
  passes of a repeated hour, never the same instant twice.

Real time is cut where the zone's UTC offset changes; within each piece wall time is real
time plus one offset, so a window reads exactly the wall times it shows. Searches jump
over stretches with no matching wall time (croniter finds the next one), so a leap-day
entry is as cheap as a daily one, and every search is bounded by a 400-year horizon (the
Gregorian calendar's cycle: an expression that names a date that exists names one within
it).

`every` schedules are plain real-time intervals aligned to the Unix epoch, so every
daemon and every restart computes the same fire times.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
from collections.abc import Iterator
from typing import NamedTuple
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1)
_TICK = dt.timedelta(microseconds=1)
_DAY = 86400.0
_CYCLE_YEARS = 400
HORIZON = _CYCLE_YEARS * 365.2425 * _DAY + 2 * _DAY  # how far next_fires looks ahead
# No offset change moves the wall clock back further than this (the largest since 1900:
# 23 h, Kwajalein 1969), so the wall times shown just after an instant are found within it.
_FALL_BACK_MAX = 26 * 3600.0
# Offset changes are found by reading the offset once a day and bisecting between two
# readings that differ: no zone has kept an offset for less than a week since 1970 (the
# shortest: parts of Brazil, 7 days in October 2000), so no change and its undoing hide
# between two readings.
_SAMPLE = _DAY
# A search reads windows of real time, growing from the first to the last (each window's
# offset changes are read first: a month of readings at a time, not centuries of them).
_FIRST_WINDOW = 60.0
_LAST_WINDOW = 31 * _DAY

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_DAY_RANGES = {2: "1-31", 4: "0-6"}  # '*' in the day-of-month and weekday fields
_ONE_VALUE_RANGE = re.compile(r"(\w+)-(\w+)(?:/\d+)?")
# cronie's macros, as the expressions they stand for (cronie reads @hourly as `0 * * * *`
# with a wildcard hour, and the others as fixed times: so does CronSpec)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# croniter's random (R) and hashed (H) values; no month or day name begins with r or h
_DRAWN = re.compile(r"[rh](?:[(/]|$)", re.IGNORECASE)


class _Piece(NamedTuple):
    """A stretch of real time with one UTC offset: the wall times in (low, high] show at
    instant = wall - offset. `gap_end`: the change that starts the piece, when wall times
    the clock skipped there fire at it (a fixed-time entry's)."""

    low: dt.datetime
    high: dt.datetime
    offset: float
    gap_end: float | None


class CronSpec:
    """A parsed cron expression in a timezone."""

    __slots__ = ("expr", "tz", "fixed", "has_seconds", "_template")

    def __init__(self, expr: str, tz: str = "UTC") -> None:
        fields = _expand_macro(expr).split()
        if len(fields) not in (5, 6):
            raise ValueError(
                f"cron {expr!r}: expected 5 fields (minute hour day month weekday), "
                f"or 6 with seconds last; got {len(fields)}"
            )
        _refuse_drawn_values(expr, fields)
        self.expr = expr
        self.tz = ZoneInfo(tz)
        self.has_seconds = len(fields) == 6
        # cronie: a day must match both day fields when either begins with '*' ('?' is
        # croniter's and robfig's "any", the same thing)
        day_or = not (fields[2].startswith(("*", "?")) or fields[4].startswith(("*", "?")))
        # cronie's wildcard entries (its MIN_STAR and HR_STAR): a time field beginning with
        # '*'; everything else names fixed times, whatever ranges, steps and lists it holds
        time_fields = [fields[0], fields[1], *fields[5:]]
        self.fixed = not any(f.startswith("*") for f in time_fields)
        try:
            croniter(
                " ".join(fields), _EPOCH
            )  # syntax, with croniter's messages quoting it as written
            self._template = croniter(
                " ".join(_for_croniter(f, i) for i, f in enumerate(fields)),
                _EPOCH,
                day_or=day_or,
                max_years_between_matches=_CYCLE_YEARS,
            )
            self._croniter(dt.datetime(2000, 1, 1)).get_next()  # Feb 30th never comes
        except CroniterBadDateError:
            raise ValueError(f"cron {expr!r}: names no date that exists; it never fires") from None
        except (ValueError, KeyError) as exc:
            # croniter quotes the expression raw: a newline in it must not split the error
            raise ValueError(f"cron {expr!r}: {' '.join(str(exc).split())}") from None

    def fires(self, since: float, until: float) -> list[float]:
        """Fire instants (epoch seconds) t with since < t <= until, ascending, unique."""
        return list(self.fires_after(since, until))

    def fires_after(self, since: float, until: float = math.inf) -> Iterator[float]:
        """The fires t with since < t <= until, ascending, computed as they are taken."""
        until = min(until, since + HORIZON)
        window = _FIRST_WINDOW
        while since < until:
            first = self._earliest_fire_after(since)
            if first is None or first > until:
                return
            since = max(since, first - 1)  # nothing fires before `first`: jump there
            end = min(until, since + window)
            yield from self._window(since, end)
            since, window = end, min(window * 2, _LAST_WINDOW)

    def fires_before(self, until: float, since: float) -> Iterator[float]:
        """The fires t with since < t <= until, latest first, computed as they are taken."""
        since = max(since, until - HORIZON)
        window = _FIRST_WINDOW
        while until > since:
            last = self._latest_fire_until(until)
            if last is None or last <= since:
                return
            until = min(until, last)  # nothing fires after `last`: jump there
            start = max(since, until - window)
            yield from self._window_back(start, until)
            until, window = start, min(window * 2, _LAST_WINDOW)

    def next_fires(self, after: float, count: int) -> list[float]:
        """The next `count` fires after `after` (fewer only if the 400 years ahead have
        fewer: an entry that names only wall times its zone always skips)."""
        out: list[float] = []
        for t in self.fires_after(after):
            if len(out) >= count:
                break
            out.append(t)
        return out

    # -- the window: real time cut where the offset changes ---------------------------------------

    def _pieces(self, since: float, until: float) -> list[_Piece]:
        """(since, until] cut where the offset changes."""
        offset = _offset(since, self.tz)
        low = _naive(since + offset)  # the first piece excludes `since`
        gap_end = None
        pieces = []
        for change, before, after in _offset_changes(since, until, self.tz):
            pieces.append(_Piece(low, _naive(change + offset) - _TICK, offset, gap_end))
            skipped = after > before and self._matches_in(change + before, change + after)
            gap_end = change if self.fixed and skipped else None
            offset = after
            low = _naive(change + offset) - _TICK  # a piece from a change includes it
        pieces.append(_Piece(low, _naive(until + offset), offset, gap_end))
        return pieces

    def _window(self, since: float, until: float) -> Iterator[float]:
        """The fires in (since, until], ascending, computed as they are taken."""
        done = since  # the latest fire given: a gap's end may also be a wall time's instant
        for piece in self._pieces(since, until):
            if piece.gap_end is not None:
                done = piece.gap_end
                yield done
            for t in self._instants(piece, forward=True):
                if t > done:
                    done = t
                    yield t

    def _window_back(self, since: float, until: float) -> Iterator[float]:
        """The fires in (since, until], latest first, computed as they are taken."""
        done = math.inf
        for piece in reversed(self._pieces(since, until)):
            for t in self._instants(piece, forward=False):
                if t < done:
                    done = t
                    yield t
            if piece.gap_end is not None and piece.gap_end < done:
                done = piece.gap_end
                yield done

    def _instants(self, piece: _Piece, forward: bool) -> Iterator[float]:
        """The instants of the matching wall times in the piece, in the direction asked."""
        if forward:
            it = self._croniter(piece.low)
            step, beyond = it.get_next, lambda wall: wall > piece.high
        else:
            it = self._croniter(piece.high + _TICK)
            step, beyond = it.get_prev, lambda wall: wall <= piece.low
        while True:
            wall = step(dt.datetime)
            if beyond(wall):
                return
            t = (wall - _EPOCH).total_seconds() - piece.offset
            if self.fixed and _instant(wall, self.tz, fold=0) != t:
                continue  # a repeated wall time's second pass
            yield t

    def _matches_in(self, low: float, high: float) -> bool:
        """Whether a wall time in [low, high) (as naive epoch seconds) matches."""
        wall = self._next_wall(_naive(low) - _TICK)
        return wall is not None and wall < _naive(high)

    # -- jumps: where the next (or last) fire can be ----------------------------------------------

    def _earliest_fire_after(self, since: float) -> float | None:
        """A lower bound of the fires after `since`: the earliest instant of the first
        matching wall time the clock shows after it (None: no wall time matches)."""
        lowest = since + _offset(since, self.tz)  # wall times go lower after a fall back
        for change, before, after in _offset_changes(since, since + _FALL_BACK_MAX, self.tz):
            if after < before:
                lowest = min(lowest, change + after)
        wall = self._next_wall(_naive(lowest) - _TICK)
        return None if wall is None else min(self._instants_of(wall))

    def _latest_fire_until(self, until: float) -> float | None:
        """An upper bound of the fires up to `until`: the latest instant of the last
        matching wall time the clock showed until then."""
        highest = until + _offset(until, self.tz)  # wall times went higher before a fall back
        for change, before, after in _offset_changes(until - _FALL_BACK_MAX, until, self.tz):
            if after < before:
                highest = max(highest, change + before)
        try:
            wall = self._croniter(_naive(highest) + _TICK).get_prev(dt.datetime)
        except (CroniterBadDateError, OverflowError):
            return None
        return max(self._instants_of(wall))

    def _instants_of(self, wall: dt.datetime) -> list[float]:
        """Every instant a wall time shows at (two in a repeated hour); for a skipped wall
        time, the end of the gap."""
        first = _instant(wall, self.tz, fold=0)
        second = _instant(wall, self.tz, fold=1)
        if first == second or _wall(first, self.tz) == wall or _wall(second, self.tz) == wall:
            return [first, second]
        return [_gap_end(wall, self.tz, min(first, second), max(first, second))]

    def _next_wall(self, after: dt.datetime) -> dt.datetime | None:
        try:
            wall: dt.datetime = self._croniter(after).get_next(dt.datetime)
        except (CroniterBadDateError, OverflowError):
            return None
        return wall

    def _croniter(self, start: dt.datetime) -> croniter:
        """An iterator from `start` (a copy: parsing the expression again costs more than
        all the rest of a daemon tick)."""
        it = copy.copy(self._template)
        it.set_current(start, force=True)
        return it


def _expand_macro(expr: str) -> str:
    """The expression an `@` macro stands for; anything else as it is."""
    word = expr.strip().lower()
    if not word.startswith("@"):
        return expr
    if word == "@reboot":
        raise ValueError(
            f"cron {expr!r}: @reboot names no time, and a schedule fires at times; "
            "to run a job when the daemon starts, submit it from the daemon's service unit"
        )
    if word not in MACROS:
        raise ValueError(f"cron {expr!r}: not a macro; use one of {', '.join(MACROS)} or 5 fields")
    return MACROS[word]


def _refuse_drawn_values(expr: str, fields: list[str]) -> None:
    for field in fields:
        for term in field.split(","):
            if _DRAWN.match(term):
                what = (
                    "croniter's random value, drawn anew at every evaluation"
                    if term[0] in "rR"
                    else "croniter's hashed value, which needs a key jobrunner does not give"
                )
                raise ValueError(
                    f"cron {expr!r}: {term!r} is {what}; a schedule names fixed times: "
                    "write the value itself"
                )


def _for_croniter(field: str, index: int) -> str:
    """The field as croniter reads it the way cronie does.

    - a range of one value (`5-5`, `7-7`, `SUN-SUN/2`) is that value: croniter reads it
      as the whole field;
    - in a day field, a `*` after the first term is written as its range: croniter takes a
      day field that lists every value as `*` when the other field holds a `*` anywhere,
      where cronie looks only at whether a field begins with one."""
    names = {3: _MONTHS, 4: _WEEKDAYS}.get(index, [])

    def number(word: str) -> int | None:
        if word.isdigit():
            return int(word)
        if word.lower() in names:
            return names.index(word.lower()) + (1 if index == 3 else 0)
        return None

    terms = []
    for k, term in enumerate(field.split(",")):
        m = _ONE_VALUE_RANGE.fullmatch(term)
        if m and number(m[1]) is not None and number(m[1]) == number(m[2]):
            term = m[1]
        elif k > 0 and index in _DAY_RANGES and term.startswith("*"):
            term = _DAY_RANGES[index] + term[1:]
        terms.append(term)
    return ",".join(terms)


def interval_fires(every: float, since: float, until: float) -> Iterator[float]:
    """Multiples of `every` seconds since the epoch in (since, until]."""
    k = int(since // every) + 1
    while k * every <= until:
        yield k * every
        k += 1


def interval_fires_before(every: float, until: float, since: float) -> Iterator[float]:
    """Multiples of `every` seconds since the epoch in (since, until], latest first."""
    k = int(until // every) + 1
    while k * every > until:  # the same products as interval_fires, rounding and all
        k -= 1
    while k * every > since:
        yield k * every
        k -= 1


def _offset_changes(since: float, until: float, tz: ZoneInfo) -> list[tuple[float, float, float]]:
    """(instant, offset before, offset after) of each change of the zone's UTC offset in
    (since, until]; offsets in seconds."""
    out = []
    t, offset = since, _offset(since, tz)
    while t < until:
        reading = min(until, t + _SAMPLE)
        if _offset(reading, tz) == offset:
            t = reading
            continue
        low, high = t, reading  # the offset is `offset` at low, another at high
        while high - low > 0.5:
            mid = (low + high) / 2
            low, high = (mid, high) if _offset(mid, tz) == offset else (low, mid)
        change = float(math.floor(high)) if math.floor(high) > low else high  # whole seconds
        after = _offset(change, tz)
        out.append((change, offset, after))
        t, offset = change, after
    return out


def next_offset_change(
    tz: str, after: float, within: float = 400 * _DAY
) -> tuple[float, float, float] | None:
    """The zone's next change of UTC offset after `after` (a DST change), as (instant,
    offset before, offset after) in seconds; None if none comes `within` seconds."""
    changes = _offset_changes(after, after + within, ZoneInfo(tz))
    return changes[0] if changes else None


def _offset(ts: float, tz: ZoneInfo) -> float:
    delta = dt.datetime.fromtimestamp(ts, tz).utcoffset()
    return delta.total_seconds() if delta is not None else 0.0


def _naive(seconds: float) -> dt.datetime:
    """Epoch seconds as a naive datetime, to read wall time as naive epoch seconds;
    rounded down to the microsecond (never up onto a whole second: the bounds of a window
    are exact for the whole-second wall times croniter gives)."""
    whole = math.floor(seconds)
    return _EPOCH + dt.timedelta(seconds=whole, microseconds=math.floor((seconds - whole) * 1e6))


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
