"""Pure fire computation (jobrunner/cron.py) through the 2026 DST transitions.

Times are written out as UTC instants and checked against what a person in the
schedule's timezone would see on the wall. The property tests compare CronSpec.fires
with an oracle written here from the rules in the module docstring (docs/schedules.md,
"Daylight saving time"), stepping real minutes and reading the wall clock with
zoneinfo, without croniter.

2026 transitions used throughout:
- Europe/Berlin: spring forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z);
  fall back 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z).
- America/New_York: spring forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z);
  fall back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobrunner.cron import CronSpec, describe_instant, interval_fires

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
HOUR = 3600.0
DAY = 86400.0


def utc(text: str) -> float:
    """'2026-03-29T01:00' (UTC) -> epoch seconds."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def local(ts: float, tz: str) -> str:
    """Epoch seconds -> local ISO time with its offset, e.g. '2026-03-29T03:00:00+02:00'."""
    return dt.datetime.fromtimestamp(ts, ZoneInfo(tz)).isoformat()


def fires_local(expr: str, tz: str, since: str, until: str) -> list[str]:
    return [local(t, tz) for t in CronSpec(expr, tz).fires(utc(since), utc(until))]


# -- ordinary times and the window ----------------------------------------------------------------


def test_an_ordinary_day_fires_at_the_wall_time_in_the_zone() -> None:
    assert fires_local("30 2 * * *", BERLIN, "2026-06-01T00:00", "2026-06-03T00:00") == [
        "2026-06-01T02:30:00+02:00",
        "2026-06-02T02:30:00+02:00",
    ]
    assert fires_local("30 2 * * *", NEW_YORK, "2026-06-01T00:00", "2026-06-03T00:00") == [
        "2026-06-01T02:30:00-04:00",
        "2026-06-02T02:30:00-04:00",
    ]


def test_the_window_excludes_since_and_includes_until() -> None:
    spec = CronSpec("*/15 * * * *", "UTC")
    t = utc("2026-06-01T12:15")
    assert spec.fires(t, t + 900) == [t + 900]
    assert spec.fires(t - 1, t) == [t]
    assert spec.fires(t, t + 899) == []
    assert spec.fires(t, t) == []
    assert spec.fires(t + 10, t) == []  # an empty or reversed window


def test_adjacent_windows_add_up_to_the_whole() -> None:
    spec = CronSpec("*/7 * * * *", BERLIN)
    start, end = utc("2026-03-28T20:00"), utc("2026-03-29T06:00")
    whole = spec.fires(start, end)
    cuts = [start, start + 1234.5, start + 7 * HOUR, start + 7 * HOUR + 60, end]
    parts = [t for a, b in zip(cuts, cuts[1:], strict=False) for t in spec.fires(a, b)]
    assert parts == whole
    assert len(whole) == len(set(whole))


def test_fires_are_ascending_whole_instants() -> None:
    fires = CronSpec("*/15 * * * *", NEW_YORK).fires(
        utc("2026-11-01T00:00"), utc("2026-11-02T00:00")
    )
    assert fires == sorted(fires)
    assert all(t == int(t) and t % 900 == 0 for t in fires)


def test_seconds_are_the_sixth_field() -> None:
    spec = CronSpec("* * * * * */20", "UTC")
    t = utc("2026-06-01T12:00")
    assert spec.fires(t, t + 60) == [t + 20, t + 40, t + 60]
    assert spec.has_seconds
    spec = CronSpec("30 2 * * * 15", BERLIN)
    assert [
        local(f, BERLIN) for f in spec.fires(utc("2026-06-01T00:00"), utc("2026-06-02T00:00"))
    ] == ["2026-06-01T02:30:15+02:00"]


