"""PostgreSQL's side of running jobs: claims (one statement, FOR UPDATE SKIP LOCKED, so
daemons on many hosts never wait on each other's rows) and how each claim ends. As
store/sqlite_claims.py, every end fenced on (id, attempt, owner)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from jobrunner import ratelimit
from jobrunner.lifecycle import FINAL
from jobrunner.models import AttemptEnd, ClaimRequest, Job
from jobrunner.store import WAKE_SUBMIT
from jobrunner.store.pg.deps import release
from jobrunner.store.pg.feed import Q, append_events
from jobrunner.store.sqlite_claims import KEYED_AT_LEAST, KEYED_WINDOW, pick_keyed, rate_starts
from jobrunner.store.sqlite_sql import (
    attempt_row,
    end_attempt_row,
    end_event,
    event_row,
    job_from_row,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STARTED, RUNNING = "job.started", "running"
RELEASED = {"reason": "handed back unstarted"}


# end_attempt's parameters, in the order of sqlite_sql.end_attempt_row
END_ATTEMPT_PARAMS = (
    *("state", "run_at", "result", "error", "started_at", "finished_at"),
    *("id", "attempt", "owner", "uncounted"),
)


def within_limits(cur: Any, request: ClaimRequest) -> dict[str, int]:
    """The request's caps, each limited queue's lowered to what its limit leaves over
    the jobs running in it on every daemon, each rated one's to what its window leaves,
    under the queue's claim lock (lock_queues)."""
    caps = dict(request.caps or {})
    limits = request.limits or {}
    rates = request.rates or {}
    keyed = request.per_key or {}
    names = sorted(
        q for q in {*limits, *rates, *keyed} if request.queues is None or q in request.queues
    )
    if not names:
        return caps
    cur.execute(Q["lock_queues"], (names, request.now))
    locked = [row[0] for row in cur.fetchall()]  # the queues with a job due
    cur.execute(Q["running_in_queues"], (locked,))
    running = dict(cur.fetchall())
    for name in names:
        room = 0  # nothing due in it: nothing to claim
        if name in locked:
            room = request.limit
            if name in limits:
                room = max(0, limits[name] - running.get(name, 0))
            if name in rates:  # (a keyed queue alone: room as asked, keys counted later)
                most, period = rates[name]
                cur.execute(Q["queue_rate_get"], (name,))
                got = cur.fetchone()
                counted = (float(got[0]), int(got[1])) if got else None
                room = min(room, ratelimit.room(most, period, request.now, counted))
        caps[name] = min(caps.get(name, room), room)
    return caps


def claim_keyed(cur: Any, request: ClaimRequest, name: str, per_key: int, room: int) -> list[Job]:
    """Claim up to `room` due jobs of the keyed queue `name`, no key over `per_key`
    running, under the queue's lock (lock_queues): the keys' counts cannot change
    before this claim commits."""
    cur.execute(Q["running_keys"], (name,))
    running = dict(cur.fetchall())
    full = [key for key, n in running.items() if n >= per_key]
    window = max(KEYED_AT_LEAST, room * KEYED_WINDOW)
    cur.execute(
        Q["keyed_candidates"], {"queue": name, "now": request.now, "full": full, "limit": window}
    )
    ids = [job_id for _, _, job_id in pick_keyed(cur.fetchall(), running, per_key, room)]
    if not ids:
        return []
    cur.execute(Q["claim_ids"], {"owner": request.owner, "now": request.now, "ids": ids})
    return [job_from_row(r) for r in cur.fetchall()]


