"""The scheduler service: Scheduler.run_once(now) against a real SQLite store.

Time is passed in (huey's style): every test says what `now` is; nothing patches the
clock. Two "daemons" are two Scheduler instances on two connections to one file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobrunner.clock import FakeClock
from jobrunner.config import Config, ScheduleConfig, TaskConfig
from jobrunner.daemon.scheduler import (
    RUN_BUDGET,
    Scheduler,
    choose,
    fires_between,
    job_for_fire,
)
from jobrunner.lifecycle import State
from jobrunner.models import ClaimRequest, Job, JobInsert
from jobrunner.store import open_store
from jobrunner.store.base import Store

MINUTE = 60.0
HOUR = 3600.0
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


NOW = utc("2026-06-01T12:00")  # a whole minute, hour and day


def sched(name: str = "tick", **values: Any) -> ScheduleConfig:
    if "cron" not in values:
        values.setdefault("every", 60.0)
    if "command" not in values:
        values.setdefault("task", "app.jobs:tick")
    return ScheduleConfig(name=name, **values)


def config(*schedules: ScheduleConfig, **tasks: TaskConfig) -> Config:
    return Config(schedules={s.name: s for s in schedules}, tasks=dict(tasks))


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.db")


@pytest.fixture
def connect(path: str) -> Iterator[Callable[[], Store]]:
    """Open another connection to the one database file; all closed after the test."""
    opened: list[Store] = []

    def _connect() -> Store:
        store = open_store(path)
        opened.append(store)
        return store

    yield _connect
    for store in opened:
        store.close()


@pytest.fixture
def store(connect: Callable[[], Store]) -> Store:
    return connect()


def jobs_of(store: Store, name: str | None = None) -> list[Job]:
    jobs = [j for j in store.job_list(limit=1_000_000) if j.schedule is not None]
    if name is not None:
        jobs = [j for j in jobs if j.schedule == name]
    return sorted(jobs, key=lambda j: (j.schedule or "", j.scheduled_for or 0.0))


def fire_times(store: Store, name: str | None = None) -> list[float]:
    return [j.scheduled_for for j in jobs_of(store, name) if j.scheduled_for is not None]


def state_of(store: Store, name: str) -> Any:
    return {s.name: s for s in store.schedule_list()}.get(name)


# -- the basics -----------------------------------------------------------------------------------


def test_no_schedules_no_work(store: Store) -> None:
    assert Scheduler(config(), store).run_once(NOW) == ([], None)
    assert store.schedule_list() == []


def test_a_new_schedule_starts_from_now_and_never_fires_for_the_past(store: Store) -> None:
    s = Scheduler(config(sched(every=60.0)), store)
    assert s.run_once(NOW + 0.5) == ([], NOW + 60)
    st = state_of(store, "tick")
    assert (st.last_fire, st.paused, st.last_job_id) == (NOW + 0.5, False, None)
    assert jobs_of(store) == []


def test_a_due_fire_makes_one_job_carrying_schedule_and_scheduled_for(store: Store) -> None:
    sc = sched(
        every=60.0,
        task="app.jobs:tick",
        args=[1, "a"],
        kwargs={"k": True},
        queue="cron",
        priority=7,
        retries=2,
        backoff=5.0,
        timeout=30.0,
    )
    s = Scheduler(config(sc), store)
    s.run_once(NOW + 0.5)
    ids, upcoming = s.run_once(NOW + 60.25)
    assert len(ids) == 1 and upcoming == NOW + 120
    job = store.job_get(ids[0])
    assert job is not None
    assert (job.schedule, job.scheduled_for, job.run_at) == ("tick", NOW + 60, NOW + 60)
    assert job.state is State.QUEUED
    assert (job.task, job.command, job.args, job.kwargs) == (
        "app.jobs:tick",
        None,
        [1, "a"],
        {"k": True},
    )
    assert (job.queue, job.priority, job.max_attempts, job.backoff, job.timeout) == (
        "cron",
        7,
        3,
        5.0,
        30.0,
    )
    assert job.created_at == NOW + 60.25
    assert not job.options.get("manual")
    assert state_of(store, "tick").last_fire == NOW + 60
    assert state_of(store, "tick").last_job_id == job.id
    # the same moment again, and a moment before the next fire: nothing new
    assert s.run_once(NOW + 60.25) == ([], NOW + 120)
    assert s.run_once(NOW + 119.99) == ([], NOW + 120)
    assert len(jobs_of(store)) == 1


def test_a_fire_exactly_at_now_is_made_once(store: Store) -> None:
    s = Scheduler(config(sched(every=60.0)), store)
    s.run_once(NOW - 30)
    assert len(s.run_once(NOW)[0]) == 1
    assert s.run_once(NOW) == ([], NOW + 60)
    assert fire_times(store) == [NOW]


def test_a_command_schedule_makes_a_command_job(store: Store) -> None:
    s = Scheduler(config(sched(command=["echo", "hi"], every=60.0)), store)
    s.run_once(NOW - 1)
    (job_id,) = s.run_once(NOW)[0]
    job = store.job_get(job_id)
    assert job is not None and (job.task, job.command) == (None, ["echo", "hi"])


def test_a_schedule_may_run_a_named_task(store: Store) -> None:
    report = TaskConfig(name="report", function="app.reports:run", queue="slow", retries=5)
    s = Scheduler(config(sched(task="report", every=60.0), report=report), store)
    s.run_once(NOW - 1)
    (job_id,) = s.run_once(NOW)[0]
    job = store.job_get(job_id)
    assert job is not None
    assert (job.task, job.queue, job.max_attempts) == ("app.reports:run", "slow", 6)
    assert job.options.get("task_name") == "report"
    assert job.label == "report"


def test_the_next_fire_is_the_earliest_of_all_schedules(store: Store) -> None:
    s = Scheduler(
        config(
            sched("slow", every=3600.0),
            sched("fast", every=90.0),
            sched("nightly", cron="0 2 * * *"),
        ),
        store,
    )
    assert s.run_once(NOW + 1) == ([], NOW + 90)


def test_cron_schedules_fire_on_wall_time_in_their_zone(store: Store) -> None:
    s = Scheduler(config(sched(cron="0 14 * * *", timezone=NEW_YORK)), store)
    _, upcoming = s.run_once(NOW)  # 08:00 in New York
    assert upcoming == utc("2026-06-01T18:00")
    s.run_once(utc("2026-06-01T18:00:01"))
    assert fire_times(store) == [utc("2026-06-01T18:00")]


def test_a_schedule_added_later_starts_from_when_it_was_first_seen(store: Store) -> None:
    s = Scheduler(config(sched("a", every=60.0)), store)
    s.run_once(NOW)
    s.config = config(sched("a", every=60.0), sched("b", every=60.0))
    s.run_once(NOW + 600.5)
    assert fire_times(store, "b") == []
    s.run_once(NOW + 660.5)
    assert fire_times(store, "b") == [NOW + 660]


def test_a_schedule_missing_from_the_config_is_left_alone(store: Store) -> None:
    s = Scheduler(config(sched("a", every=60.0), sched("b", every=60.0)), store)
    s.run_once(NOW)
    s.config = config(sched("a", every=60.0))
    s.run_once(NOW + 120)
    assert fire_times(store, "b") == []
    assert state_of(store, "b").last_fire == NOW


# -- misfire: fires missed while no daemon ran ----------------------------------------------------


def test_choose_keeps_on_time_fires_and_applies_the_policy_to_missed_ones() -> None:
    due = [100.0, 200.0, 300.0, 400.0, 490.0, 500.0]
    now = 500.0
    grace: dict[str, Any] = {"misfire_grace": 15.0}
    assert choose(sched(misfire="skip", **grace), due, now) == [490.0, 500.0]
    assert choose(sched(misfire="once", **grace), due, now) == [400.0, 490.0, 500.0]
    assert choose(sched(misfire="all", **grace), due, now) == due
    assert choose(sched(misfire="all", max_catchup=2, **grace), due, now) == [
        300.0,
        400.0,
        490.0,
        500.0,
    ]
    # a fire exactly `misfire_grace` old is still on time
    assert choose(sched(misfire="skip", misfire_grace=10.0), [490.0], 500.0) == [490.0]
    assert choose(sched(misfire="skip", misfire_grace=9.9), [490.0], 500.0) == []
    assert choose(sched(misfire="once"), [], now) == []


@pytest.mark.parametrize(
    ("misfire", "max_catchup", "expected_minutes"),
    [
        ("skip", 100, [10]),
        ("once", 100, [9, 10]),
        ("all", 100, list(range(1, 11))),
        ("all", 3, [7, 8, 9, 10]),
    ],
)
def test_misfire_policy_after_downtime(
    store: Store, misfire: str, max_catchup: int, expected_minutes: list[int]
) -> None:
    sc = sched(
        every=60.0, misfire=misfire, max_catchup=max_catchup, misfire_grace=30.0, overlap="allow"
    )
    s = Scheduler(config(sc), store)
    s.run_once(NOW)
    # down for ten minutes; back 5 s after the tenth fire, which is on time
    ids, upcoming = s.run_once(NOW + 605)
    assert fire_times(store) == [NOW + 60 * m for m in expected_minutes]
    assert len(ids) == len(expected_minutes)
    assert upcoming == NOW + 660
    # what was skipped is accounted for: it never comes back
    assert state_of(store, "tick").last_fire == NOW + 600
    s.run_once(NOW + 661)
    assert fire_times(store)[-1] == NOW + 660
    assert len(fire_times(store)) == len(expected_minutes) + 1


def test_misfire_skip_keeps_fires_within_the_grace(store: Store) -> None:
    s = Scheduler(
        config(sched(every=10.0, misfire="skip", misfire_grace=60.0, overlap="allow")), store
    )
    s.run_once(NOW)
    s.run_once(NOW + 55)  # a slow tick, not downtime: all five fires are on time
    assert fire_times(store) == [NOW + 10 * k for k in range(1, 6)]


def test_default_max_catchup_is_100(store: Store) -> None:
    s = Scheduler(
        config(sched(every=1.0, misfire="all", misfire_grace=1.0, overlap="allow")), store
    )
    s.run_once(NOW)
    s.run_once(NOW + 500)
    times = fire_times(store)
    assert len(times) == 102  # the latest 100 missed, plus two within the 1 s grace
    assert times == [NOW + k for k in range(399, 501)]


# -- overlap --------------------------------------------------------------------------------------


@pytest.mark.parametrize("misfire", ["once", "all"])
def test_overlap_skip_waits_for_the_previous_job_to_end(store: Store, misfire: str) -> None:
    """On time, a fire is skipped while the previous job waits or runs (with misfire =
    "all" too: nothing was missed)."""
    s = Scheduler(config(sched(every=60.0, overlap="skip", misfire=misfire)), store)
    s.run_once(NOW)
    (first,) = s.run_once(NOW + 60)[0]
    assert s.run_once(NOW + 120) == ([], NOW + 180)  # still queued: skipped
    claimed = store.job_claim(ClaimRequest(owner="d1", now=NOW + 125, limit=5))
    assert [j.id for j in claimed] == [first]
    assert s.run_once(NOW + 180)[0] == []  # running: skipped
    assert [j.state for j in store.schedule_last_jobs("tick", NOW + 180)] == ["running"]
    store.job_cancel(first, NOW + 200)  # a running job: cancel is requested only
    assert s.run_once(NOW + 240)[0] == []
    _finish(store, first, "d1", NOW + 250)
    assert [j.state for j in store.schedule_last_jobs("tick", NOW + 240)] == ["succeeded"]
    (second,) = s.run_once(NOW + 300)[0]
    assert fire_times(store) == [NOW + 60, NOW + 300]  # the skipped fires never come back
    assert second != first


def test_overlap_skip_makes_one_job_when_several_fires_are_due_on_time(store: Store) -> None:
    s = Scheduler(config(sched(every=10.0, overlap="skip", misfire="all")), store)
    s.run_once(NOW)
    assert len(s.run_once(NOW + 55)[0]) == 1  # a slow tick, not downtime
    assert fire_times(store) == [NOW + 50]


def test_overlap_skip_counts_a_waiting_job_of_any_kind(store: Store) -> None:
    """A jittered job waits in `scheduled` until its run_at: still the previous job."""
    s = Scheduler(config(sched(every=60.0, overlap="skip", jitter=50.0)), store, random.Random(1))
    s.run_once(NOW)
    (first,) = s.run_once(NOW + 60)[0]
    job = store.job_get(first)
    assert job is not None and job.state in (State.SCHEDULED, State.QUEUED)
    assert s.run_once(NOW + 120)[0] == []
    store.job_cancel(first, NOW + 121)
    assert len(s.run_once(NOW + 180)[0]) == 1


def test_overlap_allow_stacks_jobs(store: Store) -> None:
    s = Scheduler(config(sched(every=60.0, overlap="allow", misfire="all")), store)
    s.run_once(NOW)
    for k in range(1, 4):
        s.run_once(NOW + 60 * k)
    s.run_once(NOW + 300)
    assert fire_times(store) == [NOW + 60 * k for k in range(1, 6)]
    assert all(j.state is State.QUEUED for j in jobs_of(store))


def test_a_manual_run_after_the_last_fire_counts_for_overlap_skip(store: Store) -> None:
    """The previous fire's job and every manual run made since are waited for, not only
    the latest by scheduled_for."""
    sc = sched(every=60.0, overlap="skip")
    s = Scheduler(config(sc), store)
    s.run_once(NOW)
    (fired_job,) = s.run_once(NOW + 60)[0]
    manual = job_for_fire(sc, config(sc), NOW + 61, random.Random(0), manual=True, now=NOW + 61)
    (made,) = store.job_insert_many([manual], NOW + 61)
    store.job_cancel(made.id, NOW + 62)  # the manual run ended; the fire's job still waits
    assert s.run_once(NOW + 120)[0] == []
    assert s.run_once(NOW + 180)[0] == []  # behind a skipped fire and the manual run
    store.job_cancel(fired_job, NOW + 181)
    assert len(s.run_once(NOW + 240)[0]) == 1


def finish_jobs(store: Store, now: float, owner: str = "d1") -> list[int]:
    """Run every job that is due at `now` to success: claim it and end it."""
    claimed = store.job_claim(ClaimRequest(owner=owner, now=now, limit=1000))
    for job in claimed:
        _finish(store, job.id, owner, now)
    return [j.id for j in claimed]


def test_misfire_all_with_overlap_skip_catches_up_one_fire_after_another(store: Store) -> None:
    """Down five minutes: each missed fire gets a job, oldest first, each made only once
    the previous one has ended; then the timetable goes on."""
    s = Scheduler(config(sched(every=60.0, misfire="all", misfire_grace=30.0)), store)
    s.run_once(NOW)
    now = NOW + 305  # 60 to 240 missed, 300 on time
    ids, again = s.run_once(now)
    assert fire_times(store) == [NOW + 60] and len(ids) == 1
    assert now < again <= now + 1  # look again soon: the job may end at any moment
    assert s.run_once(now) == ([], again)  # still queued: the next fire waits
    for k in range(2, 5):  # each job takes 10 s
        assert finish_jobs(store, now + 5) == ids
        now += 10
        ids, again = s.run_once(now)
        assert fire_times(store) == [NOW + 60 * m for m in range(1, k + 1)], k
        assert len(ids) == 1 and now < again <= now + 1
    # 300, due when the catch-up began, waited for its last job: made now, late
    assert s.run_once(now + 1) == ([], now + 1 + 0.1)
    finish_jobs(store, now + 5)
    ids, again = s.run_once(now + 10)
    assert fire_times(store)[-1] == NOW + 300 and again == NOW + 360
    finish_jobs(store, now + 15)
    assert len(s.run_once(NOW + 360.5)[0]) == 1  # back to the timetable
    jobs = jobs_of(store)
    assert [j.scheduled_for for j in jobs] == [NOW + 60 * m for m in range(1, 7)]
    for previous, job in zip(jobs, jobs[1:], strict=False):  # never two at once
        assert previous.finished_at is not None and job.created_at >= previous.finished_at
    assert state_of(store, "tick").last_fire == NOW + 360


def run_for(
    s: Scheduler, store: Store, start: float, seconds: float, job_seconds: float
) -> list[float]:
    """A daemon's life on a fake clock: the scheduler runs every second and each job it
    makes runs `job_seconds` from when it was made; the fires whose job was made, as
    seconds from `start`."""
    clock = FakeClock(start)
    ends: dict[int, float] = {}
    while clock.now() <= start + seconds:
        for job_id, end in list(ends.items()):
            if end <= clock.now():
                store.job_claim(ClaimRequest(owner="d1", now=end, limit=1000))
                _finish(store, job_id, "d1", end)
                del ends[job_id]
        for job_id in s.run_once(clock.now())[0]:
            ends[job_id] = clock.now() + job_seconds
        clock.advance(1.0)
    return [t - start for t in fire_times(store)]


def test_a_catch_up_in_turn_never_skips_the_fire_due_when_it_began(store: Store) -> None:
    """Three nights missed, back 10 s after tonight's fire: the three nights one after
    another, then tonight's, though it is looked at every second while the catch-up's
    last job runs."""
    s = Scheduler(config(sched("nightly", cron="0 2 * * *", misfire="all")), store)
    tonight = utc("2026-06-01T02:00")
    s.run_once(tonight - 3.5 * 86400)
    fires = run_for(s, store, tonight, 100, job_seconds=5)
    assert fires == [-3 * 86400, -2 * 86400, -86400, 0]
    made = [j.created_at - tonight for j in jobs_of(store)]
    assert made == [0, 5, 10, 15]  # each as the previous one ended


def test_fires_due_during_a_catch_up_in_turn_are_not_added_to_it(store: Store) -> None:
    """Jobs that outlast the interval (100 s, every minute): the catch-up makes the fires
    missed when it began (60 to 240), then one job for the latest fire due meanwhile (660),
    as overlap = "skip" does, and is over: it does not go on for ever."""
    s = Scheduler(config(sched(every=60.0, misfire="all", misfire_grace=30.0)), store)
    s.run_once(NOW)
    fires = run_for(s, store, NOW + 305, 700, job_seconds=100)
    assert fires == [m - 305 for m in (60, 120, 180, 240, 660, 840, 960)]
    jobs = jobs_of(store)
    for previous, job in zip(jobs, jobs[1:], strict=False):  # never two at once
        assert previous.finished_at is not None and job.created_at >= previous.finished_at


def test_after_a_catch_up_in_turn_fires_on_time_are_made_as_ever(store: Store) -> None:
    s = Scheduler(config(sched(every=10.0, misfire="all", misfire_grace=60.0)), store)
    s.run_once(NOW)
    s.run_once(NOW + 75)  # 10 missed (the only one): its job
    finish_jobs(store, NOW + 76)
    # a slow tick after it ended: 20 to 70 due on time, and 80, 90 after it ended
    assert len(s.run_once(NOW + 95)[0]) == 1
    assert fire_times(store) == [NOW + 10, NOW + 90]  # the latest, as overlap = "skip" makes


def test_a_catch_up_in_turn_keeps_the_latest_max_catchup_missed_fires(store: Store) -> None:
    s = Scheduler(
        config(sched(every=60.0, misfire="all", max_catchup=2, misfire_grace=30.0)), store
    )
    s.run_once(NOW)
    now = NOW + 605  # 60 to 540 missed, 600 on time
    for _ in range(5):
        s.run_once(now)
        finish_jobs(store, now)
    assert fire_times(store) == [NOW + 480, NOW + 540, NOW + 600]  # what `choose` keeps
    assert state_of(store, "tick").last_fire == NOW + 600


def test_a_catch_up_in_turn_waits_for_a_job_left_from_before_the_downtime(store: Store) -> None:
    s = Scheduler(config(sched(every=60.0, misfire="all", misfire_grace=30.0)), store)
    s.run_once(NOW)
    (before,) = s.run_once(NOW + 60)[0]
    store.job_claim(ClaimRequest(owner="d1", now=NOW + 61, limit=5))  # still running
    assert s.run_once(NOW + 305)[0] == []
    assert state_of(store, "tick").last_fire == NOW + 60  # nothing skipped: it waits
    _finish(store, before, "d1", NOW + 400)
    s.run_once(NOW + 401)
    assert fire_times(store) == [NOW + 60, NOW + 120]


def test_a_manual_run_does_not_let_a_catch_up_fire_overlap(store: Store) -> None:
    sc = sched(every=60.0, misfire="all", misfire_grace=30.0)
    s = Scheduler(config(sc), store)
    s.run_once(NOW)
    (first,) = s.run_once(NOW + 305)[0]
    store.job_claim(ClaimRequest(owner="d1", now=NOW + 306, limit=5))
    # a manual run, later than every catch-up fire, made and ended meanwhile
    manual = job_for_fire(sc, config(sc), NOW + 307, random.Random(0), manual=True, now=NOW + 307)
    (made,) = store.job_insert_many([manual], NOW + 307)
    store.job_cancel(made.id, NOW + 308)
    assert s.run_once(NOW + 309)[0] == []  # the catch-up job still runs
    _finish(store, first, "d1", NOW + 310)
    assert len(s.run_once(NOW + 311)[0]) == 1
    assert fire_times(store)[:2] == [NOW + 60, NOW + 120]


def test_waiting_looks_again_sooner_than_the_poll_and_less_often_as_it_goes_on(
    store: Store,
) -> None:
    s = Scheduler(config(sched(every=3600.0, misfire="all", misfire_grace=30.0)), store)
    s.run_once(NOW)
    now = NOW + 3 * 3600 + 5
    _, again = s.run_once(now)
    waits = []
    for dt_ in (0.0, 1.0, 5.0, 30.0, 600.0):
        _, again = s.run_once(now + dt_)
        waits.append(again - (now + dt_))
    assert all(0 < w <= 1.0 for w in waits), waits  # [daemon] poll_interval at most
    assert waits == sorted(waits) and waits[0] < 0.1, waits


def test_a_catch_up_in_turn_leaves_other_schedules_alone(store: Store) -> None:
    s = Scheduler(
        config(
            sched("nightly", cron="0 2 * * *", misfire="all"),
            sched("tick", every=60.0, overlap="allow"),
        ),
        store,
    )
    s.run_once(NOW - 3 * 86400)
    s.run_once(NOW + 0.5)
    s.run_once(NOW + 60.5)
    assert fire_times(store, "nightly") == [utc("2026-05-30T02:00")]  # its job waits
    assert fire_times(store, "tick")[-2:] == [NOW, NOW + 60]  # the timetable goes on


def test_two_daemons_catch_up_in_turn_one_fire_at_a_time(connect: Callable[[], Store]) -> None:
    store, other = connect(), connect()
    sc = sched(every=60.0, misfire="all", misfire_grace=30.0)
    a, b = Scheduler(config(sc), store), Scheduler(config(sc), other)
    a.run_once(NOW)
    now = NOW + 245  # 60 to 180 missed, 240 on time
    for k in range(1, 5):
        a.run_once(now)
        b.run_once(now)
        assert len(fire_times(store)) == k
        finish_jobs(store, now)
    assert fire_times(store) == [NOW + 60 * m for m in range(1, 5)]


def _finish(store: Store, job_id: int, owner: str, now: float) -> None:
    from jobrunner.lifecycle import Outcome
    from jobrunner.models import AttemptEnd

    job = store.job_get(job_id)
    assert job is not None
    end = AttemptEnd(job_id, job.attempts, Outcome.SUCCEEDED, State.SUCCEEDED, finished_at=now)
    assert store.job_end_many(owner, [end]) == [True]


# -- pause and resume -----------------------------------------------------------------------------


def test_a_paused_schedule_does_not_fire_and_resumes_from_the_resume(store: Store) -> None:
    s = Scheduler(
        config(sched("a", every=60.0, misfire="all", overlap="allow"), sched("b", every=90.0)),
        store,
    )
    s.run_once(NOW)
    store.schedule_set_paused("a", True, NOW + 10)
    assert state_of(store, "a").paused
    _, upcoming = s.run_once(NOW + 300)
    assert fire_times(store, "a") == []
    assert upcoming == NOW + 360  # only b's timetable counts
    store.schedule_set_paused("a", False, NOW + 400.5)
    assert not state_of(store, "a").paused
    s.run_once(NOW + 401)
    assert fire_times(store, "a") == []  # no catch-up for the paused time, even with misfire=all
    s.run_once(NOW + 481)
    assert fire_times(store, "a") == [NOW + 420, NOW + 480]


def test_pausing_a_schedule_no_daemon_has_seen_yet(store: Store) -> None:
    store.schedule_set_paused("a", True, NOW)
    s = Scheduler(config(sched("a", every=60.0)), store)
    s.run_once(NOW + 600)
    assert fire_times(store) == []
    assert state_of(store, "a").paused


def test_pause_between_reading_and_firing_wins(connect: Callable[[], Store]) -> None:
    """The compare-and-set only moves an unpaused schedule on."""
    store, other = connect(), connect()
    s = Scheduler(
        config(sched(every=60.0)),
        cast(Store, _Hooked(store, lambda: other.schedule_set_paused("tick", True, NOW))),
    )
    Scheduler(config(sched(every=60.0)), other).run_once(NOW - 1)
    assert s.run_once(NOW + 600)[0] == []
    assert fire_times(store) == []


# -- exactly once ---------------------------------------------------------------------------------


class _Hooked:
    """A real store whose schedule_fire first runs `before` (once), e.g. another daemon's
    whole tick, so the race between reading a schedule and firing it happens on demand."""

    def __init__(self, store: Store, before: Callable[[], Any] | None = None) -> None:
        self._store = store
        self.before = before

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def schedule_fire(
        self, name: str, expected: float | None, new: float, jobs: Sequence[JobInsert], now: float
    ) -> list[int] | None:
        before, self.before = self.before, None
        if before is not None:
            before()
        return self._store.schedule_fire(name, expected, new, jobs, now)


class Crash(Exception):
    pass


class _CrashMidFire:
    """A real store that dies inside the fire's transaction, after its first job row was
    written and before the commit: what a daemon killed mid-fire leaves behind."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def schedule_fire(
        self, name: str, expected: float | None, new: float, jobs: Sequence[JobInsert], now: float
    ) -> list[int] | None:
        def dying() -> Iterator[JobInsert]:
            yield from jobs[:1]
            raise Crash("killed mid-fire")

        if expected is None:
            return self._store.schedule_fire(name, expected, new, jobs, now)
        # the store writes the jobs one by one inside its transaction
        return self._store.schedule_fire(name, expected, new, cast(list[JobInsert], dying()), now)