@pytest.mark.parametrize(
    "expr",
    ["", "* * * *", "* * * * * * *", "61 * * * *", "* 24 * * *", "* * * 13 *", "x * * * *"],
)
def test_a_bad_expression_is_a_value_error_naming_it(expr: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        CronSpec(expr)


def test_an_expression_that_never_fires_is_refused() -> None:
    """April 31st never comes: refusing it up front beats an error at every daemon tick."""
    with pytest.raises(ValueError, match="0 0 31 4"):
        CronSpec("0 0 31 4 *")
    # February 29th is rare, not impossible
    spec = CronSpec("0 0 29 2 *", "UTC")
    assert [local(t, "UTC") for t in spec.next_fires(utc("2026-06-01T00:00"), 1)] == [
        "2028-02-29T00:00:00+00:00"
    ]


def test_an_unknown_timezone_is_refused() -> None:
    with pytest.raises(Exception, match="Nowhere/Town"):
        CronSpec("* * * * *", "Nowhere/Town")


# -- what the fields mean: cronie's reading -------------------------------------------------------


def days_of(expr: str, after: str, count: int, tz: str = "UTC") -> list[str]:
    """The next `count` fires after midnight UTC of `after`, as 'Sun 2012-10-21'."""
    fires = CronSpec(expr, tz).next_fires(utc(f"{after}T00:00"), count)
    return [dt.datetime.fromtimestamp(t, ZoneInfo(tz)).strftime("%a %Y-%m-%d") for t in fires]


@pytest.mark.parametrize(
    ("expr", "kind"),
    [
        ("* * * * * R", "random"),
        ("R * * * *", "random"),
        ("0 r * * *", "random"),
        ("R/5 * * * *", "random"),
        ("R(0-29) 2 * * *", "random"),
        ("0 0 * * r", "random"),
        ("H * * * *", "hashed"),
        ("h/15 * * * *", "hashed"),
        ("H(0-29) 2 * * *", "hashed"),
        ("0 0 1 * * H", "hashed"),
    ],
)
def test_a_random_or_hashed_value_is_refused(expr: str, kind: str) -> None:
    """croniter draws `R` anew at every evaluation, so such an entry names no fixed
    times (it fired several times a minute); `H` needs a hash key jobrunner does not
    give. Both are refused, naming the field, rather than guessed at."""
    with pytest.raises(ValueError, match=kind) as info:
        CronSpec(expr)
    message = str(info.value)
    assert message.startswith(f"cron {expr!r}: ") and "\n" not in message


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("0 0 * MAR THU", "2026-01-01", ["Thu 2026-03-05", "Thu 2026-03-12", "Thu 2026-03-19"]),
        ("0 0 * * FRI", "2026-01-01", ["Fri 2026-01-02", "Fri 2026-01-09", "Fri 2026-01-16"]),
        ("0 0 1 mar-apr *", "2026-01-01", ["Sun 2026-03-01", "Wed 2026-04-01", "Mon 2027-03-01"]),
        ("0 0 * * thu,fri", "2026-01-01", ["Fri 2026-01-02", "Thu 2026-01-08", "Fri 2026-01-09"]),
    ],
)
def test_month_and_day_names_holding_r_or_h_are_names(
    expr: str, after: str, expected: list[str]
) -> None:
    assert days_of(expr, after, 3) == expected
    assert days_of(expr, after, 3) == expected  # the same each time: nothing is drawn


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # croniter reads a range of one value ("7-7", "SUN-SUN") as the whole field
        ("0 0 * * 7-7", ["Sun 2012-07-15", "Sun 2012-07-22", "Sun 2012-07-29"]),
        ("0 0 * * SUN-SUN", ["Sun 2012-07-15", "Sun 2012-07-22", "Sun 2012-07-29"]),
        ("0 0 * * 5-5", ["Fri 2012-07-13", "Fri 2012-07-20", "Fri 2012-07-27"]),
        ("0 0 * * 0-0/2", ["Sun 2012-07-15", "Sun 2012-07-22", "Sun 2012-07-29"]),
        ("0 0 5-5 * *", ["Sun 2012-08-05", "Wed 2012-09-05", "Fri 2012-10-05"]),
        ("0 0 1 JAN-JAN *", ["Tue 2013-01-01", "Wed 2014-01-01", "Thu 2015-01-01"]),
        ("0 0 1 7-7 *", ["Mon 2013-07-01", "Tue 2014-07-01", "Wed 2015-07-01"]),
        # 7 is Sunday too, also at the end of a range
        ("0 0 * * 7", ["Sun 2012-07-15", "Sun 2012-07-22", "Sun 2012-07-29"]),
        ("0 0 * * 5-7", ["Fri 2012-07-13", "Sat 2012-07-14", "Sun 2012-07-15"]),
        ("0 0 * * 6-7", ["Sat 2012-07-14", "Sun 2012-07-15", "Sat 2012-07-21"]),
        ("0 0 * * 1-7/2", ["Wed 2012-07-11", "Fri 2012-07-13", "Sun 2012-07-15"]),
        ("0 0 * * 0-7", ["Tue 2012-07-10", "Wed 2012-07-11", "Thu 2012-07-12"]),
    ],
)
def test_a_range_means_the_values_it_names(expr: str, expected: list[str]) -> None:
    assert days_of(expr, "2012-07-09", 3) == expected


