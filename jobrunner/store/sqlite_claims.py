"""The SQLite store's side of running jobs: claims, and how each claim ends (a result,
a release, a rescue). The daemon's hot path: a claim per batch, ends in groups.

A mixin of SQLiteStore (store/sqlite.py), which holds the connection and the write
transaction; every method is one transaction, and every end is fenced on (id,
attempt, owner) by the named queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from jobrunner import ratelimit
from jobrunner.jsonutil import dumps as _dumps
from jobrunner.lifecycle import FINAL
from jobrunner.models import AttemptEnd, ClaimRequest, Job
from jobrunner.store import WAKE_SUBMIT
from jobrunner.store.sqlite_deps import release
from jobrunner.store.sqlite_sql import (
    Q,
    attempt_row,
    end_attempt_row,
    end_event,
    event_row,
    job_from_row,
)
from jobrunner.store.sqlite_tx import refusing_damage

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from typing import Any

STARTED, RUNNING = "job.started", "running"
RELEASED = {"reason": "handed back unstarted"}

# Under queue caps, queues are claimed one by one (exact caps) while at most this many
# have work; past it, across queues at once (_claim_candidates).
PER_QUEUE_AT_MOST = 64


def within_limits(db: Any, request: ClaimRequest) -> ClaimRequest:
    """The request with each limited queue's cap lowered to what its limit leaves over
    the jobs running in it on every daemon, counted in the claim's own transaction (one
    writer at a time: the count cannot change before the claim commits)."""
    limits = request.limits or {}
    names = [q for q in limits if request.queues is None or q in request.queues]
    running = dict(db.execute(Q["running_in_queues"], (_dumps(names),)).fetchall())
    caps = dict(request.caps or {})
    for name in names:
        room = max(0, limits[name] - running.get(name, 0))
        caps[name] = min(caps.get(name, room), room)
    for name, (most, period) in (request.rates or {}).items():
        if request.queues is None or name in request.queues:
            got = db.execute(Q["queue_rate_get"], (name,)).fetchall()
            room = ratelimit.room(most, period, request.now, tuple(got[0]) if got else None)
            caps[name] = min(caps.get(name, room), room)
    for name in request.per_key or {}:  # claimed apart, key by key (keyed_candidates)
        caps.setdefault(name, request.limit)
    return ClaimRequest(
        request.owner,
        request.now,
        request.limit,
        request.queues,
        caps,
        limits,
        request.rates,
        request.per_key,
    )


# A keyed queue's claim reads this many candidates per place it fills, at least
# KEYED_AT_LEAST: enough to step past jobs whose key has no room left in this claim.
KEYED_WINDOW, KEYED_AT_LEAST = 8, 64


def keyed_candidates(
    db: Any, name: str, per_key: int, now: float, most: int
) -> list[tuple[int, float, int]]:
    """(-priority, run_at, id) of at most `most` due jobs of queue `name` such that no
    concurrency key has more than `per_key` jobs running with those taken: keys already
    full are left out by the query, the rest are counted as jobs are taken."""
    running = dict(db.execute(Q["running_keys"], (name,)).fetchall())
    full = [key for key, n in running.items() if n >= per_key]
    window = max(KEYED_AT_LEAST, most * KEYED_WINDOW)
    rows = db.execute(Q["keyed_candidates"], (name, now, _dumps(full), window))
    return pick_keyed(rows, running, per_key, most)


def pick_keyed(
    rows: Any, running: dict[str, int], per_key: int, most: int
) -> list[tuple[int, float, int]]:
    """The best of `rows` (id, priority, run_at, key), in order, while each key's
    running jobs and those taken stay within `per_key`."""
    taken: dict[str, int] = {}
    chosen: list[tuple[int, float, int]] = []
    for job_id, priority, run_at, key in rows:
        if key is not None:
            if running.get(key, 0) + taken.get(key, 0) >= per_key:
                continue
            taken[key] = taken.get(key, 0) + 1
        chosen.append((-priority, run_at, job_id))
        if len(chosen) >= most:
            break
    return chosen


def rate_starts(request: ClaimRequest, jobs: list[Job]) -> dict[str, tuple[float, int]]:
    """What a claim adds to its rated queues' counts: (window start, jobs taken)."""
    taken: dict[str, tuple[float, int]] = {}
    for job in jobs:
        rate = (request.rates or {}).get(job.queue)
        if rate is not None:
            window = ratelimit.window_start(request.now, rate[1])
            taken[job.queue] = (window, taken.get(job.queue, (window, 0))[1] + 1)
    return taken


