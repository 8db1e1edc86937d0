"""CronSpec against references written without croniter and without cron.py.

- `Matcher`: a cron matcher written here from cronie's crontab(5): numbers, names,
  ranges, steps, lists, 7 for Sunday, and cronie's day rule (src/cron.c, find_jobs): when
  the day-of-month or the weekday field begins with '*', a day must match both; when both
  are restricted, either suffices. Random fields are compared with CronSpec in UTC.
- robfig/cron's test vectors (v3 spec_test.go, TestActivation and TestNext, the rows
  without DST), where robfig reads cron as cronie does (two rows differ: noted there).
- `dst_oracle`: docs/schedules.md's "Daylight saving time" rules applied by stepping real time
  minute by minute and reading the wall clock with zoneinfo, around every offset change
  of 2024-2026 in 14 zones, and around odd ones (a whole day skipped, half-hour changes).
  The whole sweep is a slow test; by default a sample of it runs.
"""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobrunner.cron import CronSpec

UTC = dt.UTC
MINUTE = 60
HOUR = 3600
DAY = 86400

# -- a cron matcher from crontab(5) ---------------------------------------------------------------

MONTHS = {
    n: i + 1
    for i, n in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
WEEKDAYS = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (lowest, highest, names) of each field, in croniter's order (seconds last)
FIELDS: list[tuple[int, int, dict[str, int]]] = [
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, MONTHS),
    (0, 7, WEEKDAYS),  # 0 and 7 are both Sunday
    (0, 59, {}),
]


def field_values(text: str, index: int) -> set[int]:
    low, high, names = FIELDS[index]

    def number(word: str) -> int:
        return names[word.lower()] if word.lower() in names else int(word)

    out: set[int] = set()
    for term in text.split(","):
        base, _, step = term.partition("/")
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-")
            first, last = number(a), number(b)
        else:
            first = number(base)
            # "5/15": from 5 to the end (robfig's and croniter's; weekdays end on Saturday)
            last = (6 if index == 4 else high) if step else first
        out.update(range(first, last + 1, int(step or 1)))
    return {v % 7 for v in out} if index == 4 else out