class PgClaims:
    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError  # PostgresStore's transaction

    def _rows(self, name: str, params: Any = ()) -> list[Any]:
        raise NotImplementedError

    def job_claim(self, request: ClaimRequest) -> list[Job]:
        """Up to `limit` due jobs, highest priority first, then oldest run_at, then id;
        a capped queue's at most its cap."""
        if request.limit <= 0:
            return []
        jobs: list[Job] = []
        with self._tx() as cur:
            caps = within_limits(cur, request)
            capped = sorted(caps)
            params = {
                "owner": request.owner,
                "now": request.now,
                "queues": list(request.queues) if request.queues is not None else None,
                "capped": capped,
                "limit": request.limit,
            }
            cur.execute(Q["claim"], params)
            jobs += [job_from_row(r) for r in cur.fetchall()]
            for name in capped:
                if request.queues is not None and name not in request.queues:
                    continue
                room = min(caps[name], request.limit)
                if room <= 0:
                    continue
                per_key = (request.per_key or {}).get(name)
                if per_key is not None:
                    jobs += claim_keyed(cur, request, name, per_key, room)
                    continue
                cur.execute(
                    Q["claim_queue"],
                    {"owner": request.owner, "now": request.now, "queue": name, "limit": room},
                )
                jobs += [job_from_row(r) for r in cur.fetchall()]
            # The best `limit` of all taken: the capped queues were claimed apart, so
            # hand back what falls past the limit (it never started).
            jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))
            kept, extra = jobs[: request.limit], jobs[request.limit :]
            for job in extra:
                cur.execute(Q["release"], (job.id, job.attempts, request.owner))
            if request.rates:
                for queue, (window, took) in rate_starts(request, kept).items():
                    cur.execute(Q["queue_rate_add"], (queue, window, took))
            append_events(
                cur, [event_row(request.now, j.id, j.attempts, STARTED, RUNNING) for j in kept]
            )
        return kept

    def job_end_many(self, owner: str | None, ends: Sequence[AttemptEnd]) -> list[bool]:
        applied: list[bool] = []
        if not ends:
            return applied
        history: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        awaited: list[int] = []  # ended jobs others run after
        # in id order: rows are locked as a submit after them locks them (pg/deps.py)
        ordered = sorted(range(len(ends)), key=lambda i: ends[i].job_id)
        names = END_ATTEMPT_PARAMS
        params = [dict(zip(names, end_attempt_row(ends[i], owner), strict=True)) for i in ordered]
        ok_at = [False] * len(ends)
        with self._tx() as cur:
            # one pipelined round trip for the batch, not one per end: each UPDATE returns
            # the id it ended, or nothing when the fence refused it (a rescued attempt)
            cur.executemany(Q["end_attempt"], params, returning=True)
            for n, i in enumerate(ordered):
                if n:
                    cur.nextset()
                got = cur.fetchone()
                ok_at[i] = got is not None
                if got is not None and got[1] and ends[i].next_state in FINAL:
                    awaited.append(ends[i].job_id)
            for end, ok in zip(ends, ok_at, strict=True):
                applied.append(ok)
                if ok:
                    history.append(attempt_row(end, owner))
                    events.append(end_event(end))
            if history:
                cur.executemany(Q["attempt_insert"], history)
            ready = (
                release(cur, awaited, max(e.finished_at for e in ends), events) if awaited else None
            )
            append_events(cur, events, WAKE_SUBMIT if ready else None)
        return applied

    def job_progress_many(
        self, owner: str, updates: Sequence[tuple[int, int, float, str | None, float]]
    ) -> None:
        if not updates:
            return
        events = []
        with self._tx() as cur:
            for job_id, attempt, fraction, message, at in updates:
                cur.execute(Q["job_progress"], (fraction, message, at, job_id, attempt, owner))
                if cur.rowcount:
                    data = {"progress": fraction, "message": message}
                    events.append(event_row(at, job_id, attempt, "job.progress", RUNNING, data))
            append_events(cur, events)

    def job_release_many(self, owner: str, jobs: Sequence[tuple[int, int]], now: float) -> int:
        if not jobs:
            return 0
        events = []
        with self._tx() as cur:
            for job_id, attempt in jobs:
                cur.execute(Q["release"], (job_id, attempt, owner))
                for (left,) in cur.fetchall():
                    events.append(event_row(now, job_id, left, "job.queued", "queued", RELEASED))
            append_events(cur, events)
        return len(events)

    def job_orphans(self, dead: Sequence[str], rescuer: str | None) -> list[Job]:
        with self._tx() as cur:
            cur.execute(Q["daemons_dead_delete"], (list(dead), rescuer))
            cur.execute(Q["leases_of_daemons_delete"], ([d for d in dead if d != rescuer],))
            cur.execute(Q["running_orphans"], (rescuer,))
            return [job_from_row(r) for r in cur.fetchall()]
