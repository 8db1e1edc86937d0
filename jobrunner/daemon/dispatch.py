"""Claiming jobs and handing them to workers.

The supervisor claims in batches sized to its free worker places and sends each worker
enough jobs for about DISPATCH_WINDOW of work: fast jobs go out a few at a time, slow
ones one per worker. Between claims it knows what it holds but has not sent (`ready`),
how many jobs of each queue run (for queue caps), and when to look at the database
again without a wake-up (`check_db`, `next_poll`, `trail_at`).
"""

from __future__ import annotations

import collections

from jobrunner import ratelimit
from jobrunner.daemon import outcomes
from jobrunner.models import ClaimRequest, Job
from jobrunner.store import WAKE_TRAIL, WAKE_TRAILING
from jobrunner.worker.pool import WorkerHandle, job_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from jobrunner.clock import Clock
    from jobrunner.config import Config
    from jobrunner.daemon.events import EventLog
    from jobrunner.daemon.records import Records
    from jobrunner.daemon.services import Services
    from jobrunner.store.base import Store

# A worker is sent enough jobs to stay busy this long, so fast jobs are claimed and
# dispatched in batches while slow ones are claimed one per free worker.
DISPATCH_WINDOW = 0.02
# claim this long after a rated queue's next window opens (clocks of hosts sharing a
# PostgreSQL database follow the database's to within a millisecond or two)
RATE_MARGIN = 0.002
MAX_DEPTH = 64