@pytest.mark.parametrize(
    ("expr", "window"),
    [("0 5-5 * * *", [5]), ("0 22-22/3 * * *", [22]), ("0 3,5-5 * * *", [3, 5])],
)
def test_a_range_of_one_hour_is_that_hour(expr: str, window: list[int]) -> None:
    fires = CronSpec(expr).fires(utc("2026-06-01T00:00"), utc("2026-06-02T00:00"))
    assert [dt.datetime.fromtimestamp(t, dt.UTC).hour for t in fires] == window


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # either field begins with '*': both must match (AND)
        ("0 0 */10 * 0", "2012-07-09", ["Sun 2012-10-21", "Sun 2012-11-11", "Sun 2013-03-31"]),
        ("0 0 */2 * 1", "2012-07-09", ["Mon 2012-07-23", "Mon 2012-08-13", "Mon 2012-08-27"]),
        ("0 0 1 * */7", "2012-07-09", ["Sun 2013-09-01", "Sun 2013-12-01", "Sun 2014-06-01"]),
        ("0 0 ? * 1", "2012-07-09", ["Mon 2012-07-16", "Mon 2012-07-23", "Mon 2012-07-30"]),
        ("0 0 * * 5", "2012-08-01", ["Fri 2012-08-03", "Fri 2012-08-10", "Fri 2012-08-17"]),
        ("0 0 1,15 * *", "2012-08-01", ["Wed 2012-08-15", "Sat 2012-09-01", "Sat 2012-09-15"]),
        # both restricted: either may match (OR)
        ("0 0 13 * 5", "2012-08-01", ["Fri 2012-08-03", "Fri 2012-08-10", "Mon 2012-08-13"]),
        ("0 0 1-31/2 * 1", "2012-07-09", ["Wed 2012-07-11", "Fri 2012-07-13", "Sun 2012-07-15"]),
    ],
)
def test_day_of_month_and_weekday_follow_cronie(expr: str, after: str, expected: list[str]) -> None:
    """cronie (and Vixie cron): when the day-of-month or the weekday field begins with
    '*', a day must match both; only when both are restricted does either suffice."""
    assert days_of(expr, after, 3) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("0 0 L 2 *", ["Sat 2026-02-28", "Sun 2027-02-28", "Tue 2028-02-29"]),
        ("0 0 * * 5#2", ["Fri 2026-01-09", "Fri 2026-02-13", "Fri 2026-03-13"]),
        ("0 0 15W * *", ["Thu 2026-01-15", "Mon 2026-02-16", "Mon 2026-03-16"]),
    ],
)
def test_croniters_last_nearest_weekday_and_nth_weekday(expr: str, expected: list[str]) -> None:
    assert days_of(expr, "2026-01-01", 3) == expected


def test_a_stepped_day_of_month_with_a_weekday_does_not_fire_on_other_weekdays() -> None:
    """`0 0 */10 * 0`: the 1st, 11th, 21st and 31st when it is a Sunday; croniter's own
    reading (either) fired on Wednesday 2012-07-11."""
    spec = CronSpec("0 0 */10 * 0")
    assert spec.fires(utc("2012-07-10T12:00"), utc("2012-07-12T00:00")) == []


# -- fixed-time or frequent: cronie's wildcard entries ---------------------------------------------


@pytest.mark.parametrize(
    ("expr", "fixed"),
    [
        ("30 2 * * *", True),
        ("0,30 2 * * *", True),
        ("30 1-3 * * *", True),
        ("0-59/15 2 * * *", True),
        ("15/20 2-4/2 * * *", True),
        ("30 2 * * * 0", True),
        ("30 2 * * * 0-30/10", True),
        ("*/15 2 * * *", False),
        ("30 * * * *", False),
        ("30 */2 * * *", False),
        ("* 2 * * *", False),
        ("30 2 * * * *", False),
        ("30 2 * * * */10", False),
    ],
)
def test_an_entry_is_frequent_when_a_time_field_begins_with_a_star(expr: str, fixed: bool) -> None:
    assert CronSpec(expr).fixed is fixed


