"""The scheduler service: turns due fires of [[schedules]] into jobs, exactly once.

`run_once(now)` is the whole service (huey's style: time is passed in). Each schedule's
fires in (last_fire, now] are chosen by its misfire and overlap policies (`choose`) and
inserted in the same transaction that moves `last_fire` on, compare-and-set; so two
daemons on one file, or a restart in the middle of a fire, never make two jobs for one
fire.

A run does bounded work (`RUN_BUDGET` fires computed or jobs made, over all schedules),
so the daemon's loop keeps heartbeating through any catch-up: a long one (a day of a
per-second schedule with misfire = "all") moves `last_fire` on a part at a time and goes
on at the next run, which run_once asks for at once by returning `now` as the next fire.
The missed fires a policy drops are stepped over, not computed one by one: "skip" starts
at the grace cutoff, "once" at the latest missed fire, "all" at the `max_catchup`-th
latest (counted backwards from the cutoff, over several runs if there are many).
"""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from jobrunner.config import Config, ScheduleConfig
from jobrunner.cron import CronSpec, interval_fires, interval_fires_before
from jobrunner.lifecycle import WAITING, State
from jobrunner.models import JobInsert
from jobrunner.taskref import Submission, build_job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.store.base import Store

log = logging.getLogger("jobrunner.scheduler")
ACTIVE = WAITING | {State.RUNNING}
# Fires computed or jobs made per run, over all schedules: a few tens of milliseconds,
# so that a catch-up never holds the daemon's loop (and its heartbeat) for long.
RUN_BUDGET = 1000
# Jobs logged one line each per run; a larger catch-up part is logged as one line.
LOG_EACH = 10


@functools.lru_cache(maxsize=256)
def cron_spec(expr: str, tz: str) -> CronSpec:
    """The parsed expression, once per expression and zone (it is immutable)."""
    return CronSpec(expr, tz)


def fires_after(sc: ScheduleConfig, since: float, until: float) -> Iterator[float]:
    """The schedule's fire instants in (since, until], earliest first, as they are taken."""
    if sc.every is not None:
        return interval_fires(sc.every, since, until)
    return cron_spec(sc.cron or "", sc.timezone).fires_after(since, until)


def fires_before(sc: ScheduleConfig, until: float, since: float) -> Iterator[float]:
    """The schedule's fire instants in (since, until], latest first, as they are taken."""
    if sc.every is not None:
        return interval_fires_before(sc.every, until, since)
    return cron_spec(sc.cron or "", sc.timezone).fires_before(until, since)


def fires_between(sc: ScheduleConfig, since: float, until: float) -> list[float]:
    """The schedule's fire instants in (since, until]."""
    return list(fires_after(sc, since, until))


def next_fires(sc: ScheduleConfig, after: float, count: int) -> list[float]:
    if sc.every is not None:
        return list(interval_fires(sc.every, after, after + sc.every * count))[:count]
    return cron_spec(sc.cron or "", sc.timezone).next_fires(after, count)


def choose(sc: ScheduleConfig, due: list[float], now: float) -> list[float]:
    """Which due fires get a job, by the misfire policy.

    A fire later than `misfire_grace` was missed (no daemon ran): `skip` drops those,
    `once` keeps the latest of them, `all` keeps them all up to `max_catchup` (the
    latest ones). Fires within the grace are on time and always kept. (The scheduler
    applies this without listing every due fire: see `_CatchUp`.)"""
    cutoff = now - sc.misfire_grace
    missed = [t for t in due if t < cutoff]
    on_time = [t for t in due if t >= cutoff]
    if sc.misfire == "skip":
        kept = []
    elif sc.misfire == "once":
        kept = missed[-1:]
    else:
        kept = missed[-sc.max_catchup :]
    return kept + on_time