def test_two_daemons_at_the_same_moment_make_one_job(connect: Callable[[], Store]) -> None:
    cfg = config(sched(every=60.0))
    a, b = Scheduler(cfg, connect()), Scheduler(cfg, connect())
    a.run_once(NOW)
    b.run_once(NOW)
    assert len(a.run_once(NOW + 60)[0]) == 1
    assert b.run_once(NOW + 60)[0] == []
    assert b.run_once(NOW + 60.5)[0] == []
    assert fire_times(connect()) == [NOW + 60]


def test_a_daemon_that_loses_the_race_makes_nothing(connect: Callable[[], Store]) -> None:
    cfg = config(sched(every=60.0, misfire="all", overlap="allow"))
    store_a, store_b = connect(), connect()
    b = Scheduler(cfg, store_b)
    proxy = _Hooked(store_a)
    a = Scheduler(cfg, cast(Store, proxy))
    a.run_once(NOW)
    # a reads last_fire, then b fires first (a little later by its own clock), then a tries
    proxy.before = lambda: b.run_once(NOW + 130)
    assert a.run_once(NOW + 125)[0] == []
    assert fire_times(store_a) == [NOW + 60, NOW + 120]
    assert a.run_once(NOW + 181)[0] != []
    assert fire_times(store_a) == [NOW + 60, NOW + 120, NOW + 180]


