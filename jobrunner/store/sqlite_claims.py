"""The SQLite store's side of running jobs: claims, and how each claim ends (a result,
a release, a rescue). The daemon's hot path: a claim per batch, ends in groups.

A mixin of SQLiteStore (store/sqlite.py), which holds the connection and the write
transaction; every method is one transaction, and every end is fenced on (id,
attempt, owner) by the named queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from contextlib import AbstractContextManager

from jobrunner import lifecycle
from jobrunner.jsonutil import dumps as _dumps
from jobrunner.lifecycle import Outcome
from jobrunner.models import AttemptEnd, ClaimRequest, Job
from jobrunner.store.sqlite_sql import Q, attempt_row, end_attempt_row, job_from_row
from jobrunner.store.sqlite_tx import refusing_damage

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from typing import Any

# Under queue caps, queues are claimed one by one (exact caps) while at most this many
# have work; past it, across queues at once (_claim_candidates).
PER_QUEUE_AT_MOST = 64


@refusing_damage  # a damaged file: DatabaseCorrupt from every method, reads included
class SQLiteClaims:
    db: Any

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError  # SQLiteStore's write transaction

    def job_claim(self, request: ClaimRequest) -> list[Job]:
        """Claim up to `limit` due jobs, highest priority first, then oldest run_at."""
        if request.limit <= 0:
            return []
        with self._tx() as db:
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
            if most > 0:
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

    def job_end_many(self, owner: str, ends: Sequence[AttemptEnd]) -> list[bool]:
        """Record ended attempts; each applies only if `owner` still holds that attempt."""
        applied: list[bool] = []
        if not ends:
            return applied
        history: list[tuple[Any, ...]] = []
        with self._tx() as db:
            for end in ends:
                db.execute(Q["end_attempt"], end_attempt_row(end, owner))
                ok = db.changes() == 1
                applied.append(ok)
                if ok:
                    history.append(attempt_row(end, owner))
            if history:
                db.executemany(Q["attempt_insert"], history)
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

    def job_release_many(self, owner: str, jobs: Sequence[tuple[int, int]]) -> int:
        """Hand back claimed jobs that never started (shutdown); returns how many."""
        released = 0
        if not jobs:
            return released
        with self._tx() as db:
            for job_id, attempt in jobs:
                db.execute(Q["release"], (job_id, attempt, owner))
                released += db.changes()
        return released

    def job_rescue(
        self,
        now: float,
        dead: Sequence[str],
        rescuer: str | None,
        starts: Mapping[str, Set[tuple[int, int]] | None] | None = None,
    ) -> list[Job]:
        """Forget the daemons `dead` (the caller judged them dead, see daemon/peers.py)
        and end the claims of running jobs no registered daemon owns, except the
        rescuer's own. `now` only stamps what is written: no wall clock is compared
        with a lease here, so a clock stepped an hour rescues nothing by mistake.

        `starts`: by daemon, the (job, attempt) pairs its workers started, as far as
        their journals tell (worker/starts.py); a claim not among them never started and
        goes back to the queue without using an attempt. For a daemon not in `starts`,
        or whose journal is gone (None), every claim counts as started: an attempt, so
        a job that kills its daemon every time ends in the DLQ (invariant 3).
        Returns the jobs rescued, each with the state it was moved to."""
        starts = starts or {}
        with self._tx() as db:
            db.execute(Q["daemons_dead_delete"], (_dumps(list(dead)), rescuer))
            orphans = [job_from_row(r) for r in db.execute(Q["running_orphans"], (rescuer,))]
            for job in orphans:
                who = job.owner or "unknown"
                journal = starts.get(who)
                started = journal is None or (job.id, job.attempts) in journal
                decision = lifecycle.after_lost_daemon(
                    job.attempts,
                    job.max_attempts,
                    job.backoff,
                    now,
                    started=started,
                    cancel_requested=job.cancel_requested,
                )
                if started:
                    outcome = Outcome.LOST
                    error = f"lost: daemon {who} stopped heartbeating while the job ran"
                else:
                    outcome = Outcome.NOT_STARTED
                    error = (
                        f"not started: daemon {who} stopped heartbeating before the job "
                        "started; the claim did not count as an attempt"
                    )
                db.execute(
                    Q["end_attempt"],
                    (
                        decision.state.value,
                        decision.run_at,
                        None,
                        error,
                        None,
                        now if decision.state in lifecycle.FINAL else None,
                        job.id,
                        job.attempts,
                        job.owner,
                    ),
                )
                db.execute(
                    Q["attempt_insert"],
                    (
                        job.id,
                        job.attempts,
                        outcome.value,
                        job.started_at if started else None,
                        now,
                        error,
                        None,
                        job.owner,
                        None,
                        None,
                        None,
                        None,
                    ),
                )
                job.state = decision.state
        return orphans