@refusing_damage  # a damaged file: DatabaseCorrupt from every method, reads included
class SQLiteClaims:
    db: Any

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError  # SQLiteStore's write transaction

    def wake(self, message: bytes) -> int:
        raise NotImplementedError  # SQLiteStore's

    def job_claim(self, request: ClaimRequest) -> list[Job]:
        """Claim up to `limit` due jobs, highest priority first, then oldest run_at."""
        if request.limit <= 0:
            return []
        with self._tx() as db:
            if request.limits or request.rates or request.per_key:
                request = within_limits(db, request)
            candidates = self._claim_candidates(db, request)
            if not candidates:
                return []
            candidates.sort()
            chosen = [job_id for _, _, job_id in candidates[: request.limit]]
            order = {job_id: i for i, job_id in enumerate(chosen)}
            rows = db.execute(
                Q["claim_jobs"], (request.owner, request.now, _dumps(chosen))
            ).fetchall()
            jobs = [job_from_row(r) for r in rows]
            if request.rates:
                for queue, (window, took) in rate_starts(request, jobs).items():
                    db.execute(Q["queue_rate_add"], (queue, window, took))
            db.executemany(
                Q["event_insert"],
                [event_row(request.now, j.id, j.attempts, STARTED, RUNNING) for j in jobs],
            )
        jobs.sort(key=lambda j: order[j.id])
        return jobs

    @staticmethod
    def _claim_candidates(db: Any, request: ClaimRequest) -> list[tuple[int, float, int]]:
        """(-priority, run_at, id) of the jobs the claim may take, at least the best
        `limit` of them.

        Queue by queue (an index search each) for a daemon's own list of queues, and
        under queue caps while few queues have work: exact, caps included. Otherwise,
        whatever the number of queues, one walk of jobs_queued for the ready jobs and
        one of jobs_due for delayed ones that fell due, capped queues claimed apart."""
        caps = request.caps or {}
        names = request.queues
        if names is None and caps:
            names = [n for (n,) in db.execute(Q["ready_queues"], (PER_QUEUE_AT_MOST + 1,))]
            if len(names) > PER_QUEUE_AT_MOST:
                names = None
        candidates: list[tuple[int, float, int]] = []

        def one_queue(name: str) -> None:
            most = min(request.limit, caps.get(name, request.limit))
            per_key = (request.per_key or {}).get(name)
            if most > 0 and per_key is not None:
                candidates.extend(keyed_candidates(db, name, per_key, request.now, most))
            elif most > 0:
                for job_id, priority, run_at in db.execute(
                    Q["claim_candidates"], (name, request.now, most)
                ):
                    candidates.append((-priority, run_at, job_id))

        if names is not None:
            for name in names:
                one_queue(name)
            return candidates
        capped = sorted(caps)
        for job_id, priority, run_at in db.execute(
            Q["claim_queued_anywhere"], (_dumps(capped), request.limit)
        ):
            candidates.append((-priority, run_at, job_id))
        for job_id, priority, run_at, queue in db.execute(
            Q["claim_due_anywhere"], (request.now, request.limit)
        ):
            if queue not in caps:
                candidates.append((-priority, run_at, job_id))
        for name in capped:
            one_queue(name)
        return candidates

    def job_end_many(self, owner: str | None, ends: Sequence[AttemptEnd]) -> list[bool]:
        """Record ended attempts; each applies only if `owner` still holds that attempt."""
        applied: list[bool] = []
        if not ends:
            return applied
        history: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        awaited: list[int] = []  # ended jobs others run after
        with self._tx() as db:
            for end in ends:
                got = db.execute(Q["end_attempt"], end_attempt_row(end, owner)).fetchall()
                ok = bool(got)
                applied.append(ok)
                if ok:
                    history.append(attempt_row(end, owner))
                    events.append(end_event(end))
                    if got[0][0] and end.next_state in FINAL:
                        awaited.append(end.job_id)
            if history:
                db.executemany(Q["attempt_insert"], history)
                db.executemany(Q["event_insert"], events)
            ready = release(db, awaited, max(e.finished_at for e in ends)) if awaited else None
        if ready:
            self.wake(WAKE_SUBMIT)  # the daemons, this one too: dependents to claim
        return applied

    def job_progress_many(
        self, owner: str, updates: Sequence[tuple[int, int, float, str | None, float]]
    ) -> None:
        """Record progress (job id, attempt, fraction, message, at) of running attempts."""
        if not updates:
            return
        with self._tx() as db:
            for job_id, attempt, fraction, message, at in updates:
                db.execute(Q["job_progress"], (fraction, message, at, job_id, attempt, owner))
                if db.changes():
                    data = {"progress": fraction, "message": message}
                    db.execute(
                        Q["event_insert"],
                        event_row(at, job_id, attempt, "job.progress", RUNNING, data),
                    )

    def job_release_many(self, owner: str, jobs: Sequence[tuple[int, int]], now: float) -> int:
        """Hand back claimed jobs that never started (shutdown); returns how many."""
        released = 0
        if not jobs:
            return released
        with self._tx() as db:
            for job_id, attempt in jobs:
                for (left,) in db.execute(Q["release"], (job_id, attempt, owner)).fetchall():
                    released += 1
                    db.execute(
                        Q["event_insert"],
                        event_row(now, job_id, left, "job.queued", "queued", RELEASED),
                    )
        return released

    def job_orphans(self, dead: Sequence[str], rescuer: str | None) -> list[Job]:
        """Forget the daemons `dead` (the caller judged them dead, see daemon/peers.py)
        and return the running jobs no registered daemon owns now, except the
        rescuer's own. Their attempts are then ended like any other (job_end_many,
        fenced on the dead owner), by lifecycle's decision: the rescue holds no policy."""
        with self._tx() as db:
            db.execute(Q["daemons_dead_delete"], (_dumps(list(dead)), rescuer))
            db.execute(Q["leases_of_daemons_delete"], (_dumps([d for d in dead if d != rescuer]),))
            return [job_from_row(r) for r in db.execute(Q["running_orphans"], (rescuer,))]
