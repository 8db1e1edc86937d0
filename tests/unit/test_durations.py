"""Durations as users write them: parse_duration and format_duration."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobrunner.durations import MAX_DURATION, format_duration, parse_duration, parse_time
from jobrunner.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("7d", 604_800.0),
        ("45", 45.0),  # a bare number is seconds
        ("0", 0.0),
        ("1.5", 1.5),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("0.1ms", 0.0001),
        (" 10s ", 10.0),
        ("10 s", 10.0),
        ("1h30m", 5400.0),  # compound: largest unit first, each once
        ("2d 12h", 216_000.0),
        ("1m30.5s", 90.5),
        ("1s500ms", 1.5),
        ("1d2h3m4s5ms", 93_784.005),
        (12, 12.0),  # TOML and JSON give numbers
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parses(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(
    "bad",
    [
        "-1",
        "-5s",
        -1,
        -0.5,
        "",
        "   ",
        "soon",
        "5 minutes",
        "5min",
        "5x",
        "1.2.3s",
        "s",
        "5s5",
        "1h30",  # a bare number only alone
        "30m1h",  # largest unit first
        "1h1h",
        "1h-30m",
        "h30m",
        "1e3",
        "nan",
        "inf",
        True,
        False,
        math.nan,
        math.inf,
        -math.inf,
    ],
)
def test_rejects_with_a_usage_error_naming_where(bad: object) -> None:
    with pytest.raises(UsageError) as info:
        parse_duration(bad, where="--backoff")  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("--backoff: ")
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_default_where_is_duration() -> None:
    with pytest.raises(UsageError, match=r"^duration: "):
        parse_duration("later")


def test_huge_numbers_are_a_usage_error_not_a_crash() -> None:
    # e.g. `submit --file` with {"delay": 1000...0}: JSON gives a Python int
    with pytest.raises(UsageError, match="^delay: "):
        parse_duration(10**400, where="delay")
    with pytest.raises(UsageError, match="^delay: "):
        parse_duration("9" * 400 + "d", where="delay")


@given(st.text())
def test_any_text_either_parses_or_raises_usage_error(text: str) -> None:
    try:
        value = parse_duration(text, where="x")
    except UsageError as exc:
        assert str(exc).startswith("x: ")
    else:
        assert math.isfinite(value) and value >= 0


def _a_duration(number: float) -> bool:
    """Finite, non-negative, and at most MAX_DURATION (100 years: beyond that, times
    cannot be shown and limits overflow)."""
    if isinstance(number, int):
        return 0 <= number <= MAX_DURATION
    return math.isfinite(number) and 0 <= number <= MAX_DURATION


@given(st.one_of(st.integers(), st.integers(min_value=10**300, max_value=10**330), st.floats()))
def test_any_number_either_parses_or_raises_usage_error(number: float) -> None:
    if _a_duration(number):
        assert parse_duration(number) == float(number)
    else:
        with pytest.raises(UsageError):
            parse_duration(number)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0ms"),
        (0.85, "850ms"),
        (1, "1.0s"),
        (12.34, "12.3s"),
        (60, "1m00s"),
        (245, "4m05s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (7800, "2h10m"),
        (86_400, "1d00h"),
        (3 * 86_400 + 4 * 3600 + 5, "3d04h"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# -- --at times -----------------------------------------------------------------------------------

# 2026-06-10 08:00 local time, whatever the machine's zone (local time is what --at reads)
NOW = dt.datetime(2026, 6, 10, 8, 0).timestamp()


def _local(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).isoformat()


@pytest.mark.parametrize(
    ("text", "local"),
    [
        ("09:00", "2026-06-10T09:00:00"),  # still ahead today
        ("07:30", "2026-06-11T07:30:00"),  # passed today: tomorrow's, as at(1) reads it
        ("08:00", "2026-06-11T08:00:00"),  # now is not ahead
        ("tomorrow 09:00", "2026-06-11T09:00:00"),
        ("Tomorrow 7:05:30", "2026-06-11T07:05:30"),
        ("today 07:30", "2026-06-10T07:30:00"),  # said so: today, passed (runs at once)
        ("2026-07-01T12:00", "2026-07-01T12:00:00"),  # ISO without an offset: local
    ],
)
def test_at_reads_clock_times_in_local_time(text: str, local: str) -> None:
    assert _local(parse_time(text, NOW)) == local


def test_at_with_an_offset_is_that_instant() -> None:
    assert (
        parse_time("2026-07-01T12:00:00Z", NOW)
        == dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC).timestamp()
    )


@pytest.mark.parametrize("bad", ["25:00", "9:60", "tomorrow", "yesterday 09:00", "9h", "noon"])
def test_at_refuses_what_is_not_a_time(bad: str) -> None:
    with pytest.raises(UsageError, match=r"^--at: .* is not a time \(use ISO 8601, HH:MM"):
        parse_time(bad, NOW)
