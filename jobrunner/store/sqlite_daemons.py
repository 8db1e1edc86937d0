"""What the daemons of one database coordinate through: schedules (the compare-and-set
fire), the daemons' registry and heartbeats, and named leases (docs/architecture.md,
"The leader lease"). A mixin of SQLiteStore, as sqlite_claims.py is."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager

from jobrunner.jsonutil import dumps as _dumps
from jobrunner.models import DaemonInfo, Job, JobInsert, ScheduleState
from jobrunner.store.sqlite_sql import Q, event_row, insert_row, job_from_row, submitted_event
from jobrunner.store.sqlite_tx import refusing_damage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@refusing_damage  # a damaged file: DatabaseCorrupt from every method, reads included
class SQLiteDaemons:
    db: Any

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError  # SQLiteStore's write transaction

    # -- schedules ------------------------------------------------------------------------

    def schedule_list(self) -> list[ScheduleState]:
        return [
            ScheduleState(r[0], r[1], bool(r[2]), r[3]) for r in self.db.execute(Q["schedule_list"])
        ]

    def schedule_fire(
        self,
        name: str,
        expected_last: float | None,
        new_last: float,
        jobs: Sequence[JobInsert],
        now: float,
    ) -> list[int] | None:
        """Insert a schedule's jobs and move its `last_fire` on, in one transaction.

        Compare-and-set on `expected_last` (None: the schedule is new here): when
        another daemon moved it first, or it is paused, nothing is written and None is
        returned. The unique (schedule, scheduled_for) index makes a fire's second job
        impossible even so."""
        with self._tx() as db:
            if expected_last is None:
                db.execute(Q["schedule_create"], (name, new_last, now))
            else:
                db.execute(Q["schedule_advance"], (new_last, now, name, expected_last))
            if db.changes() != 1:
                return None
            ids: list[int] = []
            for job in jobs:
                row = insert_row(job, now)
                for (job_id,) in db.execute(Q["job_insert_fire"], row).fetchall():
                    ids.append(job_id)
                    fired = {"schedule": name, "scheduled_for": job.scheduled_for}
                    db.execute(
                        Q["event_insert"],
                        event_row(now, job_id, 0, "schedule.fired", row[0], fired),
                    )
                    db.execute(Q["event_insert"], submitted_event(now, job_id, row))
        return ids

    def schedule_set_paused(self, name: str, paused: bool, now: float) -> None:
        """Pause or resume; resuming restarts the timetable from `now` (no catch-up)."""
        with self._tx() as db:
            db.execute(Q["schedule_set_paused"], (name, now, int(paused)))

    def schedule_states(self, names: Sequence[str]) -> list[ScheduleState]:
        """Each named schedule, in the order given, whether or not a daemon has seen it
        (then `last_fire` is None); `last_job_id` is its latest job by `scheduled_for`,
        manual runs included."""
        rows = self.db.execute(Q["schedule_states"], (json.dumps(list(names)),))
        return [ScheduleState(r[0], r[1], bool(r[2]), r[3]) for r in rows]

    def schedule_last_jobs(self, name: str, last_fire: float) -> list[Job]:
        """The jobs an overlap = "skip" schedule must see end before it fires again: the
        job of its latest fire at or before `last_fire`, and every manual run made after
        it; by scheduled_for."""
        rows = self.db.execute(Q["schedule_last_jobs"], (name, last_fire))
        return [job_from_row(r) for r in rows]

    # -- daemons --------------------------------------------------------------------------

    def daemon_register(self, info: DaemonInfo) -> None:
        with self._tx() as db:
            db.execute(
                Q["daemon_upsert"],
                (
                    info.id,
                    info.host,
                    info.pid,
                    info.started_at,
                    info.heartbeat_at,
                    info.lease_until,
                    info.workers,
                    _dumps(info.queues) if info.queues is not None else None,
                    info.node,
                ),
            )

    def daemon_heartbeat(self, daemon_id: str, now: float, lease_until: float) -> bool:
        """Extend the lease on all of this daemon's claims; False if it was rescued."""
        with self._tx() as db:
            db.execute(Q["daemon_heartbeat"], (now, lease_until, daemon_id))
            return db.changes() == 1

    def daemon_expire(self, daemon_id: str) -> None:
        """End a daemon's lease now (it is known to be dead), so the rescuer need not wait."""
        with self._tx() as db:
            db.execute(Q["daemon_expire"], (daemon_id,))
            db.execute(Q["leases_of_daemons_delete"], (_dumps([daemon_id]),))

    def daemon_unregister(self, daemon_id: str) -> None:
        with self._tx() as db:
            db.execute(Q["daemon_delete"], (daemon_id,))
            db.execute(Q["leases_of_daemons_delete"], (_dumps([daemon_id]),))

    # -- leases: one holder at a time per name (docs/architecture.md, "The leader lease") -

    def lease_acquire(self, name: str, owner: str, ttl: float, now: float) -> str:
        """Hold `name` until `now + ttl` if it is free, expired, or `owner`'s already.
        Returns who holds it now: `owner` when it was taken (or renewed)."""
        with self._tx() as db:
            if db.execute(Q["lease_acquire"], (name, owner, now, ttl)).fetchall():
                return owner
            return str(db.execute(Q["lease_holder"], (name,)).fetchall()[0][0])

    def lease_renew(self, name: str, owner: str, ttl: float, now: float) -> bool:
        """Extend `owner`'s hold on `name` to `now + ttl`; False when it holds it no more."""
        with self._tx() as db:
            db.execute(Q["lease_renew"], (name, owner, now, ttl))
            return db.changes() == 1

    def lease_release(self, name: str, owner: str) -> None:
        """Let go of `name` if `owner` holds it, so another can take it at once."""
        with self._tx() as db:
            db.execute(Q["lease_release"], (name, owner))

    def daemon_list(self) -> list[DaemonInfo]:
        return [
            DaemonInfo(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else None, r[8]
            )
            for r in self.db.execute(Q["daemon_list"])
        ]