def test_an_hour_range_is_a_fixed_time_entry_through_dst() -> None:
    """`30 1-3 * * *` names three fixed times a night: on the spring-forward night 02:30
    runs at 03:00 (the end of the gap); on the fall-back night 02:30 runs once."""
    spec = CronSpec("30 1-3 * * *", BERLIN)
    spring = [
        local(t, BERLIN) for t in spec.fires(utc("2026-03-28T22:00"), utc("2026-03-29T12:00"))
    ]
    assert spring == [
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00",
    ]
    fall = [local(t, BERLIN) for t in spec.fires(utc("2026-10-24T21:00"), utc("2026-10-25T12:00"))]
    assert fall == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T03:30:00+01:00",
    ]


def test_a_stepped_minute_without_a_star_is_a_fixed_time_entry_through_dst() -> None:
    spec = CronSpec("0-59/30 2 * * *", BERLIN)
    spring = spec.fires(utc("2026-03-28T22:00"), utc("2026-03-29T12:00"))
    assert [local(t, BERLIN) for t in spring] == ["2026-03-29T03:00:00+02:00"]
    fall = spec.fires(utc("2026-10-24T21:00"), utc("2026-10-25T12:00"))
    assert [local(t, BERLIN) for t in fall] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
    ]
    frequent = CronSpec("*/30 2 * * *", BERLIN)
    assert frequent.fires(utc("2026-03-28T22:00"), utc("2026-03-29T12:00")) == []
    assert len(frequent.fires(utc("2026-10-24T21:00"), utc("2026-10-25T12:00"))) == 4


# -- spring forward: the skipped hour -------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "expr", "day", "expected"),
    [
        # 02:30 does not exist that night: once, at the end of the gap (03:00 local)
        (BERLIN, "30 2 * * *", "2026-03-29", "2026-03-29T03:00:00+02:00"),
        (BERLIN, "0 2 * * *", "2026-03-29", "2026-03-29T03:00:00+02:00"),
        (BERLIN, "59 2 * * *", "2026-03-29", "2026-03-29T03:00:00+02:00"),
        (NEW_YORK, "30 2 * * *", "2026-03-08", "2026-03-08T03:00:00-04:00"),
        (NEW_YORK, "1 2 * * *", "2026-03-08", "2026-03-08T03:00:00-04:00"),
        # times outside the gap are untouched
        (BERLIN, "30 1 * * *", "2026-03-29", "2026-03-29T01:30:00+01:00"),
        (BERLIN, "0 3 * * *", "2026-03-29", "2026-03-29T03:00:00+02:00"),
        (NEW_YORK, "30 3 * * *", "2026-03-08", "2026-03-08T03:30:00-04:00"),
    ],
)
def test_spring_forward_fixed_time_fires_once(tz: str, expr: str, day: str, expected: str) -> None:
    zone = ZoneInfo(tz)
    start = dt.datetime.fromisoformat(day).replace(tzinfo=zone).timestamp()
    fires = CronSpec(expr, tz).fires(start, start + 23 * HOUR)  # that local day is 23 h long
    assert [local(t, tz) for t in fires] == [expected]


def test_spring_forward_fixed_time_in_the_gap_fires_at_the_instant_the_gap_ends() -> None:
    assert CronSpec("30 2 * * *", BERLIN).fires(
        utc("2026-03-29T00:00"), utc("2026-03-29T02:00")
    ) == [utc("2026-03-29T01:00")]
    assert CronSpec("30 2 * * *", NEW_YORK).fires(
        utc("2026-03-08T06:00"), utc("2026-03-08T08:00")
    ) == [utc("2026-03-08T07:00")]


def test_spring_forward_two_fixed_times_landing_on_one_instant_fire_once() -> None:
    """02:30 moves to 03:00, where 03:00 already fires: one instant, one fire."""
    fires = CronSpec("0,30 2,3 * * *", BERLIN).fires(
        utc("2026-03-28T23:00"), utc("2026-03-29T03:00")
    )
    assert [local(t, BERLIN) for t in fires] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00",
    ]


