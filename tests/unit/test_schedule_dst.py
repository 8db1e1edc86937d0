"""A schedule's fires around its zone's next clock change (the dashboard's Schedules
page and `schedules list --json`): the skipped hour in spring, the repeated one in
autumn, each fire once in UTC."""

from __future__ import annotations

import datetime as dt

from jobrunner.config import ScheduleConfig
from jobrunner.ops.schedules import around_offset_change

BERLIN = "Europe/Berlin"


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_a_daily_fire_in_the_skipped_hour_moves_to_the_hours_end() -> None:
    sc = ScheduleConfig(name="n", cron="30 2 * * *", timezone=BERLIN, task="t:f")
    got = around_offset_change(sc, at("2027-03-20T12:00:00+00:00"))
    assert got is not None
    assert got["at"]["utc"].startswith("2027-03-28T01:00:00")  # 02:00 CET -> 03:00 CEST
    assert (got["offset_before"], got["offset_after"]) == (3600, 7200)
    assert [(f["local"], f["after"]) for f in got["fires"]] == [
        ("2027-03-26T02:30:00+01:00", False),
        ("2027-03-27T02:30:00+01:00", False),
        ("2027-03-28T03:00:00+02:00", True),  # 02:30 does not exist that day
        ("2027-03-29T02:30:00+02:00", True),
    ]


def test_an_hourly_fire_in_the_repeated_hour_is_shown_once() -> None:
    sc = ScheduleConfig(name="n", cron="15 * * * *", timezone=BERLIN, task="t:f")
    got = around_offset_change(sc, at("2027-10-30T12:00:00+00:00"))
    assert got is not None and (got["offset_before"], got["offset_after"]) == (7200, 3600)
    utc = [f["utc"] for f in got["fires"]]
    assert len(set(utc)) == len(utc) == 4
    assert [f["after"] for f in got["fires"]] == [False, False, True, True]


def test_no_change_in_utc_and_none_for_an_interval() -> None:
    assert (
        around_offset_change(
            ScheduleConfig(name="n", cron="0 * * * *", timezone="UTC", task="t:f"), 2e9
        )
        is None
    )
    assert (
        around_offset_change(ScheduleConfig(name="n", every=60.0, timezone=BERLIN, task="t:f"), 2e9)
        is None
    )