class Dispatch:
    def __init__(
        self,
        owner: str,
        queues: list[str] | None,
        store: Store,
        services: Services,
        records: Records,
        events: EventLog,
        clock: Clock,
    ) -> None:
        self.owner = owner
        self.queues = queues  # the daemon's own list, or None: every queue
        self.store = store
        self.services = services
        self.records = records
        self.events = events
        self.clock = clock
        self.ready: collections.deque[Job] = collections.deque()  # claimed, not sent
        self.running_by_queue: collections.Counter[str] = collections.Counter()
        self.avg_duration = 1.0  # seconds a job takes, smoothed
        self.check_db = True  # claim at the next step: a wake-up, a finish, a fire
        self.flush_first = False  # write the ends before the next claim (ended())
        self.next_poll = clock.monotonic()  # else claim no later than this
        self.trail_at = float("inf")  # and once more then (after a trailing wake-up)

    def ended(self, job: Job, took: float | None, config: Config) -> None:
        """A job sent to a worker is back (ended, skipped or found stale)."""
        self.running_by_queue[job.queue] -= 1
        # room under a cap: this daemon's, or the database's (the next claim counts)
        self.check_db |= (
            job.queue in config.queue_concurrency
            or job.queue in config.queue_per_daemon
            or job.queue in config.queue_per_key
        )
        # a limit the claim counts in the database: the end must be written first, or
        # the claim would still count this job as running (and find no room)
        self.flush_first |= (
            job.queue in config.queue_concurrency or job.queue in config.queue_per_key
        )
        if took is not None:
            self.avg_duration = 0.8 * self.avg_duration + 0.2 * max(took, 1e-6)

    def free_slots(self, workers: Iterable[WorkerHandle]) -> tuple[int, int, list[WorkerHandle]]:
        """(jobs per worker, free places for jobs, the workers that can take them)."""
        # rounded, not truncated: jobs of 10 ms go two at a time, so a worker finds its
        # next job waiting rather than a claim's round trip away
        depth = max(1, min(MAX_DEPTH, round(DISPATCH_WINDOW / max(self.avg_duration, 1e-6))))
        live = [w for w in workers if w.kill is None and not w.eof]
        return depth, sum(max(0, depth - len(w.inflight)) for w in live), live

    def fill(self, workers: Iterable[WorkerHandle], config: Config, mono: float) -> list[int]:
        """Claim what the free places can take, if it is time to, and send what is
        ready; returns the workers (by result fd) that were sent jobs."""
        depth, free, live = self.free_slots(workers)
        if free <= 0 or not self.services.lease_alive(mono):
            return []  # no claim and no start while peers may be rescuing ours
        want = free - len(self.ready)
        if want > 0 and (self.check_db or mono >= min(self.next_poll, self.trail_at)):
            self.check_db = False
            if mono >= self.trail_at:
                self.trail_at = float("inf")
            jobs = self._claim(want, config)
            if jobs:  # one claim, one event: the ids it took, with their attempt numbers
                self.events.emit(
                    "claim",
                    count=len(jobs),
                    jobs=[{"id": j.id, "attempt": j.attempts} for j in jobs],
                )
            if len(jobs) == want:
                self.check_db = True  # there may be more
            else:  # from after the claim: a rated queue's next window is a moment
                self.next_poll = self.clock.monotonic() + self._idle_wait(config)
            for job in jobs:
                if job.damage is None:
                    self.ready.append(job)
                else:  # its stored data cannot be read: it fails, its neighbours run
                    self.records.ends.append(outcomes.unreadable(job, self.clock.now()))
        return self._send(live, depth) if self.ready else []

    def woken(self, data: bytes, mono: float) -> None:
        """A wake-up came: claim at the next step, and after a trailing one (its submitter
        sends no other for WAKE_WINDOW) once more WAKE_TRAIL later. A later trailing
        wake-up moves a pending trail claim later, never earlier: the claim must come
        after what was submitted silently behind the latest one has committed, and one
        claim then also finds what the earlier one's trail was for. (Keeping the earlier
        time let a burst's last job, committed between the two, wait for the poll.)"""
        self.check_db = True
        if WAKE_TRAILING in data:
            self.trail_at = mono + WAKE_TRAIL

    def next_claim(self) -> float:
        """When to claim without a wake-up (free places permitting)."""
        return min(self.next_poll, self.trail_at)

    def poll_again_by(self, due: float) -> None:
        """A retry falls due at `due` (wall clock): claim no later."""
        due_in = max(0.0, due - self.clock.now())
        self.next_poll = min(self.next_poll, self.clock.monotonic() + due_in)

    def _claim(self, want: int, config: Config) -> list[Job]:
        caps: dict[str, int] = {}
        for name, limit in config.queue_per_daemon.items():
            waiting = sum(1 for j in self.ready if j.queue == name)
            caps[name] = max(0, limit - self.running_by_queue[name] - waiting)
        limits = config.queue_concurrency or None  # counted by the store, in the claim
        rates = config.queue_rate or None
        per_key = config.queue_per_key or None
        request = ClaimRequest(
            self.owner, self.clock.now(), want, self.queues, caps, limits, rates, per_key
        )
        return self.store.job_claim(request)

    def _idle_wait(self, config: Config) -> float:
        """How long to sleep before polling the database without a wake-up."""
        wait = config.daemon.poll_interval
        due = self.store.job_next_due()
        # One already due that the claim left is not ours to take now (another queue,
        # or its queue at its cap, whose next finish sets check_db): waiting for it
        # would be a busy loop.
        now = self.clock.now()
        if due is not None and due > now:
            wait = min(wait, due - now)
        for _, period in config.queue_rate.values():  # a throttled queue's next window
            wait = min(wait, ratelimit.next_window(now, period) - now + RATE_MARGIN)
        return wait

    def _send(self, live: list[WorkerHandle], depth: int) -> list[int]:
        """Hand ready jobs to the least busy workers, up to `depth` each, one message
        per worker, sent in the lease's epoch (worker/starts.py)."""
        batches: dict[int, tuple[WorkerHandle, list[Job]]] = {}
        mono = self.clock.monotonic()
        while self.ready:
            w = min(live, key=lambda x: len(x.inflight), default=None)
            if w is None or len(w.inflight) >= depth:
                break
            job = self.ready.popleft()
            if not w.inflight:
                w.head_since = mono
                w.head_wall = self.clock.now()
            w.inflight[job.id, job.attempts] = job
            self.running_by_queue[job.queue] += 1
            batches.setdefault(w.from_fd, (w, []))[1].append(job)
        for w, jobs in batches.values():
            w.send(("run", self.services.epoch, [job_spec(j) for j in jobs]))
        return list(batches)