def test_a_list_of_fixed_times_is_a_fixed_time_entry() -> None:
    """docs/schedules.md: fixed-time = neither the minute nor the hour field begins with '*'; a
    list of times (`30 2,14`) is two fixed times a day, so 02:30 still runs on the
    spring-forward day and runs once on the fall-back day."""
    spec = CronSpec("30 2,14 * * *", BERLIN)
    spring = [
        local(t, BERLIN) for t in spec.fires(utc("2026-03-28T23:00"), utc("2026-03-29T22:00"))
    ]
    assert spring == ["2026-03-29T03:00:00+02:00", "2026-03-29T14:30:00+02:00"]
    fall = [local(t, BERLIN) for t in spec.fires(utc("2026-10-24T22:00"), utc("2026-10-25T23:00"))]
    assert fall == ["2026-10-25T02:30:00+02:00", "2026-10-25T14:30:00+01:00"]


@pytest.mark.parametrize(("tz", "night"), [(BERLIN, "2026-03-29"), (NEW_YORK, "2026-03-08")])
def test_spring_forward_frequent_entry_fires_at_every_real_instant_and_none_in_the_gap(
    tz: str, night: str
) -> None:
    zone = ZoneInfo(tz)
    start = dt.datetime.fromisoformat(night).replace(tzinfo=zone).timestamp()
    fires = CronSpec("*/15 * * * *", tz).fires(start - 1, start + 23 * HOUR - 1)
    assert len(fires) == 23 * 4  # a 23-hour day
    assert all(b - a == 900 for a, b in zip(fires, fires[1:], strict=False))
    walls = [local(t, tz) for t in fires]
    assert not any(w[11:13] == "02" for w in walls)  # no 02:xx wall time exists that night
    assert f"{night}T01:45:00" in walls[7]
    assert f"{night}T03:00:00" in walls[8]


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK])
def test_spring_forward_frequent_entry_in_the_skipped_hour_only_does_not_fire(tz: str) -> None:
    night = "2026-03-29" if tz == BERLIN else "2026-03-08"
    zone = ZoneInfo(tz)
    start = dt.datetime.fromisoformat(night).replace(tzinfo=zone).timestamp()
    assert CronSpec("*/15 2 * * *", tz).fires(start, start + 23 * HOUR) == []
    assert CronSpec("0 * * * *", tz).fires(start, start + 23 * HOUR) == [
        start + h * HOUR for h in range(1, 24)
    ]


# -- fall back: the repeated hour -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "expr", "day", "expected"),
    [
        # the first pass only (summer time's offset)
        (BERLIN, "30 2 * * *", "2026-10-25", "2026-10-25T02:30:00+02:00"),
        (BERLIN, "0 2 * * *", "2026-10-25", "2026-10-25T02:00:00+02:00"),
        (BERLIN, "59 2 * * *", "2026-10-25", "2026-10-25T02:59:00+02:00"),
        (NEW_YORK, "30 1 * * *", "2026-11-01", "2026-11-01T01:30:00-04:00"),
        (NEW_YORK, "0 1 * * *", "2026-11-01", "2026-11-01T01:00:00-04:00"),
        # times outside the repeated hour are untouched
        (BERLIN, "0 3 * * *", "2026-10-25", "2026-10-25T03:00:00+01:00"),
        (NEW_YORK, "0 2 * * *", "2026-11-01", "2026-11-01T02:00:00-05:00"),
    ],
)
def test_fall_back_fixed_time_fires_once_on_the_first_pass(
    tz: str, expr: str, day: str, expected: str
) -> None:
    zone = ZoneInfo(tz)
    start = dt.datetime.fromisoformat(day).replace(tzinfo=zone).timestamp()
    fires = CronSpec(expr, tz).fires(start, start + 25 * HOUR)  # that local day is 25 h long
    assert [local(t, tz) for t in fires] == [expected]


def test_fall_back_fixed_time_does_not_fire_on_the_second_pass_alone() -> None:
    """A window that holds only the second 02:30 (CET) has no fire: it ran on the first."""
    assert (
        CronSpec("30 2 * * *", BERLIN).fires(utc("2026-10-25T01:00"), utc("2026-10-25T02:00")) == []
    )
    assert (
        CronSpec("30 1 * * *", NEW_YORK).fires(utc("2026-11-01T06:00"), utc("2026-11-01T07:00"))
        == []
    )