def job_for_fire(
    sc: ScheduleConfig,
    config: Config,
    fire: float,
    rng: random.Random,
    manual: bool = False,
    now: float | None = None,
) -> JobInsert:
    run_at = (now if manual and now is not None else fire) + (
        rng.uniform(0, sc.jitter) if sc.jitter and not manual else 0.0
    )
    sub = Submission(
        list(sc.args),
        dict(sc.kwargs),
        sc.queue,
        sc.priority,
        run_at,
        sc.retries,
        sc.backoff,
        sc.timeout,
        None,
    )
    job = build_job(sc.task, sc.command, sub, config, check=False)
    job.schedule = sc.name
    job.scheduled_for = fire
    if manual:
        job.options = {**job.options, "manual": True}
    return job


@dataclass(slots=True)
class _CatchUp:
    """Where the fires one schedule keeps begin: `choose` without the list of due fires.

    Fires before `cutoff` were missed; those in (last, keep_after] are dropped by the
    misfire policy and every fire after keep_after is kept. Worked out when a schedule has
    fires due and kept between runs while a catch-up goes on (in memory only: it holds
    while the schedule is still at `last`; the database's last_fire is what counts)."""

    schedule: ScheduleConfig
    last: float
    cutoff: float
    keep_after: float | None = None  # None: misfire = "all" is still counting
    dropped: float | None = None  # the latest fire dropped, if any (for the log)
    counted: int = 0  # misfire = "all": the latest missed fires counted so far ...
    earliest_counted: float = math.inf  # ... back to this one

    def plan(self, budget: int) -> int:
        """Find keep_after, computing at most `budget` fires; returns how many it did."""
        sc, below_cutoff = self.schedule, math.nextafter(self.cutoff, -math.inf)
        if sc.misfire == "skip":
            self.dropped = next(fires_before(sc, below_cutoff, self.last), None)
            self.keep_after = max(self.last, below_cutoff)
            return 1
        if sc.misfire == "once":
            missed = list(islice(fires_before(sc, below_cutoff, self.last), 2))
            self.keep_after = math.nextafter(missed[0], -math.inf) if missed else self.last
            self.dropped = missed[1] if len(missed) > 1 else None
            return len(missed)
        # "all": count back max_catchup missed fires, and one more to know whether any
        # are dropped; a count larger than the budget goes on at the next run
        start = math.nextafter(min(below_cutoff, self.earliest_counted), -math.inf)
        wanted = min(budget, sc.max_catchup - self.counted + 1)
        taken = list(islice(fires_before(sc, start, self.last), wanted))
        for t in taken:
            if self.counted == sc.max_catchup:
                self.dropped = t
                self.keep_after = math.nextafter(self.earliest_counted, -math.inf)
                return len(taken)
            self.counted += 1
            self.earliest_counted = t
        if len(taken) < wanted:  # no more missed fires: all of them are kept
            self.keep_after = self.last
        return len(taken)


