"""What becomes of the jobs the daemon's workers hold.

A job sent to a worker comes back one way or another: a result; skipped (cancelled
before it started, or handed back at a stop); stale (not started: the lease had run
out); or its worker died. Each way has one outcome here: an end to record, a claim to
hand back, a job to send again. Jobs are keyed by (job id, attempt) everywhere: a job
rescued and claimed again by this daemon is a new key, so a late report of the old
attempt never lands on the new one (docs/architecture.md, "Invariants").
"""

from __future__ import annotations

import logging
import os
import signal

from jobrunner.daemon import outcomes
from jobrunner.lifecycle import Outcome
from jobrunner.models import AttemptEnd, Job
from jobrunner.worker.pool import KillOrder, WorkerHandle
from jobrunner.worker.protocol import JobDone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from jobrunner.clock import Clock
    from jobrunner.config import Config
    from jobrunner.daemon.dispatch import Dispatch
    from jobrunner.daemon.records import Records

log = logging.getLogger("jobrunner.daemon")


class InFlight:
    def __init__(self, dispatch: Dispatch, records: Records, clock: Clock) -> None:
        self.dispatch = dispatch
        self.records = records
        self.clock = clock
        # Held when peers rescued this daemon's claims: whatever the workers report of
        # these (job, attempt) pairs is no longer this daemon's to record.
        self.dropped: set[tuple[int, int]] = set()

    def on_messages(
        self, w: WorkerHandle, messages: list[object], config: Config, stopping: bool
    ) -> None:
        mono = self.clock.monotonic()
        for message in messages:
            if isinstance(message, JobDone):
                key = (message.id, message.attempt)
                job = w.inflight.pop(key, None)
                if job is None:
                    continue
                w.head_since = mono
                w.head_wall = message.finished_at
                self.dispatch.ended(job, message.finished_at - message.started_at, config)
                if self._forget(key):
                    log.warning(
                        "job %d attempt %d: result dropped, its claim was rescued while "
                        "this daemon was presumed dead",
                        *key,
                    )
                    continue
                self.records.ends.append(outcomes.from_done(job, message, self.clock.now()))
                continue
            assert isinstance(message, tuple)
            kind: str = message[0]
            key = (message[1], message[2])
            if kind == "progress":
                if key in w.inflight and key not in self.dropped:
                    fraction, text = message[3], message[4]
                    self.records.progress[key] = (*key, fraction, text, self.clock.now())
                continue
            job = w.inflight.pop(key, None)
            if job is None:
                continue
            self.dispatch.ended(job, None, config)
            if self._forget(key):
                pass
            elif stopping:  # skipped, or stale: handed back
                self.records.release.append(key)
            elif kind == "stale":  # the worker saw the lease run out: ours if it holds
                log.info(
                    "job %d attempt %d: not started, the lease had run out; sent again "
                    "if the claim is still this daemon's",
                    *key,
                )
                self.dispatch.ready.appendleft(job)
            else:  # skipped because it was cancelled before it started
                self.records.ends.append(self._cancelled_unstarted(job))

    def on_worker_death(
        self,
        w: WorkerHandle,
        status: int,
        how: str,
        config: Config,
        stopping: bool,
        *,
        max_rss_kb: int,
        oom_killed: bool,
    ) -> None:
        """Its running job ended with it (killed by us, or crashed); the jobs behind it
        never started and run elsewhere (or are handed back at a stop)."""
        head = w.head
        if head is not None:
            self.dispatch.ended(head, None, config)
            key = (head.id, head.attempts)
            w.inflight.pop(key)
            end = outcomes.from_death(
                head,
                w.kill,
                how,
                w.head_wall,
                self.clock.now(),
                signal_number=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                max_rss_kb=max_rss_kb,
                oom_killed=oom_killed,
            )
            if not self._forget(key):  # else killed because its claim was rescued
                self.records.ends.append(end)
            if w.kill is None:
                log.warning("job %d (%s): %s", head.id, head.label, how)
        for key, job in reversed(w.inflight.items()):
            self.dispatch.ended(job, None, config)
            if self._forget(key):
                pass
            elif stopping:
                self.records.release.append(key)
            else:
                self.dispatch.ready.appendleft(job)

    def cancel(
        self,
        workers: Iterable[WorkerHandle],
        requests: Mapping[int, int],
        mono: float,
        grace: float,
    ) -> None:
        """Carry out cancel requests (job id -> the attempt asked to stop): kill a running
        job's processes, drop one not started yet."""
        for w in workers:
            for index, ((job_id, attempt), job) in enumerate(list(w.inflight.items())):
                if requests.get(job_id) != attempt:
                    continue
                if index == 0 and w.kill is None:
                    w.kill = KillOrder("cancel", job_id, mono + grace)
                    w.signal_group(signal.SIGTERM)
                    log.info(
                        "job %d (%s) cancelled: SIGTERM to its process group", job_id, job.label
                    )
                elif index > 0:
                    w.send(("skip", job_id, attempt))
        for job in list(self.dispatch.ready):
            if requests.get(job.id) == job.attempts:
                self.dispatch.ready.remove(job)
                self.records.ends.append(self._cancelled_unstarted(job))

    def drop_all(self, workers: Iterable[WorkerHandle], mono: float, grace: float) -> None:
        """Peers presumed this daemon dead and rescued every claim it held: none of them
        is ours any more. Jobs not sent are forgotten; jobs sent are never started (a new
        lease epoch, worker/starts.py); running ones are killed, since the rescued job
        may already run elsewhere; whatever their workers report is not recorded."""
        self.dispatch.ready.clear()
        self.records.clear_claims()
        for w in workers:
            self.dropped.update(w.inflight)
            head = w.head
            if head is not None and w.kill is None:
                w.kill = KillOrder("lost", head.id, mono + grace)
                w.signal_group(signal.SIGTERM)
                log.warning(
                    "job %d (%s) attempt %d: its claim was rescued; SIGTERM to its process group",
                    head.id,
                    head.label,
                    head.attempts,
                )

    def _forget(self, key: tuple[int, int]) -> bool:
        """Whether `key` was dropped (and is forgotten now: it came back)."""
        if key in self.dropped:
            self.dropped.discard(key)
            return True
        return False

    def _cancelled_unstarted(self, job: Job) -> AttemptEnd:
        return outcomes.attempt_end(
            job, Outcome.CANCELLED, self.clock.now(), error="cancelled before it started"
        )
