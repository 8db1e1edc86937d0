"""What the daemon's log says when missed fires are skipped or collapsed: one line, with
how many fires and which, for every misfire and overlap policy."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobrunner import models
from jobrunner.config import Config, ScheduleConfig
from jobrunner.daemon.scheduler import COUNT_AT_MOST, Scheduler, count_fires
from jobrunner.store import open_store
from jobrunner.store.base import Store

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC).timestamp()


def iso(minutes: int) -> str:
    return models.iso(NOW + 60 * minutes) or ""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(str(tmp_path / "jobs.db"))
    yield store
    store.close()


def lines_after_downtime(
    store: Store, caplog: pytest.LogCaptureFixture, **values: Any
) -> list[str]:
    """A schedule firing every minute, its daemon down for ten fires (all missed: back
    40 s after the tenth, with a 30 s grace); the scheduler's log lines on return."""
    sc = ScheduleConfig(name="tick", task="app.jobs:tick", misfire_grace=30.0, **values)
    s = Scheduler(Config(schedules={"tick": sc}), store)
    s.run_once(NOW)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jobrunner.scheduler"):
        s.run_once(NOW + 640)
    return [r.getMessage() for r in caplog.records]


TIMETABLES = [{"every": 60.0}, {"cron": "* * * * *"}]


@pytest.mark.parametrize("timetable", TIMETABLES, ids=["every", "cron"])
@pytest.mark.parametrize(
    ("misfire", "overlap", "expected"),
    [
        ("skip", "skip", "10 missed fire(s) from {1} to {10} skipped (misfire=skip: none"),
        ("skip", "allow", "10 missed fire(s) from {1} to {10} skipped (misfire=skip: none"),
        ("once", "skip", "10 fires from {1} to {10} collapsed into one job, for {10}"),
        ("once", "allow", "9 missed fire(s) from {1} to {9} skipped (misfire=once: one job"),
        ("all", "allow", "7 missed fire(s) from {1} to {7} skipped (misfire=all: jobs for"),
        ("all", "skip", "7 missed fire(s) from {1} to {7} skipped (misfire=all: jobs for"),
    ],
)
def test_dropped_fires_are_counted_in_one_line(
    store: Store,
    caplog: pytest.LogCaptureFixture,
    timetable: dict[str, Any],
    misfire: str,
    overlap: str,
    expected: str,
) -> None:
    lines = lines_after_downtime(
        store, caplog, misfire=misfire, overlap=overlap, max_catchup=3, **timetable
    )
    wanted = expected.format(*(iso(m) for m in range(11)))
    assert [line for line in lines if wanted in line] != [], lines
    assert sum("skipped" in line or "collapsed" in line for line in lines) == 1, lines


def test_a_fire_skipped_behind_a_running_job_is_counted(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    sc = ScheduleConfig(name="tick", task="app.jobs:tick", every=60.0, misfire_grace=300.0)
    s = Scheduler(Config(schedules={"tick": sc}), store)
    s.run_once(NOW)
    assert len(s.run_once(NOW + 61)[0]) == 1  # its job stays queued
    with caplog.at_level(logging.INFO, logger="jobrunner.scheduler"):
        s.run_once(NOW + 185)
    assert any(
        f"2 fire(s) from {iso(2)} to {iso(3)} skipped, its previous job is still queued" in r
        for r in (r.getMessage() for r in caplog.records)
    ), caplog.records


def test_count_fires_is_exact_for_intervals_and_bounded_for_cron() -> None:
    every = ScheduleConfig(name="a", task="m:f", every=1.0)
    assert count_fires(every, NOW, NOW + 86400 * 365) == str(86400 * 365)
    assert count_fires(every, NOW + 0.5, NOW + 3) == "3"
    cron = ScheduleConfig(name="a", task="m:f", cron="* * * * * *")
    assert count_fires(cron, NOW, NOW + 86400) == f"more than {COUNT_AT_MOST}"
    assert count_fires(cron, NOW, NOW + 10) == "10"