class Matcher:
    """Whether a wall time matches a cron expression, and whether the entry is fixed-time
    (docs/schedules.md: neither its minute, hour nor seconds field begins with '*')."""

    def __init__(self, expr: str) -> None:
        fields = expr.split()
        self.sets = [field_values(f, i) for i, f in enumerate(fields)]
        self.has_seconds = len(fields) == 6
        self.both_days = fields[2][0] in "*?" or fields[4][0] in "*?"
        self.fixed = not any(f.startswith("*") for f in (fields[0], fields[1], *fields[5:]))

    def __call__(self, wall: dt.datetime) -> bool:
        minute, hour, dom, month, dow = self.sets[:5]
        if wall.minute not in minute or wall.hour not in hour or wall.month not in month:
            return False
        if self.has_seconds and wall.second not in self.sets[5]:
            return False
        day, weekday = wall.day in dom, wall.isoweekday() % 7 in dow
        return (day and weekday) if self.both_days else (day or weekday)


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def matching_instants(expr: str, since: float, until: float, step: int) -> list[float]:
    """Instants in (since, until] on multiples of `step` whose UTC wall time matches."""
    match = Matcher(expr)
    t = (int(since) // step + 1) * step
    out = []
    while t <= until:
        if match(dt.datetime.fromtimestamp(t, UTC).replace(tzinfo=None)):
            out.append(float(t))
        t += step
    return out


# -- fields: random expressions against the matcher, in UTC ---------------------------------------


@st.composite
def field(draw: st.DrawFn, index: int) -> str:
    low, high, names = FIELDS[index]

    def value() -> str:
        v = draw(st.integers(low, high))
        if names and draw(st.booleans()):
            by_number = {n: w for w, n in names.items()}
            return by_number.get(v % 7 if index == 4 else v, str(v)).upper()
        return str(v)

    def term() -> str:
        kind = draw(st.sampled_from(["*", "*/", "one", "range", "range/", "one/"]))
        step = draw(st.sampled_from([1, 2, 3, 5, 7, 10, 15]))
        if kind == "*":
            return "*"
        if kind == "*/":
            return f"*/{step}"
        if kind == "one":
            return value()
        if kind == "one/":
            return f"{draw(st.integers(low, min(high, 6) if index == 4 else high))}/{step}"
        a, b = sorted((draw(st.integers(low, high)), draw(st.integers(low, high))))
        return f"{a}-{b}" + (f"/{step}" if kind == "range/" else "")

    terms = [term() for _ in range(draw(st.integers(1, 3)))]
    return ",".join(t if t != "*" else str(low) for t in terms) if len(terms) > 1 else terms[0]


@settings(max_examples=100, deadline=None)
@given(field(0), field(1), field(5))
def test_time_fields_mean_what_crontab_says(minute: str, hour: str, second: str) -> None:
    expr = f"{minute} {hour} * * *"
    since = utc("2026-06-01T00:00")
    assert CronSpec(expr).fires(since, since + DAY) == matching_instants(
        expr, since, since + DAY, MINUTE
    ), expr
    expr6 = f"{minute} 7 * * * {second}"
    start = since + 7 * HOUR
    assert CronSpec(expr6).fires(start, start + 10 * MINUTE) == matching_instants(
        expr6, start, start + 10 * MINUTE, 1
    ), expr6


@st.composite
def day_fields(draw: st.DrawFn) -> tuple[str, str, str]:
    dom = draw(st.one_of(st.just("?"), field(2)))
    dow = draw(st.one_of(st.just("?"), field(4)))
    month = draw(st.one_of(st.just("*"), field(3)))
    return dom, month, dow


@settings(max_examples=100, deadline=None)
@given(day_fields(), st.sampled_from(["2012-07-09", "2026-12-30", "2099-06-01"]))
def test_day_fields_follow_cronies_rule(days: tuple[str, str, str], start: str) -> None:
    """Two years of days: both day fields must match when either begins with '*' (or is
    '?'), either suffices when both are restricted."""
    dom, month, dow = days
    expr = f"0 0 {dom} {month} {dow}"
    since = utc(f"{start}T00:00")
    until = since + 2 * 366 * DAY
    try:
        spec = CronSpec(expr)
    except ValueError as exc:
        assert "never fires" in str(exc)
        # nothing in 28 years (a whole cycle of weekdays and leap years but for 2100)
        assert matching_instants(expr, utc("2001-01-01T00:00"), utc("2029-01-01"), DAY) == []
        return
    assert spec.fires(since, until) == matching_instants(expr, since, until, DAY), expr


# -- robfig/cron's vectors ------------------------------------------------------------------------


def robfig_time(text: str) -> float:
    for form in ("%a %b %d %H:%M %Y", "%a %b %d %H:%M:%S %Y"):
        try:
            return dt.datetime.strptime(text, form).replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
    raise ValueError(text)


# TestActivation (5 fields): does the spec fire at that time?
ACTIVATION = [
    ("Mon Jul 9 15:00 2012", "0/15 * * * *", True),
    ("Mon Jul 9 15:45 2012", "0/15 * * * *", True),
    ("Mon Jul 9 15:40 2012", "0/15 * * * *", False),
    ("Mon Jul 9 15:05 2012", "5/15 * * * *", True),
    ("Mon Jul 9 15:20 2012", "5/15 * * * *", True),
    ("Mon Jul 9 15:50 2012", "5/15 * * * *", True),
    ("Sun Jul 15 15:00 2012", "0/15 * * Jul *", True),
    ("Sun Jul 15 15:00 2012", "0/15 * * Jun *", False),
    ("Sun Jul 15 08:30 2012", "30 08 ? Jul Sun", True),
    ("Sun Jul 15 08:30 2012", "30 08 15 Jul ?", True),
    ("Mon Jul 16 08:30 2012", "30 08 ? Jul Sun", False),
    ("Mon Jul 16 08:30 2012", "30 08 15 Jul ?", False),
    ("Sun Jul 15 00:00 2012", "* * 1,15 * Sun", True),
    ("Fri Jun 15 00:00 2012", "* * 1,15 * Sun", True),
    ("Wed Aug 1 00:00 2012", "* * 1,15 * Sun", True),
    # robfig: True (a stepped field is not a star to robfig); cronie: '*/10' begins with
    # '*', so the 15th must also be one of 1, 11, 21, 31
    ("Sun Jul 15 00:00 2012", "* * */10 * Sun", False),
    ("Sun Jul 15 00:00 2012", "* * * * Mon", False),
    ("Mon Jul 9 00:00 2012", "* * 1,15 * *", False),
    ("Sun Jul 15 00:00 2012", "* * 1,15 * *", True),
    ("Sun Jul 15 00:00 2012", "* * */2 * Sun", True),
]


@pytest.mark.parametrize(("when", "expr", "fires"), ACTIVATION)
def test_robfig_activation(when: str, expr: str, fires: bool) -> None:
    t = robfig_time(when)
    assert CronSpec(expr).fires(t - 1, t) == ([t] if fires else [])


# TestNext, rows without DST; robfig's 6 fields (seconds first) in croniter's order here
NEXT = [
    ("Mon Jul 9 14:45 2012", "0/15 * * * * 0", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 14:59 2012", "0/15 * * * * 0", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 14:59:59 2012", "0/15 * * * * 0", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 15:45 2012", "20-35/15 * * * * 0", "Mon Jul 9 16:20 2012"),
    ("Mon Jul 9 23:46 2012", "*/15 * * * * 0", "Tue Jul 10 00:00 2012"),
    ("Mon Jul 9 23:45 2012", "20-35/15 * * * * 0", "Tue Jul 10 00:20 2012"),
    ("Mon Jul 9 23:35:51 2012", "20-35/15 * * * * 15/35", "Tue Jul 10 00:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "20-35/15 1/2 * * * 15/35", "Tue Jul 10 01:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "20-35/15 10-12 * * * 15/35", "Tue Jul 10 10:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "20-35/15 1/2 */2 * * 15/35", "Thu Jul 11 01:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "20-35/15 * 9-20 * * 15/35", "Wed Jul 10 00:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "20-35/15 * 9-20 Jul * 15/35", "Wed Jul 10 00:20:15 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 9 Apr-Oct ? 0", "Thu Aug 9 00:00 2012"),
    # robfig: Wed Aug 1 (the 1st, either day field); cronie: a Monday among 1, 6, 11, ...
    ("Mon Jul 9 23:35 2012", "0 0 */5 Apr,Aug,Oct Mon 0", "Mon Aug 6 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 */5 Oct Mon 0", "Mon Oct 1 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 * Feb Mon 0", "Mon Feb 4 00:00 2013"),
    ("Mon Jul 9 23:35 2012", "0 0 * Feb Mon/2 0", "Fri Feb 1 00:00 2013"),
    ("Mon Dec 31 23:59:45 2012", "* * * * * 0", "Tue Jan 1 00:00:00 2013"),
    ("Mon Jul 9 23:35 2012", "0 0 29 Feb ? 0", "Mon Feb 29 00:00 2016"),
]


@pytest.mark.parametrize(("after", "expr", "expected"), NEXT)
def test_robfig_next(after: str, expr: str, expected: str) -> None:
    assert CronSpec(expr).next_fires(robfig_time(after), 1) == [robfig_time(expected)]


@pytest.mark.parametrize("expr", ["0 0 30 Feb ? 0", "0 0 31 Apr ? 0"])
def test_robfig_unsatisfiable_specs_are_refused(expr: str) -> None:
    with pytest.raises(ValueError, match="never fires"):
        CronSpec(expr)


@pytest.mark.parametrize(
    ("macro", "expr"),
    [("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@weekly", "0 0 * * 0")]
    + [("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *")],
)
def test_macros_fire_as_robfig_reads_them(macro: str, expr: str) -> None:
    after = robfig_time("Mon Jul 9 14:45 2012")
    assert CronSpec(macro).next_fires(after, 3) == CronSpec(expr).next_fires(after, 3)


# -- the DST rules, by brute force ----------------------------------------------------------------

LOOKBACK = 4 * HOUR  # longer than any offset change in the zones below (Troll: 2 h)


def dst_oracle(expr: str, tz: str, since: float, until: float) -> list[float]:
    """Fires in (since, until] by docs/schedules.md's rules, stepping real time and reading the
    wall clock: a frequent entry fires at every instant whose wall time matches (both
    passes of a repeated hour, none in a skipped one); a fixed-time entry fires on a wall
    time's first pass only, and a wall time the clock skips fires at the first instant
    after the gap. (Offsets and changes in these zones fall on whole minutes.)"""
    zone = ZoneInfo(tz)
    match = Matcher(expr)
    step = 1 if match.has_seconds else MINUTE
    tick = dt.timedelta(seconds=step)

    def wall(t: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None)

    fires: set[float] = set()
    seen: set[dt.datetime] = set()
    t = (int(since - LOOKBACK) // step) * step
    previous = wall(t - step)
    while t <= until:
        w = wall(t)
        if match.fixed and w - previous > tick:  # the clock jumped forward to `w` at t
            skipped = previous + tick
            while skipped < w:
                if match(skipped):
                    fires.add(t)
                skipped += tick
        if match(w) and not (match.fixed and w in seen):
            fires.add(t)
        seen.add(w)
        previous = w
        t += step
    return sorted(float(x) for x in fires if since < x <= until)


def offset_changes(tz: str, start: float, end: float) -> list[float]:
    """The instants in [start, end) at which the zone's UTC offset changes."""
    zone = ZoneInfo(tz)

    def offset(t: float) -> dt.timedelta | None:
        return dt.datetime.fromtimestamp(t, zone).utcoffset()

    out = []
    t = int(start)
    while t < end:
        nxt = t + 900
        if offset(nxt) != offset(t):
            lo, hi = t, nxt
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == offset(t) else (lo, mid)
            out.append(float(hi))
        t = nxt
    return out


def in_window(fires: list[float], until: float) -> list[float]:
    return [t for t in fires if t <= until]


def chained(spec: CronSpec, since: float, until: float, rnd: random.Random) -> list[float]:
    """fires() over random consecutive windows, as daemons ask for (last, now]."""
    out: list[float] = []
    a = since
    while a < until:
        b = min(until, a + rnd.choice([0.7, 1, 5, 59, 60, 61, 600, 1800, HOUR, 2 * HOUR, DAY]))
        out += spec.fires(a, b)
        a = b
    return out


DST_EXPRS = [
    "30 2 * * *",
    "0 2 * * *",
    "0 3 * * *",
    "0 1 * * *",
    "30 1 * * *",
    "15,45 2 * * *",
    "*/15 * * * *",
    "0 * * * *",
    "30 * * * *",
    "* 2 * * *",
    "0 0 * * *",
    "30 0 * * *",
    "0 23 * * *",
    "30 23 * * *",
    "45 1-3 * * *",
    "*/20 0-3 * * *",
    "0-59/20 0-3 * * *",
    "0 0 * * 0",
    "0 0 1 * *",
    "59 23 * * *",
    "0 0,12 * * *",
    "0 2,3 * * *",
    "* * * * *",
]
ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Beirut",
    "America/Havana",
    "Europe/Dublin",
    "Africa/Casablanca",
    "Pacific/Chatham",
    "America/St_Johns",
    "Antarctica/Troll",
    "America/Nuuk",
    "Asia/Tehran",
    "Pacific/Apia",
]


def check_around_changes(tz: str, years: range, exprs: list[str], seed: int) -> int:
    """Every offset change in `years`: a window of 3-8 hours either side, whole and
    chained, and the next fires from its start, against the oracle."""
    rnd = random.Random(seed)
    start, end = utc(f"{years.start}-01-01T00:00"), utc(f"{years.stop}-01-01T00:00")
    checked = 0
    for change in offset_changes(tz, start, end):
        for expr in exprs:
            spec = CronSpec(expr, tz)
            assert spec.fixed == Matcher(expr).fixed, expr
            since = change - rnd.randint(3 * HOUR, 8 * HOUR) - rnd.random()
            until = change + rnd.randint(3 * HOUR, 8 * HOUR)
            want = dst_oracle(expr, tz, since, until)
            where = f"{expr!r} in {tz} around {dt.datetime.fromtimestamp(change, UTC)}"
            assert spec.fires(since, until) == want, where
            assert chained(spec, since, until, rnd) == want, where
            assert in_window(spec.next_fires(since, 3), until) == want[:3], where
            checked += 1
    return checked


# zones that have kept one offset since: Iran since September 2022, Samoa since April 2021
LAST_CHANGES = {"Asia/Tehran": 2022, "Pacific/Apia": 2021}


@pytest.mark.parametrize("tz", ZONES)
def test_dst_rules_around_this_years_changes(tz: str) -> None:
    """A sample of the sweep below: the changes of 2026, a third of the expressions."""
    year = LAST_CHANGES.get(tz, 2026)
    exprs = DST_EXPRS[ZONES.index(tz) % 3 :: 3]
    assert check_around_changes(tz, range(year, year + 1), exprs, seed=ZONES.index(tz)) > 0


@pytest.mark.slow
@pytest.mark.parametrize("tz", ZONES)
def test_dst_rules_around_every_change_2024_to_2026(tz: str) -> None:
    years = range(2020, 2023) if tz in LAST_CHANGES else range(2024, 2027)
    assert check_around_changes(tz, years, DST_EXPRS, seed=100 + ZONES.index(tz)) > 0


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        ("Pacific/Apia", "2011-12-29"),  # the whole of December 30th skipped (-10 -> +14)
        ("Pacific/Kwajalein", "1993-08-20"),  # a whole day skipped (-12 -> +12)
        ("America/Caracas", "2016-05-01"),  # half an hour forward
        ("Asia/Pyongyang", "2018-05-04"),  # half an hour forward
        ("Europe/Moscow", "2014-10-26"),  # two hours back, for good
    ],
)
@pytest.mark.parametrize(
    "expr",
    ["0 12 * * *", "30 2 * * *", "0 0 * * *", "0 * * * *", "0 9 30 12 *", "0 22 * * *"],
)
def test_dst_rules_through_odd_offset_changes(tz: str, day: str, expr: str) -> None:
    spec = CronSpec(expr, tz)
    center = dt.datetime.fromisoformat(f"{day}T12:00").replace(tzinfo=ZoneInfo(tz)).timestamp()
    since, until = center - 3 * DAY, center + 3 * DAY
    want = dst_oracle(expr, tz, since, until)
    assert spec.fires(since, until) == want
    assert chained(spec, since, until, random.Random(3)) == want
    assert in_window(spec.next_fires(since, 4), until) == want[:4]


def test_apia_skipped_its_30_december_2011() -> None:
    """Noon of the skipped day is a fixed time in a gap: it runs when the gap ends."""
    fires = CronSpec("0 12 * * *", "Pacific/Apia").next_fires(utc("2011-12-28T00:00"), 4)
    walls = [dt.datetime.fromtimestamp(t, ZoneInfo("Pacific/Apia")).isoformat() for t in fires]
    assert walls == [
        "2011-12-28T12:00:00-10:00",
        "2011-12-29T12:00:00-10:00",
        "2011-12-31T00:00:00+14:00",
        "2011-12-31T12:00:00+14:00",
    ]


@pytest.mark.parametrize(
    ("tz", "change"),
    [("Europe/Berlin", "2026-03-29T01:00"), ("America/New_York", "2026-11-01T06:00")],
)
@pytest.mark.parametrize("expr", ["30 2 * * * */20", "0 2 * * * *", "10 1-2 * * * 0-59/30"])
def test_dst_rules_with_a_seconds_field(tz: str, change: str, expr: str) -> None:
    spec = CronSpec(expr, tz)
    since, until = utc(change) - 2 * HOUR - 0.5, utc(change) + 2 * HOUR
    want = dst_oracle(expr, tz, since, until)
    assert spec.fires(since, until) == want
    assert chained(spec, since, until, random.Random(5)) == want