def test_schedule_fire_is_compare_and_set(store: Store) -> None:
    s = Scheduler(config(sched(every=60.0)), store)
    s.run_once(NOW)
    job = job_for_fire(sched(every=60.0), config(), NOW + 60, random.Random(0))
    assert store.schedule_fire("tick", NOW - 1, NOW + 60, [job], NOW + 61) is None  # stale
    assert fire_times(store) == [] and state_of(store, "tick").last_fire == NOW
    assert store.schedule_fire("tick", NOW, NOW + 60, [job], NOW + 61) is not None
    assert store.schedule_fire("tick", NOW, NOW + 60, [job], NOW + 61) is None  # moved on
    assert fire_times(store) == [NOW + 60]


def test_one_fire_one_job_even_past_the_compare_and_set(store: Store) -> None:
    """The unique (schedule, scheduled_for) index: a second job for a fire is not made."""
    s = Scheduler(config(sched(every=60.0)), store)
    s.run_once(NOW)
    s.run_once(NOW + 60)
    again = job_for_fire(sched(every=60.0), config(), NOW + 60, random.Random(0))
    fresh = job_for_fire(sched(every=60.0), config(), NOW + 120, random.Random(0))
    ids = store.schedule_fire("tick", NOW + 60, NOW + 120, [again, fresh], NOW + 121)
    assert ids is not None and len(ids) == 1
    assert fire_times(store) == [NOW + 60, NOW + 120]
    assert state_of(store, "tick").last_fire == NOW + 120


