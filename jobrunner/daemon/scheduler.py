"""The scheduler service: turns due fires of [[schedules]] into jobs, exactly once.

`run_once(now)` is the whole service (huey's style: time is passed in). Each schedule's
fires in (last_fire, now] are chosen by its misfire and overlap policies and inserted
in the same transaction that moves `last_fire` on, compare-and-set; so two daemons on
one file, or a restart in the middle of a fire, never make two jobs for one fire.
"""

from __future__ import annotations

import logging
import random

from jobrunner.config import Config, ScheduleConfig
from jobrunner.cron import CronSpec, interval_fires
from jobrunner.lifecycle import WAITING, State
from jobrunner.models import JobInsert
from jobrunner.taskref import Submission, build_job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.store.base import Store

log = logging.getLogger("jobrunner.scheduler")
ACTIVE = WAITING | {State.RUNNING}


def fires_between(sc: ScheduleConfig, since: float, until: float) -> list[float]:
    """The schedule's fire instants in (since, until]."""
    if sc.every is not None:
        return list(interval_fires(sc.every, since, until))
    return CronSpec(sc.cron or "", sc.timezone).fires(since, until)


def next_fires(sc: ScheduleConfig, after: float, count: int) -> list[float]:
    if sc.every is not None:
        return list(interval_fires(sc.every, after, after + sc.every * count))[:count]
    return CronSpec(sc.cron or "", sc.timezone).next_fires(after, count)


def choose(sc: ScheduleConfig, due: list[float], now: float) -> list[float]:
    """Which due fires get a job, by the misfire policy.

    A fire later than `misfire_grace` was missed (no daemon ran): `skip` drops those,
    `once` keeps the latest of them, `all` keeps them all up to `max_catchup` (the
    latest ones). Fires within the grace are on time and always kept."""
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


class Scheduler:
    def __init__(self, config: Config, store: Store, rng: random.Random | None = None) -> None:
        self.config = config
        self.store = store
        self.rng = rng or random.Random()

    def run_once(self, now: float) -> tuple[list[int], float | None]:
        """Fire what is due at `now`; returns the new job ids and the next fire time."""
        if not self.config.schedules:
            return [], None
        states = {s.name: s for s in self.store.schedule_list()}
        created: list[int] = []
        upcoming: list[float] = []
        for sc in self.config.schedules.values():
            state = states.get(sc.name)
            if state is not None and state.paused:
                continue
            last = state.last_fire if state is not None else None
            if last is None:  # first seen: its timetable starts now, nothing in the past
                self.store.schedule_fire(sc.name, None, now, [], now)
                last = now
            due = fires_between(sc, last, now)
            if due:
                created += self._fire(sc, last, due, now)
            upcoming += next_fires(sc, now, 1)
        return created, min(upcoming) if upcoming else None

    def _fire(self, sc: ScheduleConfig, last: float, due: list[float], now: float) -> list[int]:
        chosen = choose(sc, due, now)
        if len(chosen) < len(due):
            log.info(
                "schedule %s: %d missed fire(s) skipped (misfire=%s)",
                sc.name,
                len(due) - len(chosen),
                sc.misfire,
            )
        if chosen and sc.overlap == "skip":
            previous = self.store.schedule_latest_state(sc.name)
            if previous is not None and State(previous) in ACTIVE:
                log.info(
                    "schedule %s: fire skipped, its previous job is still %s (overlap=skip)",
                    sc.name,
                    previous,
                )
                chosen = []
            else:
                chosen = chosen[-1:]  # one new job at a time
        jobs = [job_for_fire(sc, self.config, t, self.rng) for t in chosen]
        ids = self.store.schedule_fire(sc.name, last, due[-1], jobs, now)
        if ids is None:
            return []  # another daemon fired it first
        for t, job_id in zip(chosen, ids, strict=False):
            log.info("schedule %s: fired for %s as job %d", sc.name, _iso(t), job_id)
        return ids


def _iso(ts: float) -> str:
    from jobrunner.models import iso

    return iso(ts) or ""