@pytest.mark.parametrize(("tz", "night"), [(BERLIN, "2026-10-25"), (NEW_YORK, "2026-11-01")])
def test_fall_back_frequent_entry_fires_both_passes_never_one_instant_twice(
    tz: str, night: str
) -> None:
    zone = ZoneInfo(tz)
    start = dt.datetime.fromisoformat(night).replace(tzinfo=zone).timestamp()
    fires = CronSpec("*/15 * * * *", tz).fires(start - 1, start + 25 * HOUR - 1)
    assert len(fires) == 25 * 4 == len(set(fires))  # a 25-hour day
    assert all(b - a == 900 for a, b in zip(fires, fires[1:], strict=False))
    repeated = "02" if tz == BERLIN else "01"
    walls = [local(t, tz) for t in fires]
    in_repeated_hour = [w for w in walls if w[11:13] == repeated]
    assert len(in_repeated_hour) == 8  # four on each pass, with two different offsets
    assert len({w[-6:] for w in in_repeated_hour}) == 2


def test_fall_back_hourly_entry_fires_at_both_two_oclocks() -> None:
    fires = CronSpec("0 * * * *", BERLIN).fires(utc("2026-10-24T23:30"), utc("2026-10-25T02:30"))
    assert [local(t, BERLIN) for t in fires] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_fall_back_frequent_minutes_in_the_repeated_hour_fire_on_both_passes() -> None:
    fires = CronSpec("*/15 2 * * *", BERLIN).fires(utc("2026-10-24T12:00"), utc("2026-10-25T12:00"))
    assert len(fires) == 8
    assert fires == [utc("2026-10-25T00:00") + i * 900 for i in range(8)]


# -- next_fires -----------------------------------------------------------------------------------


def test_next_fires_are_the_next_count_fires_strictly_after() -> None:
    spec = CronSpec("30 2 * * *", BERLIN)
    after = utc("2026-03-28T01:30")  # exactly the fire of the 28th: not included
    assert [local(t, BERLIN) for t in spec.next_fires(after, 3)] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    assert spec.next_fires(after, 0) == []


def test_next_fires_agree_with_fires() -> None:
    spec = CronSpec("*/7 * * * *", NEW_YORK)
    after = utc("2026-11-01T04:58:30")
    nxt = spec.next_fires(after, 40)
    assert len(nxt) == 40
    assert nxt == spec.fires(after, nxt[-1])


def test_next_fires_of_a_yearly_entry() -> None:
    spec = CronSpec("0 0 1 1 *", NEW_YORK)
    assert [local(t, NEW_YORK) for t in spec.next_fires(utc("2026-06-01T00:00"), 2)] == [
        "2027-01-01T00:00:00-05:00",
        "2028-01-01T00:00:00-05:00",
    ]


@pytest.mark.parametrize("expr", ["0 0 29 2 *", "0 0 29 2 * 0"])
@pytest.mark.parametrize(
    ("after", "years"),
    [
        ("2026-12-02", [2028, 2032, 2036]),
        ("2028-03-01", [2032, 2036, 2040]),
        ("2012-07-09", [2016, 2020, 2024]),
        ("2096-03-01", [2104, 2108, 2112]),  # 2100 is no leap year: eight years apart
    ],
)
def test_next_fires_find_leap_days_years_ahead(expr: str, after: str, years: list[int]) -> None:
    assert days_of(expr, after, 3) == [dt.date(y, 2, 29).strftime("%a %Y-%m-%d") for y in years]


def test_next_fires_find_a_leap_day_on_a_weekday_decades_apart() -> None:
    """February 29th when it is a Sunday (the weekday field begins with '*': both must
    match): 2088, then 40 years to 2128."""
    assert days_of("0 0 29 2 */7", "2088-03-01", 3) == [
        "Sun 2128-02-29",
        "Sun 2156-02-29",
        "Sun 2184-02-29",
    ]