def test_a_crash_in_the_middle_of_a_fire_leaves_nothing_and_the_restart_fires_once(
    connect: Callable[[], Store],
) -> None:
    cfg = config(sched(every=60.0, misfire="all", overlap="allow"))
    first = Scheduler(cfg, cast(Store, _CrashMidFire(connect())))
    first.run_once(NOW)
    with pytest.raises(Crash):
        first.run_once(NOW + 180.5)
    fresh = connect()
    assert fire_times(fresh) == []  # the job row written before the crash was rolled back
    assert state_of(fresh, "tick").last_fire == NOW
    restarted = Scheduler(cfg, fresh)
    assert len(restarted.run_once(NOW + 181)[0]) == 3
    assert restarted.run_once(NOW + 181)[0] == []
    assert fire_times(fresh) == [NOW + 60, NOW + 120, NOW + 180]


# -- jitter and manual runs -----------------------------------------------------------------------


def test_jitter_delays_run_at_but_not_scheduled_for(store: Store) -> None:
    s = Scheduler(config(sched(every=60.0, jitter=30.0, overlap="allow")), store, random.Random(7))
    s.run_once(NOW)
    for k in range(1, 21):
        s.run_once(NOW + 60 * k)
    jobs = jobs_of(store)
    assert [j.scheduled_for for j in jobs] == [NOW + 60 * k for k in range(1, 21)]
    delays = [j.run_at - (j.scheduled_for or 0) for j in jobs]
    assert all(0 <= d <= 30 for d in delays)
    assert len({round(d, 6) for d in delays}) > 10  # actually random
    assert all(j.state is State.SCHEDULED for j in jobs if j.run_at > j.created_at)


