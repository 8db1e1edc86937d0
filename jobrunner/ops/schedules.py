"""Schedules: list them, and by hand run one now, pause, resume. The timetable lives in
the config; the database holds each schedule's last fire and whether it is paused."""

from __future__ import annotations

from jobrunner.errors import UsageError
from jobrunner.ops import submit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jobrunner.config import Config, ScheduleConfig
    from jobrunner.store.base import Store


def find_schedule(config: Config, name: str) -> ScheduleConfig:
    """The schedule named `name` in the config, or a UsageError listing those there are.
    Every operation here checks this first; an interface that would otherwise create the
    database to call one can check it before (bad input writes nothing)."""
    schedules = config.schedules
    if name not in schedules:
        known = ", ".join(sorted(schedules)) or "none configured"
        raise UsageError(f"no schedule named {name!r} in the config (schedules: {known})")
    return schedules[name]


def listing(store: Store, config: Config, now: float) -> list[dict[str, Any]]:
    """Every configured schedule, seen by a daemon or not, as `schedules list --json`
    shows it: its timetable, next three fires, whether paused, its last fire and job."""
    from jobrunner.cron import describe_instant
    from jobrunner.daemon.scheduler import next_fires
    from jobrunner.models import iso

    states = store.schedule_states(list(config.schedules))
    rows = []
    for sc, state in zip(config.schedules.values(), states, strict=True):
        last_job = store.job_get(state.last_job_id) if state.last_job_id else None
        upcoming = next_fires(sc, now, 3)
        rows.append(
            {
                "name": sc.name,
                "expression": sc.expression,
                "timezone": sc.timezone,
                "task": sc.task,
                "command": sc.command,
                "paused": state.paused,
                "next": [
                    {"local": describe_instant(t, sc.timezone)[0], "utc": iso(t)} for t in upcoming
                ],
                "last_fire": iso(state.last_fire) if state.last_fire else None,
                "last_job": None
                if last_job is None
                else {
                    "id": last_job.id,
                    "state": str(last_job.state),
                    "scheduled_for": iso(last_job.scheduled_for),
                    "manual": bool(last_job.options.get("manual")),  # a run outside its timetable
                },
                "misfire": sc.misfire,
                "overlap": sc.overlap,
                "dst": around_offset_change(sc, now),
            }
        )
    return rows


def around_offset_change(sc: ScheduleConfig, now: float) -> dict[str, Any] | None:
    """The zone's next DST change (within about a year) and the schedule's fires on
    either side of it, in local time and UTC: where a skipped or repeated hour shows.
    None for a zone without one, or a schedule by interval (`every`: UTC seconds)."""
    from jobrunner.cron import describe_instant, next_offset_change
    from jobrunner.daemon.scheduler import next_fires
    from jobrunner.models import iso

    if sc.every is not None:
        return None
    change = next_offset_change(sc.timezone, now)
    if change is None:
        return None
    at, before, after = change
    early = next_fires(sc, max(now, at - 2 * 86400 - 60), 60)  # two days before
    if early and early[-1] < at:  # frequent fires: those just before the change
        early = next_fires(sc, max(now, at - 3600), 120)
    around = [t for t in early if t < at][-2:] + next_fires(sc, at - 0.001, 2)
    return {
        "at": {"local": describe_instant(at, sc.timezone)[0], "utc": iso(at)},
        "offset_before": before,
        "offset_after": after,
        "fires": [
            {"local": describe_instant(t, sc.timezone)[0], "utc": iso(t), "after": t >= at}
            for t in around
        ],
    }


def run(store: Store, config: Config, name: str, now: float) -> int:
    """Fire the schedule once now, outside its timetable: a job marked manual (even while
    the schedule is paused); the timetable is unchanged. Returns the job's id."""
    import random

    from jobrunner.daemon.scheduler import job_for_fire

    schedule = find_schedule(config, name)
    job = job_for_fire(schedule, config, now, random.Random(), manual=True, now=now)
    return submit(store, [job], now)[0].id


def pause(store: Store, config: Config, name: str, now: float) -> None:
    """Stop firing the schedule until it is resumed (pausing twice is harmless)."""
    find_schedule(config, name)
    store.schedule_set_paused(name, True, now)


def resume(store: Store, config: Config, name: str, now: float) -> None:
    """Fire again from `now` on: fires missed while paused are not caught up."""
    find_schedule(config, name)
    store.schedule_set_paused(name, False, now)