def test_next_fires_of_an_entry_that_only_names_skipped_times_are_none() -> None:
    """Every minute of 02:xx on the last Sunday of March: in Berlin that hour is skipped
    every year, and a frequent entry does not fire in a skipped hour. The search ends
    (it is bounded) with nothing; in UTC the same entry fires."""
    expr = "* 2 25-31 3 */7"
    assert CronSpec(expr, BERLIN).next_fires(utc("2026-06-01T00:00"), 3) == []
    assert [local(t, "UTC") for t in CronSpec(expr, "UTC").next_fires(utc("2026-06-01"), 2)] == [
        "2027-03-28T02:00:00+00:00",
        "2027-03-28T02:01:00+00:00",
    ]


class CroniterSteps:
    """Counts the wall times croniter computes (its get_next and get_prev calls)."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("get_next", "get_prev"):
            real = getattr(croniter, name)
            mp.setattr(croniter, name, self._counted(real))

    def _counted(self, real: Any) -> Any:
        def counted(it: croniter, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(it, *args, **kwargs)

        return counted


@pytest.mark.parametrize(
    ("tz", "transition"),
    [
        (BERLIN, "2026-03-29T01:00"),
        (BERLIN, "2026-10-25T01:00"),
        (NEW_YORK, "2026-11-01T06:00"),
        ("Australia/Lord_Howe", "2026-04-04T15:00"),
    ],
)
def test_a_per_second_entry_near_a_dst_change_reads_only_the_wall_times_it_needs(
    tz: str, transition: str
) -> None:
    """Near an offset change a window's wall times are found exactly, not by scanning
    3 hours either side: a per-second cron read 21,600 wall times per daemon tick."""
    spec = CronSpec("* * * * * *", tz)
    for edge in (-3 * HOUR, -10.0, 0.0, 5.0, 600.0, 2 * HOUR):
        since = utc(transition) + edge
        with pytest.MonkeyPatch.context() as mp:
            steps = CroniterSteps(mp)
            fires = spec.fires(since, since + 10)
            following = spec.next_fires(since, 3)
        assert len(fires) == 10 and following == fires[:3]
        assert steps.count <= 60, (edge, steps.count)


# -- every: real-time intervals -------------------------------------------------------------------


def test_interval_fires_are_multiples_of_every_since_the_epoch() -> None:
    assert list(interval_fires(60, 119.5, 300)) == [120, 180, 240, 300]
    assert list(interval_fires(60, 120, 179.9)) == []
    assert list(interval_fires(1, 10, 13)) == [11, 12, 13]
    assert list(interval_fires(90, 0, 0)) == []


def test_interval_fires_ignore_dst() -> None:
    start, end = utc("2026-03-29T00:00"), utc("2026-03-29T03:00")
    fires = list(interval_fires(1800, start, end))
    assert fires == [start + 1800 * k for k in range(1, 7)]


# -- display --------------------------------------------------------------------------------------


def test_describe_instant_gives_local_with_offset_and_utc_with_z() -> None:
    assert describe_instant(utc("2026-03-29T01:00"), BERLIN) == (
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T01:00:00Z",
    )
    assert describe_instant(utc("2026-11-01T06:30"), NEW_YORK) == (
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T06:30:00Z",
    )


# -- the rules, as a property ---------------------------------------------------------------------

TRANSITIONS = {
    BERLIN: [utc("2026-03-29T01:00"), utc("2026-10-25T01:00")],
    NEW_YORK: [utc("2026-03-08T07:00"), utc("2026-11-01T06:00")],
}


def _values(field: str, low: int, high: int) -> set[int]:
    """The values a cron field names; only the forms `_field` below generates."""
    out: set[int] = set()
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/")
            step = int(step_text)
        if part == "*":
            first, last = low, high
        elif "-" in part:
            first, last = (int(x) for x in part.split("-"))
        else:
            first = last = int(part)
        out.update(range(first, last + 1, step))
    return out


def expected_fires(minute: str, hour: str, tz: str, since: float, until: float) -> list[float]:
    """The oracle: step real minutes, read the wall clock, apply the DST rules.

    Fixed-time (neither minute nor hour begins with '*'): a wall time seen a second time
    (fall back) does not fire again; a wall time skipped (spring forward) fires at the
    first real minute after the gap. Frequent: every real minute whose wall time matches."""
    minutes, hours = _values(minute, 0, 59), _values(hour, 0, 23)
    fixed = not (minute.startswith("*") or hour.startswith("*"))
    zone = ZoneInfo(tz)

    def wall(t: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None)

    def matches(w: dt.datetime) -> bool:
        return w.minute in minutes and w.hour in hours

    out: set[float] = set()
    seen: set[dt.datetime] = set()
    t = (since // 60) * 60 - 2 * DAY  # early enough to have seen a first pass
    previous = wall(t - 60)
    while t <= until:
        w = wall(t)
        if fixed and w - previous > dt.timedelta(minutes=1):
            skipped = previous + dt.timedelta(minutes=1)
            while skipped < w:
                if matches(skipped):
                    out.add(t)
                skipped += dt.timedelta(minutes=1)
        if matches(w) and not (fixed and w in seen):
            out.add(t)
        seen.add(w)
        previous = w
        t += 60
    return sorted(x for x in out if since < x <= until)


def _field(draw: st.DrawFn, low: int, high: int, near: list[int]) -> str:
    value = st.one_of(st.sampled_from(near), st.integers(low, high))
    kind = draw(st.sampled_from(["*", "step", "one", "list", "range"]))
    if kind == "*":
        return "*"
    if kind == "step":
        return f"*/{draw(st.sampled_from([2, 3, 5, 7, 15, 20, 30]))}"
    if kind == "one":
        return str(draw(value))
    if kind == "list":
        return ",".join(str(v) for v in sorted(set(draw(st.lists(value, min_size=2, max_size=3)))))
    a, b = sorted((draw(value), draw(value)))
    step = draw(st.sampled_from(["", "", "/2", "/7"]))
    return f"{a}-{b}{step}"


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, str, float, float]:
    tz = draw(st.sampled_from([BERLIN, NEW_YORK]))
    minute = _field(draw, 0, 59, [0, 1, 15, 30, 59])
    hour = _field(draw, 0, 23, [0, 1, 2, 3])
    transition = draw(st.sampled_from(TRANSITIONS[tz]))
    since = transition + draw(st.integers(-2 * 86400, 86400)) + draw(st.sampled_from([0, 0.5]))
    until = since + draw(st.integers(1, 2 * 86400))
    return minute, hour, tz, since, until


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_fires_follow_the_dst_rules(case: tuple[str, str, str, float, float]) -> None:
    minute, hour, tz, since, until = case
    got = CronSpec(f"{minute} {hour} * * *", tz).fires(since, until)
    assert got == expected_fires(minute, hour, tz, since, until), f"{minute} {hour} * * * in {tz}"


@settings(max_examples=60, deadline=None)
@given(cases(), st.lists(st.floats(0, 1), min_size=1, max_size=6))
def test_fires_are_the_same_however_the_window_is_cut(
    case: tuple[str, str, str, float, float], cuts: list[float]
) -> None:
    """Daemons ask for (last, now] at arbitrary moments: the pieces must add up exactly."""
    minute, hour, tz, since, until = case
    spec = CronSpec(f"{minute} {hour} * * *", tz)
    points = [since, *sorted(since + c * (until - since) for c in cuts), until]
    pieces = [t for a, b in zip(points, points[1:], strict=False) for t in spec.fires(a, b)]
    assert pieces == spec.fires(since, until)


# -- macros -------------------------------------------------------------------------------------


def test_daily_macro_is_a_fixed_time_entry_across_a_spring_forward_night() -> None:
    """@daily is `0 0 * * *` (cronie): fixed time, its expression kept as written."""
    spec = CronSpec("@daily", BERLIN)
    assert spec.expr == "@daily" and spec.fixed
    assert fires_local("@daily", BERLIN, "2026-03-28T12:00", "2026-03-30T12:00") == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    ]


def test_hourly_macro_is_frequent_and_fires_both_passes_of_a_repeated_hour() -> None:
    assert not CronSpec("@HOURLY", BERLIN).fixed
    assert fires_local("@hourly", BERLIN, "2026-10-24T23:30", "2026-10-25T01:30") == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
    ]


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [("@reboot", "names no time"), ("@dayly", "not a macro"), ("@", "not a macro")],
)
def test_reboot_and_unknown_macros_are_refused_clearly(expr: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        CronSpec(expr)
    assert "\n" not in str(info.value) and repr(expr) in str(info.value)