def test_schedule_states_names_every_schedule_asked_for_seen_or_not(store: Store) -> None:
    """What `schedules list` reads: one row per configured name, in its order; a schedule
    no daemon has seen has no last fire, but its manual run is its last job."""
    sc = sched("fresh", every=3600.0)
    manual = job_for_fire(sc, config(sc), NOW, random.Random(0), manual=True, now=NOW)
    (made,) = store.job_insert_many([manual], NOW)
    Scheduler(config(sched("seen", every=60.0)), store).run_once(NOW - 30)
    store.schedule_set_paused("paused", True, NOW)
    states = store.schedule_states(["seen", "fresh", "paused", "unknown"])
    assert [(s.name, s.last_fire, s.paused, s.last_job_id) for s in states] == [
        ("seen", NOW - 30, False, None),
        ("fresh", None, False, made.id),
        ("paused", NOW, True, None),
        ("unknown", None, False, None),
    ]
    assert store.schedule_states([]) == []


def test_schedule_last_jobs_is_the_last_fire_s_job_and_the_manual_runs_since(
    store: Store,
) -> None:
    sc = sched(every=60.0)

    def manual(at: float) -> int:
        job = job_for_fire(sc, config(sc), at, random.Random(0), manual=True, now=at)
        return store.job_insert_many([job], at)[0].id

    early = manual(NOW - 5)  # before any fire: seen only while no fire has a job
    assert [j.id for j in store.schedule_last_jobs("tick", NOW - 10)] == [early]
    s = Scheduler(config(sc), store)
    s.run_once(NOW)
    (fired,) = s.run_once(NOW + 60)[0]
    after = [manual(NOW + 61), manual(NOW + 130)]
    # the last fire moved on past skipped fires (120): still its job, and every run since
    for last in (NOW + 60, NOW + 120, NOW + 180):
        assert [j.id for j in store.schedule_last_jobs("tick", last)] == [fired, *after]
    assert store.schedule_last_jobs("other", NOW + 180) == []


