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

misfire = "all" with overlap = "skip" catches up in turn (`_in_turn`): one missed fire's
job at a time, oldest first, each made once the jobs the schedule waits for have ended
(`Store.schedule_last_jobs`); meanwhile run_once asks to run again soon, and less often as
the wait goes on.
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
from jobrunner.models import Job, JobInsert
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
# Fires a log line counts when it says how many were skipped or collapsed: a cron entry's
# are computed one by one, which the dropped fires otherwise never are, so past this many
# the line says "more than" (its first and last fire tell the span)
COUNT_AT_MOST = 60
# A catch-up in turn looks again this long after it made a job or began to wait (a job may
# end in milliseconds), then after a tenth of the time waited so far, at most every
# [daemon] poll_interval: the daemon is not woken when another process ends a job.
RECHECK_FIRST = 0.02
RECHECK_FRACTION = 0.1


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


def count_fires(sc: ScheduleConfig, since: float, until: float) -> str:
    """How many fires fall in (since, until], for the log: exact for `every`, counted up
    to COUNT_AT_MOST for `cron`."""
    if sc.every is not None:  # the multiples of `every`, as interval_fires makes them
        low, high = int(since // sc.every) + 1, int(until // sc.every) + 1
        while high * sc.every > until:
            high -= 1
        return str(max(0, high - low + 1))
    n = sum(1 for _ in islice(fires_after(sc, since, until), COUNT_AT_MOST + 1))
    return f"more than {COUNT_AT_MOST}" if n > COUNT_AT_MOST else str(n)


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
    catch_up: float | None = None,
) -> JobInsert:
    """The job of one fire; `manual` for `schedules run` (made now), `catch_up` for a fire
    of a catch-up in turn (where it ends: see `_in_turn`)."""
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
    if catch_up is not None:
        job.options = {**job.options, "catch_up": catch_up}
    return job


def _catch_up_of(job: Job) -> float | None:
    """Where the catch-up in turn that made `job` ends (None: not made by one)."""
    until = job.options.get("catch_up")
    return float(until) if isinstance(until, int | float) else None


def _fire_job(last_jobs: list[Job], last: float) -> Job | None:
    """Of a schedule's last jobs (`Store.schedule_last_jobs`), its last fire's."""
    first = last_jobs[0] if last_jobs else None
    return first if first is not None and (first.scheduled_for or 0.0) <= last else None