class Scheduler:
    def __init__(
        self,
        config: Config,
        store: Store,
        rng: random.Random | None = None,
        budget: int = RUN_BUDGET,
    ) -> None:
        self.config = config
        self.store = store
        self.rng = rng or random.Random()
        self.budget = budget
        self.catch_ups: dict[str, _CatchUp] = {}
        self.turn = 0  # the schedule to start from: a long catch-up does not starve the rest

    def run_once(self, now: float) -> tuple[list[int], float | None]:
        """Fire what is due at `now`; returns the new job ids and the next fire time
        (`now` itself when a catch-up is not finished: run again at once)."""
        if not self.config.schedules:
            return [], None
        states = {s.name: s for s in self.store.schedule_list()}
        created: list[int] = []
        upcoming: list[float] = []
        behind = False
        budget = self.budget
        schedules = list(self.config.schedules.values())
        self.turn = (self.turn + 1) % len(schedules)
        for sc in schedules[self.turn :] + schedules[: self.turn]:
            state = states.get(sc.name)
            if state is not None and state.paused:
                self.catch_ups.pop(sc.name, None)
                continue
            last = state.last_fire if state is not None else None
            if last is None:  # first seen: its timetable starts now, nothing in the past
                self.store.schedule_fire(sc.name, None, now, [], now)
                last = now
            if next(fires_after(sc, last, now), None) is None:  # nothing due
                upcoming += next_fires(sc, now, 1)
                continue
            if budget <= 0:
                behind = True
                continue
            ids, used, done = self._run_schedule(sc, last, now, budget)
            created += ids
            budget -= used
            if done:
                upcoming += next_fires(sc, now, 1)
            else:
                behind = True
        if behind:
            return created, now
        return created, min(upcoming) if upcoming else None

    def _run_schedule(
        self, sc: ScheduleConfig, last: float, now: float, budget: int
    ) -> tuple[list[int], int, bool]:
        """Fire one schedule: (job ids, fires computed or jobs made, whether it is done)."""
        if sc.overlap == "skip":  # one job at most: the latest fire, if the policy keeps it
            latest = next(fires_before(sc, now, last), None)
            if latest is None:
                return [], 1, True
            missed = latest < now - sc.misfire_grace
            kept = [latest] if not missed or sc.misfire != "skip" else []
            if missed and not kept:
                self._log_dropped(sc, latest)
            ids = self._fire(sc, last, latest, self._unless_active(sc, kept), now)
            return ids or [], 1, True
        catch_up = self.catch_ups.pop(sc.name, None)
        if catch_up is None or catch_up.last != last or catch_up.schedule is not sc:
            catch_up = _CatchUp(sc, last, now - sc.misfire_grace)
        used = 0
        if catch_up.keep_after is None:
            used = catch_up.plan(budget)
            if catch_up.dropped is not None:
                self._log_dropped(sc, catch_up.dropped)
            if catch_up.keep_after is None:
                self.catch_ups[sc.name] = catch_up
                return [], used, False
        room = budget - used
        taken = list(islice(fires_after(sc, max(last, catch_up.keep_after), now), room + 1))
        used += len(taken)
        chosen = taken[:room]
        if len(taken) > room:  # more to fire: go on from here at the next run
            if not chosen:
                self.catch_ups[sc.name] = catch_up
                return [], used, False
            ids = self._fire(sc, last, chosen[-1], chosen, now)
            if ids is not None:  # (else another daemon moved it on: start afresh)
                catch_up.last = chosen[-1]
                self.catch_ups[sc.name] = catch_up
            return ids or [], used, False
        new_last = chosen[-1] if chosen else next(fires_before(sc, now, last), None)
        if new_last is None:
            return [], used + 1, True
        return self._fire(sc, last, new_last, chosen, now) or [], used + 1, True

    def _unless_active(self, sc: ScheduleConfig, chosen: list[float]) -> list[float]:
        if chosen:
            previous = self.store.schedule_latest_state(sc.name)
            if previous is not None and State(previous) in ACTIVE:
                log.info(
                    "schedule %s: fire skipped, its previous job is still %s (overlap=skip)",
                    sc.name,
                    previous,
                )
                return []
        return chosen

    def _fire(
        self, sc: ScheduleConfig, last: float, new_last: float, chosen: list[float], now: float
    ) -> list[int] | None:
        """Insert the chosen fires' jobs and move last_fire to `new_last`, compare-and-set;
        None when another daemon moved it first (or it was paused meanwhile)."""
        jobs = [job_for_fire(sc, self.config, t, self.rng) for t in chosen]
        ids = self.store.schedule_fire(sc.name, last, new_last, jobs, now)
        if ids is None:
            return None
        if len(ids) <= LOG_EACH:
            for t, job_id in zip(chosen, ids, strict=False):
                log.info("schedule %s: fired for %s as job %d", sc.name, _iso(t), job_id)
        else:
            log.info(
                "schedule %s: fired %d jobs (%d to %d) for %s to %s",
                sc.name,
                len(ids),
                ids[0],
                ids[-1],
                _iso(chosen[0]),
                _iso(chosen[-1]),
            )
        return ids

    @staticmethod
    def _log_dropped(sc: ScheduleConfig, latest: float) -> None:
        log.info(
            "schedule %s: missed fires up to %s skipped (misfire=%s)",
            sc.name,
            _iso(latest),
            sc.misfire,
        )


def _iso(ts: float) -> str:
    from jobrunner.models import iso

    return iso(ts) or ""