def test_a_manual_fire_runs_now_and_is_marked(store: Store) -> None:
    sc = sched(every=3600.0, jitter=600.0)
    job = job_for_fire(sc, config(sc), NOW + 12.5, random.Random(0), manual=True, now=NOW + 12.5)
    assert (job.schedule, job.scheduled_for, job.run_at) == ("tick", NOW + 12.5, NOW + 12.5)
    assert job.options.get("manual") is True
    regular = job_for_fire(sc, config(sc), NOW, random.Random(0))
    assert not regular.options.get("manual")


# -- bounded work: a long catch-up goes on over several runs --------------------------------------


class CroniterSteps:
    """Counts the wall times croniter computes (its get_next and get_prev calls)."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("get_next", "get_prev"):
            mp.setattr(croniter, name, self._counted(getattr(croniter, name)))

    def _counted(self, real: Any) -> Any:
        def counted(it: croniter, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(it, *args, **kwargs)

        return counted


def run_until_caught_up(s: Scheduler, now: float, limit: int = 1000) -> list[list[int]]:
    """run_once(now) until it stops asking to run again at once; each run's new job ids."""
    runs = []
    for _ in range(limit):
        ids, upcoming = s.run_once(now)
        runs.append(ids)
        if upcoming != now:
            return runs
    raise AssertionError(f"still catching up after {limit} runs")


def test_a_long_catch_up_is_made_a_part_at_a_time_every_fire_once(store: Store) -> None:
    sc = sched(every=1.0, misfire="all", max_catchup=1_000_000, misfire_grace=1.0, overlap="allow")
    s = Scheduler(config(sc), store, budget=100)
    s.run_once(NOW - 1000)
    ids, upcoming = s.run_once(NOW)
    assert len(ids) <= 100 and upcoming == NOW  # not done: run again at once
    assert state_of(store, "tick").last_fire < NOW
    runs = run_until_caught_up(s, NOW)
    assert all(len(ids) <= 100 for ids in runs) and len(runs) >= 9
    assert fire_times(store) == [NOW - 1000 + k for k in range(1, 1001)]
    assert state_of(store, "tick").last_fire == NOW
    assert s.run_once(NOW) == ([], NOW + 1)


@pytest.mark.parametrize(
    ("misfire", "made"),
    [("skip", 61), ("once", 62), ("all", 100 + 61)],
)
def test_a_day_behind_a_per_second_cron_is_not_walked_second_by_second(
    store: Store, misfire: str, made: int
) -> None:
    """The missed fires a policy drops are stepped over: catching up a day of `* * * * * *`
    used to compute all 86,400 fires in one run (seconds of the daemon's loop)."""
    sc = sched(
        cron="* * * * * *",
        timezone=BERLIN,
        misfire=misfire,
        max_catchup=100,
        misfire_grace=60.0,
        overlap="allow",
    )
    s = Scheduler(config(sc), store)
    s.run_once(NOW - 86400)
    with pytest.MonkeyPatch.context() as mp:
        steps = CroniterSteps(mp)
        runs = run_until_caught_up(s, NOW)
    assert len(runs) == 1
    assert steps.count <= 2 * made + 50, steps.count
    times = fire_times(store)
    assert len(times) == made and times[-61:] == [NOW - 60 + k for k in range(61)]
    assert state_of(store, "tick").last_fire == NOW


def test_a_big_max_catchup_of_a_per_second_cron_is_counted_and_made_over_several_runs(
    store: Store,
) -> None:
    sc = sched(
        cron="* * * * * *",
        timezone=NEW_YORK,
        misfire="all",
        max_catchup=1_000_000,
        misfire_grace=5.0,
        overlap="allow",
    )
    s = Scheduler(config(sc), store, budget=500)
    s.run_once(NOW - 3600)
    runs = 0
    while True:
        with pytest.MonkeyPatch.context() as mp:
            steps = CroniterSteps(mp)
            ids, upcoming = s.run_once(NOW)
        assert len(ids) <= 500 and steps.count <= 500 + 50, steps.count
        runs += 1
        if upcoming != NOW:
            break
        assert runs < 100
    assert runs >= 8  # counting back an hour of missed fires, then making them
    assert fire_times(store) == [NOW - 3600 + k for k in range(1, 3601)]


def test_a_long_catch_up_does_not_starve_another_schedule(store: Store) -> None:
    big = sched("big", every=1.0, misfire="all", max_catchup=1_000_000, overlap="allow")
    small = sched("small", every=60.0)
    s = Scheduler(config(big, small), store, budget=50)
    s.run_once(NOW - 3600)
    s.run_once(NOW + 0.5)
    s.run_once(NOW + 0.5)
    assert fire_times(store, "small") == [NOW]
    assert len(fire_times(store, "big")) <= 100


