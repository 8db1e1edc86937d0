"""What daemons on many hosts coordinate through, on PostgreSQL: schedules (the
compare-and-set fire), the daemons' registry and heartbeats, and named leases. As
store/sqlite_daemons.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager

from jobrunner.jsonutil import dumps as _dumps
from jobrunner.models import DaemonInfo, Job, JobInsert, ScheduleState
from jobrunner.store.pg.feed import Q, append_events
from jobrunner.store.sqlite_sql import event_row, insert_row, job_from_row, submitted_event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class PgCoordination:
    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError  # PostgresStore's transaction

    def _rows(self, name: str, params: Any = ()) -> list[Any]:
        raise NotImplementedError

    # -- schedules ------------------------------------------------------------------------

    def schedule_list(self) -> list[ScheduleState]:
        return [ScheduleState(r[0], r[1], bool(r[2]), r[3]) for r in self._rows("schedule_list")]

    def schedule_fire(
        self,
        name: str,
        expected_last: float | None,
        new_last: float,
        jobs: Sequence[JobInsert],
        now: float,
    ) -> list[int] | None:
        """A schedule's jobs inserted and its `last_fire` moved on, in one transaction;
        compare-and-set on `expected_last`: None (nothing written) when another daemon
        moved it first, or it is paused."""
        events: list[tuple[Any, ...]] = []
        with self._tx() as cur:
            if expected_last is None:
                cur.execute(Q["schedule_create"], (name, new_last, now))
            else:
                cur.execute(Q["schedule_advance"], (new_last, now, name, expected_last))
            if cur.rowcount != 1:
                return None
            ids: list[int] = []
            rows = [insert_row(job, now) for job in jobs]
            if rows:  # one pipelined round trip: a catch-up inserts thousands at once
                cur.executemany(Q["job_insert_fire"], rows, returning=True)
            for i, (job, row) in enumerate(zip(jobs, rows, strict=True)):
                if i:
                    cur.nextset()
                for (job_id,) in cur.fetchall():  # none: that fire's job exists already
                    ids.append(job_id)
                    fired = {"schedule": name, "scheduled_for": job.scheduled_for}
                    events.append(event_row(now, job_id, 0, "schedule.fired", row[0], fired))
                    events.append(submitted_event(now, job_id, row))
            append_events(cur, events)
        return ids

    def schedule_set_paused(self, name: str, paused: bool, now: float) -> None:
        with self._tx() as cur:
            cur.execute(Q["schedule_set_paused"], {"name": name, "now": now, "paused": paused})

    def schedule_states(self, names: Sequence[str]) -> list[ScheduleState]:
        rows = self._rows("schedule_states", (list(names),))
        return [ScheduleState(r[0], r[1], bool(r[2]), r[3]) for r in rows]

    def schedule_last_jobs(self, name: str, last_fire: float) -> list[Job]:
        rows = self._rows("schedule_last_jobs", {"name": name, "last": last_fire})
        return [job_from_row(r) for r in rows]

    # -- daemons --------------------------------------------------------------------------

    def daemon_register(self, info: DaemonInfo) -> None:
        with self._tx() as cur:
            cur.execute(
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
        with self._tx() as cur:
            cur.execute(Q["daemon_heartbeat"], (now, lease_until, daemon_id))
            return bool(cur.rowcount == 1)

    def daemon_expire(self, daemon_id: str) -> None:
        with self._tx() as cur:
            cur.execute(Q["daemon_expire"], (daemon_id,))
            cur.execute(Q["leases_of_daemons_delete"], ([daemon_id],))

    def daemon_unregister(self, daemon_id: str) -> None:
        with self._tx() as cur:
            cur.execute(Q["daemon_delete"], (daemon_id,))
            cur.execute(Q["leases_of_daemons_delete"], ([daemon_id],))

    def daemon_list(self) -> list[DaemonInfo]:
        return [
            DaemonInfo(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else None, r[8]
            )
            for r in self._rows("daemon_list")
        ]

    # -- leases ---------------------------------------------------------------------------

    def lease_acquire(self, name: str, owner: str, ttl: float, now: float) -> str:
        with self._tx() as cur:
            cur.execute(Q["lease_acquire"], {"name": name, "owner": owner, "now": now, "ttl": ttl})
            if cur.fetchone() is not None:
                return owner
            cur.execute(Q["lease_holder"], (name,))
            return str(cur.fetchone()[0])

    def lease_renew(self, name: str, owner: str, ttl: float, now: float) -> bool:
        with self._tx() as cur:
            cur.execute(Q["lease_renew"], {"name": name, "owner": owner, "now": now, "ttl": ttl})
            return bool(cur.rowcount == 1)

    def lease_release(self, name: str, owner: str) -> None:
        with self._tx() as cur:
            cur.execute(Q["lease_release"], (name, owner))