def _in_turn(sc: ScheduleConfig, first: float, now: float, fire_job: Job | None) -> float | None:
    """misfire = "all" with overlap = "skip", `first` the earliest fire due and `fire_job`
    the last fire's job: where the catch-up in turn going on ends (its fires are those
    before), or None when there is none.

    A catch-up begins when a fire is missed; its fires are those missed then, and each of
    its jobs carries where it ends, so every daemon (and one started in the middle) goes
    on with the same catch-up. Fires that fall due while it goes on are not added to it
    (else a schedule whose jobs outlast its interval would never get out of it): they wait
    for its last job, and then the latest of them is made, as overlap = "skip" makes one
    job of fires due together (`Scheduler._run_schedule`)."""
    until = _catch_up_of(fire_job) if fire_job is not None else None
    if fire_job is not None and until is not None:
        if first < until:
            return until  # the catch-up goes on
        if fire_job.state in ACTIVE:
            return first  # its last job is open: the fires due meanwhile wait for it
        if first <= (fire_job.finished_at or now):
            return None  # it is over: the latest fire due is made, as on time
    cutoff = now - sc.misfire_grace
    return cutoff if first < cutoff else None  # a catch-up begins, or none


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
        self.waiting_on: dict[str, int] = {}  # the job a catch-up in turn waits for (logged)
        self.turn = 0  # the schedule to start from: a long catch-up does not starve the rest

    def run_once(self, now: float) -> tuple[list[int], float | None]:
        """Fire what is due at `now`; returns the new job ids and the next fire time
        (`now` itself when a catch-up is not finished: run again at once; soon after `now`
        while a catch-up in turn waits for a job to end)."""
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
            first = next(fires_after(sc, last, now), None)
            if first is None:  # nothing due
                upcoming += next_fires(sc, now, 1)
                continue
            if budget <= 0:
                behind = True
                continue
            ids, used, again = self._run_schedule(sc, last, first, now, budget)
            created += ids
            budget -= used
            if again is None:  # done: the timetable's next fire
                upcoming += next_fires(sc, now, 1)
            elif again <= now:
                behind = True
            else:
                upcoming.append(again)
        if behind:
            return created, now
        return created, min(upcoming) if upcoming else None

    def _run_schedule(
        self, sc: ScheduleConfig, last: float, first: float, now: float, budget: int
    ) -> tuple[list[int], int, float | None]:
        """Fire one schedule whose earliest due fire is `first`: (job ids, fires computed
        or jobs made, when to run it again: None when it is done, `now` when there is more
        to do at once, a later time to look again)."""
        if sc.overlap == "skip":
            last_jobs = self.store.schedule_last_jobs(sc.name, last)
            open_jobs = [j for j in last_jobs if j.state in ACTIVE]
            if sc.misfire == "all":
                until = _in_turn(sc, first, now, _fire_job(last_jobs, last))
                if until is not None:
                    return self._catch_up_in_turn(sc, last, now, budget, open_jobs, until)
            # one job at most: the latest fire, if the policy keeps it and nothing is open
            latest = next(fires_before(sc, now, last), None)
            if latest is None:
                return [], 1, None
            missed = latest < now - sc.misfire_grace
            kept = [latest] if not missed or sc.misfire != "skip" else []
            if missed and not kept:
                self._log_dropped(sc, last, latest)
            if kept and open_jobs:
                log.info(
                    "schedule %s: %s fire(s) from %s to %s skipped, its previous job is "
                    "still %s (overlap=skip)",
                    sc.name,
                    count_fires(sc, last, latest),
                    _iso(first),
                    _iso(latest),
                    open_jobs[-1].state,
                )
                kept = []
            elif kept and first < latest:  # several fires due at once: one job
                log.info(
                    "schedule %s: %s fires from %s to %s collapsed into one job, for %s "
                    "(misfire=%s, overlap=skip)",
                    sc.name,
                    count_fires(sc, last, latest),
                    _iso(first),
                    _iso(latest),
                    _iso(latest),
                    sc.misfire,
                )
            ids = self._fire(sc, last, latest, kept, now)
            return ids or [], 2, None
        catch_up = self.catch_ups.pop(sc.name, None)
        if catch_up is None or catch_up.last != last or catch_up.schedule is not sc:
            catch_up = _CatchUp(sc, last, now - sc.misfire_grace)
        used = 0
        if catch_up.keep_after is None:
            used = catch_up.plan(budget)
            if catch_up.dropped is not None:
                self._log_dropped(sc, last, catch_up.dropped)
            if catch_up.keep_after is None:
                self.catch_ups[sc.name] = catch_up
                return [], used, now
        room = budget - used
        taken = list(islice(fires_after(sc, max(last, catch_up.keep_after), now), room + 1))
        used += len(taken)
        chosen = taken[:room]
        if len(taken) > room:  # more to fire: go on from here at the next run
            if not chosen:
                self.catch_ups[sc.name] = catch_up
                return [], used, now
            ids = self._fire(sc, last, chosen[-1], chosen, now)
            if ids is not None:  # (else another daemon moved it on: start afresh)
                catch_up.last = chosen[-1]
                self.catch_ups[sc.name] = catch_up
            return ids or [], used, now
        new_last = chosen[-1] if chosen else next(fires_before(sc, now, last), None)
        if new_last is None:
            return [], used + 1, None
        return self._fire(sc, last, new_last, chosen, now) or [], used + 1, None

    def _catch_up_in_turn(
        self,
        sc: ScheduleConfig,
        last: float,
        now: float,
        budget: int,
        open_jobs: list[Job],
        until: float,
    ) -> tuple[list[int], int, float | None]:
        """Wait while a job of the schedule is open; else make the job of the earliest
        fire of the catch-up that the policy keeps (of the fires missed before `until`,
        the latest `max_catchup`), marked with `until`. Returns as `_run_schedule` does."""
        if open_jobs:
            job = open_jobs[-1]
            if _catch_up_of(job) is None and self.waiting_on.get(sc.name) != job.id:
                self.waiting_on[sc.name] = job.id
                log.info(
                    "schedule %s: missed fires wait for job %d (%s) to end (misfire=all, "
                    "overlap=skip: they are made one after another)",
                    sc.name,
                    job.id,
                    job.state,
                )
            # a job may end in milliseconds: look again soon, then less often
            waited = now - max(max(j.created_at, j.started_at or 0.0) for j in open_jobs)
            poll = self.config.daemon.poll_interval
            return [], 2, now + min(poll, max(RECHECK_FIRST, waited * RECHECK_FRACTION))
        self.waiting_on.pop(sc.name, None)
        catch_up = self.catch_ups.pop(sc.name, None)
        if (
            catch_up is None
            or catch_up.last != last
            or catch_up.schedule is not sc
            or catch_up.cutoff != until
        ):
            catch_up = _CatchUp(sc, last, until)
        used = 0
        if catch_up.keep_after is None:
            used = catch_up.plan(budget)
            if catch_up.dropped is not None:
                self._log_dropped(sc, last, catch_up.dropped)
            if catch_up.keep_after is None:  # still counting: go on at the next run
                self.catch_ups[sc.name] = catch_up
                return [], used + 2, now
        # the policy keeps the latest missed fire at least: there is one before `until`
        fire = next(fires_after(sc, max(last, catch_up.keep_after), until))
        ids = self._fire(sc, last, fire, [fire], now, catch_up=until)
        if ids is None:  # another daemon moved it on, or it was paused: read it again
            return [], used + 3, now
        catch_up.last = fire  # the plan holds for the whole catch-up
        self.catch_ups[sc.name] = catch_up
        return ids, used + 3, now + RECHECK_FIRST

    def _fire(
        self,
        sc: ScheduleConfig,
        last: float,
        new_last: float,
        chosen: list[float],
        now: float,
        catch_up: float | None = None,
    ) -> list[int] | None:
        """Insert the chosen fires' jobs and move last_fire to `new_last`, compare-and-set;
        None when another daemon moved it first (or it was paused meanwhile)."""
        jobs = [job_for_fire(sc, self.config, t, self.rng, catch_up=catch_up) for t in chosen]
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
    def _log_dropped(sc: ScheduleConfig, last: float, latest: float) -> None:
        """One line for the missed fires in (last, latest] that the misfire policy drops."""
        kept = {
            "skip": "none are made",
            "once": "one job, for the latest missed fire",
            "all": f"jobs for the latest {sc.max_catchup} (max_catchup)",
        }[sc.misfire]
        log.info(
            "schedule %s: %s missed fire(s) from %s to %s skipped (misfire=%s: %s)",
            sc.name,
            count_fires(sc, last, latest),
            _iso(next(fires_after(sc, last, latest), latest)),
            _iso(latest),
            sc.misfire,
            kept,
        )


def _iso(ts: float) -> str:
    from jobrunner.models import iso

    return iso(ts) or ""