def test_a_catch_up_stops_when_the_schedule_is_paused(store: Store) -> None:
    sc = sched(every=1.0, misfire="all", max_catchup=1_000_000, overlap="allow")
    s = Scheduler(config(sc), store, budget=100)
    s.run_once(NOW - 1000)
    s.run_once(NOW)
    made = fire_times(store)
    store.schedule_set_paused("tick", True, NOW + 0.5)
    assert s.run_once(NOW + 1) == ([], None)
    store.schedule_set_paused("tick", False, NOW + 1.5)
    s.run_once(NOW + 2)
    assert fire_times(store) == [*made, NOW + 2]  # the rest of the catch-up never comes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    when=st.sampled_from(["every-7s", "every-60s", "*/3 berlin", "seconds */30", "1-3 new-york"]),
    misfire=st.sampled_from(["skip", "once", "all"]),
    overlap=st.sampled_from(["allow", "skip"]),
    max_catchup=st.integers(1, 40),
    grace=st.sampled_from([0.0, 1.0, 59.0, 600.0]),
    downtime=st.floats(0.5, 86400.0),
    start=st.sampled_from(["2026-06-01T11:59:10", "2026-10-24T20:00", "2026-11-01T03:17:31"]),
    budget=st.integers(1, 30),
)
def test_runs_with_any_budget_add_up_to_the_misfire_policy(
    tmp_path_factory: pytest.TempPathFactory,
    when: str,
    misfire: str,
    overlap: str,
    max_catchup: int,
    grace: float,
    downtime: float,
    start: str,
    budget: int,
) -> None:
    """However small the budget, the runs at one moment make exactly the jobs `choose`
    picks from the whole list of due fires, and move last_fire to the last of them."""
    timing: dict[str, dict[str, Any]] = {
        "every-7s": {"every": 7.0},
        "every-60s": {"every": 60.0},
        "*/3 berlin": {"cron": "*/3 * * * *", "timezone": BERLIN},
        "seconds */30": {"cron": "* * * * * */30"},
        "1-3 new-york": {"cron": "30 1-3 * * *", "timezone": NEW_YORK},
    }
    sc = sched(
        misfire=misfire,
        overlap=overlap,
        max_catchup=max_catchup,
        misfire_grace=grace,
        **timing[when],
    )
    path = tmp_path_factory.mktemp("budget") / "jobs.db"
    with contextlib.closing(open_store(str(path))) as store:
        s = Scheduler(config(sc), store, random.Random(0), budget=budget)
        first = utc(start)
        s.run_once(first)
        now = first + downtime
        runs = run_until_caught_up(s, now)
        due = fires_between(sc, first, now)
        expected = choose(sc, due, now)
        if overlap == "skip" and misfire == "all":
            # one missed fire at a time, each once the previous job ended; then the latest
            # on-time fire, as overlap = "skip" always makes
            for _ in range(len(expected) + 1):
                if not finish_jobs(store, now):
                    break
                runs += run_until_caught_up(s, now)
            cutoff = now - grace
            on_time = [t for t in expected if t >= cutoff]
            expected = [t for t in expected if t < cutoff] + on_time[-1:]
        elif overlap == "skip":
            expected = expected[-1:]
        assert fire_times(store) == expected
        assert state_of(store, "tick").last_fire == (due[-1] if due else first)
        assert all(len(ids) <= budget for ids in runs)


# -- through DST with a fake clock ----------------------------------------------------------------


def _tick_through(
    store: Store, sc: ScheduleConfig, start: str, days: float, step: float, seed: int = 0
) -> list[str]:
    """Run the scheduler every `step` seconds (plus a little noise) from `start` (UTC);
    return the fires as local ISO times."""
    rng = random.Random(seed)
    clock = FakeClock(utc(start))
    s = Scheduler(config(sc), store)
    end = clock.now() + days * 86400
    while clock.now() < end:
        s.run_once(clock.now())
        clock.advance(step + rng.uniform(0, 2))
    s.run_once(end)
    zone = ZoneInfo(sc.timezone)
    return [dt.datetime.fromtimestamp(t, zone).isoformat() for t in fire_times(store)]


@pytest.mark.parametrize(
    ("tz", "cron", "start", "expected"),
    [
        (
            BERLIN,
            "30 2 * * *",
            "2026-03-27T12:00",
            ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        (
            BERLIN,
            "30 2 * * *",
            "2026-10-23T12:00",
            ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        (
            NEW_YORK,
            "30 2 * * *",
            "2026-03-06T18:00",
            ["2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
        ),
        (
            NEW_YORK,
            "30 1 * * *",
            "2026-10-30T18:00",
            ["2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
    ],
    ids=["berlin-spring", "berlin-fall", "new-york-spring", "new-york-fall"],
)
def test_fixed_time_schedule_through_dst_fires_once_a_day(
    store: Store, tz: str, cron: str, start: str, expected: list[str]
) -> None:
    sc = sched(cron=cron, timezone=tz, misfire="all", overlap="allow", misfire_grace=60.0)
    assert _tick_through(store, sc, start, days=3, step=1300) == expected


@pytest.mark.parametrize(
    ("tz", "night", "hours"),
    [
        (BERLIN, "2026-03-29", 23),
        (BERLIN, "2026-10-25", 25),
        (NEW_YORK, "2026-03-08", 23),
        (NEW_YORK, "2026-11-01", 25),
    ],
)
def test_frequent_schedule_through_dst_fires_at_every_real_instant(
    store: Store, tz: str, night: str, hours: int
) -> None:
    sc = sched(cron="*/15 * * * *", timezone=tz, misfire="all", overlap="allow")
    zone = ZoneInfo(tz)
    midnight = dt.datetime.fromisoformat(night).replace(tzinfo=zone).astimezone(dt.UTC)
    start = (midnight - dt.timedelta(seconds=1)).replace(tzinfo=None).isoformat()
    _tick_through(store, sc, start, days=hours / 24, step=1000)
    times = fire_times(store)
    assert len(times) == hours * 4 == len(set(times))
    assert all(b - a == 900 for a, b in zip(times, times[1:], strict=False))


# -- the property: two daemons, restarts, downtime; every fire exactly once -----------------------


def wall_clock_fires(
    tz: str, since: float, until: float, matches: Callable[[dt.datetime], bool], fixed: bool
) -> set[float]:
    """Fires in (since, until], found by stepping real minutes and reading the wall clock
    (written without cron.py): a frequent entry fires at each real minute whose wall time
    matches; a fixed-time entry fires on a wall time's first pass only, and a wall time
    skipped by spring forward fires at the first real minute after the gap."""
    zone = ZoneInfo(tz)

    def wall(t: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None)

    out: set[float] = set()
    seen: set[dt.datetime] = set()
    t = (since // 60) * 60 - 2 * 86400
    previous = wall(t - 60)
    while t <= until:
        w = wall(t)
        gap = w - previous > dt.timedelta(minutes=1)
        skipped = [
            previous + dt.timedelta(minutes=k)
            for k in range(1, int((w - previous).total_seconds() // 60))
        ]
        if (matches(w) and not (fixed and w in seen)) or (
            fixed and gap and any(map(matches, skipped))
        ):
            out.add(t)
        seen.add(w)
        previous = w
        t += 60
    return {x for x in out if since < x <= until}


Matcher = Callable[[dt.datetime], bool]
BUDGETS = [3, 20, RUN_BUDGET]
PROPERTY_SCHEDULES: list[tuple[str, dict[str, Any], Matcher | None, bool]] = [
    ("every-7", {"cron": "*/7 * * * *"}, lambda w: w.minute % 7 == 0, False),
    ("at-0230", {"cron": "30 2 * * *"}, lambda w: (w.hour, w.minute) == (2, 30), True),
    ("at-0200-1400", {"cron": "0 2,14 * * *"}, lambda w: w.minute == 0 and w.hour in (2, 14), True),
    ("every-1110s", {"every": 1110.0, "command": ["true"]}, None, False),
]


@pytest.mark.parametrize(
    ("start", "seed"),
    [
        ("2026-03-26T00:00", 1),
        ("2026-03-26T09:17", 2),
        ("2026-10-22T00:00", 3),
        ("2026-10-22T13:41", 4),
    ],
    ids=["spring-1", "spring-2", "fall-1", "fall-2"],
)
def test_every_due_fire_makes_exactly_one_job(path: str, start: str, seed: int) -> None:
    """10,000 simulated minutes in Europe/Berlin across a DST transition. Two schedulers
    on two connections to one file, run in random order, sometimes both at once, sometimes
    racing (one reads, the other fires, then the first tries), sometimes killed in the
    middle of a fire, sometimes restarted; random downtimes where neither runs. With
    misfire=all, every fire due in the simulated time gets exactly one job, and nothing
    else gets one."""
    rng = random.Random(seed)
    cfg = config(
        *(
            sched(
                name,
                timezone=BERLIN,
                misfire="all",
                overlap="allow",
                misfire_grace=1.0,
                max_catchup=1_000_000,
                **values,
            )
            for name, values, _, _ in PROPERTY_SCHEDULES
        )
    )
    opened: list[Store] = []

    def daemon(i: int) -> Scheduler:
        store = open_store(path)
        opened.append(store)
        # a small budget makes the long catch-ups go on over several runs, raced too
        return Scheduler(cfg, store, random.Random(seed * 10 + i), budget=rng.choice(BUDGETS))

    daemons = [daemon(0), daemon(1)]
    first = utc(start) + rng.uniform(0, 59)
    now = last = first
    daemons[0].run_once(now)  # the timetable starts here
    end = first + 10_000 * MINUTE
    kinds: dict[str, int] = {}
    try:
        while now < end:
            roll = rng.random()
            size = rng.random()
            if size < 0.35:
                now += rng.uniform(0.1, 90)  # daemons tick often, a fire at a time
            elif size < 0.8:
                now += rng.uniform(60, 1200)
            else:
                now += rng.uniform(1200, 6 * HOUR)  # a long stall: catch-up
            if roll < 0.12:
                kinds["down"] = kinds.get("down", 0) + 1
                continue  # downtime: neither runs
            i = rng.randrange(2)
            if rng.random() < 0.08:
                kinds["restart"] = kinds.get("restart", 0) + 1
                daemons[i].store.close()
                daemons[i] = daemon(i)
            other = daemons[1 - i]
            if roll < 0.3:
                kinds["race"] = kinds.get("race", 0) + 1
                skew = rng.uniform(-20, 20)
                when = now + skew
                racing = _Hooked(daemons[i].store, functools.partial(other.run_once, when))
                Scheduler(cfg, cast(Store, racing), budget=rng.choice(BUDGETS)).run_once(now)
                last = max(last, now, when)
            elif roll < 0.4:
                kinds["crash"] = kinds.get("crash", 0) + 1
                dying = Scheduler(
                    cfg, cast(Store, _CrashMidFire(daemons[i].store)), budget=rng.choice(BUDGETS)
                )
                with contextlib.suppress(Crash):
                    dying.run_once(now)
                daemons[i].store.close()
                daemons[i] = daemon(i)  # the killed daemon comes back on a new connection
            else:
                daemons[i].run_once(now)
                if rng.random() < 0.3:
                    kinds["both"] = kinds.get("both", 0) + 1
                    other.run_once(now + rng.uniform(0, 2))
                    last = max(last, now + 2)
                last = max(last, now)
        last = max(last, now)
        run_until_caught_up(daemons[0], last, limit=10_000)
        assert daemons[1].run_once(last)[0] == []

        store = daemons[0].store
        for name, values, matches, fixed in PROPERTY_SCHEDULES:
            made = fire_times(store, name)
            assert len(made) == len(set(made)), f"{name}: a fire got two jobs"
            if "every" in values:
                every = values["every"]
                expected = {
                    k * every for k in range(int(first // every) + 1, int(last // every) + 1)
                }
            else:
                assert matches is not None
                expected = wall_clock_fires(BERLIN, first, last, matches, fixed)
            missing = sorted(expected - set(made))
            invented = sorted(set(made) - expected)
            assert not missing and not invented, (name, missing[:5], invented[:5])
        assert all(j.run_at == j.scheduled_for for j in jobs_of(store))
        assert len(fire_times(store, "every-7")) > 1000
        assert all(kinds.get(k, 0) > 5 for k in ("down", "restart", "race", "crash", "both")), kinds
    finally:
        for s in opened:
            s.close()
