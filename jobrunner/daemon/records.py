"""What the supervisor has to write to the database, kept until it is written.

Ends of attempts, progress reports and claims handed back pile up between writes: the
supervisor writes them once per loop step, in one transaction each, so a job costs a
fraction of a transaction. A list is cleared only once its write committed: a failed
write (a full disk, a lock held too long) loses nothing, and the supervisor retries
after backing off (daemon/backoff.py).
"""

from __future__ import annotations

import logging

from jobrunner.daemon import outcomes
from jobrunner.errors import DatabaseCorrupt, StoreUnavailable
from jobrunner.models import AttemptEnd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.clock import Clock
    from jobrunner.daemon.events import EventLog
    from jobrunner.daemon.shipping import OutputShipper
    from jobrunner.store.base import Store

log = logging.getLogger("jobrunner.daemon")

Progress = tuple[int, int, float, str | None, float]  # job, attempt, fraction, message, at


class Records:
    def __init__(self, store: Store, owner: str, events: EventLog, clock: Clock) -> None:
        self.store = store
        self.owner = owner
        self.events = events
        self.clock = clock
        self.ends: list[AttemptEnd] = []
        self.progress: dict[tuple[int, int], Progress] = {}  # the latest, by (job, attempt)
        self.release: list[tuple[int, int]] = []  # claims never started, handed back
        self.shipper: OutputShipper | None = None  # a store that keeps output for all hosts

    def pending(self) -> int:
        """How many records wait to be written (progress aside: it is advice)."""
        return len(self.ends) + len(self.release)

    def clear_claims(self) -> None:
        """The daemon's claims were rescued: their progress and hand-backs are not its to
        write any more. (Ends stay: the store's fence refuses them, and says so.)"""
        self.progress.clear()
        self.release.clear()

    def write(self) -> float | None:
        """Write everything pending. Returns the earliest time (wall clock) a retry just
        recorded falls due, for the supervisor to poll then."""
        due = None
        # progress first: an end written before it would fence out the job's last
        # report (often its final message, sent with the result)
        if self.progress:
            updates = list(self.progress.values())
            try:
                self.store.job_progress_many(self.owner, updates)
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - progress is advice, never fatal
                log.warning("progress of %d job(s) not recorded: %s", len(updates), exc)
            self.progress = {}
        damage: DatabaseCorrupt | None = None
        if self.ends:
            ends = self.ends
            if self.shipper is not None:  # what they printed is in before they end
                self.shipper.ship_ends(ends)
            try:
                applied = self._record_ends(ends)
                self.ends = []
            except DatabaseCorrupt as exc:
                damage = exc
                ends, applied, self.ends = self._record_around_damage(ends)
            if self.shipper is not None:
                self.shipper.forget(ends)
            for end, ok in zip(ends, applied, strict=True):
                if not ok:
                    log.warning(
                        "job %d attempt %d: result dropped, the attempt was no longer "
                        "ours (rescued or cancelled meanwhile)",
                        end.job_id,
                        end.attempt,
                    )
                    continue
                if end.run_at is not None and (due is None or end.run_at < due):
                    due = end.run_at
                outcomes.log_end(self.events, end)
        if damage is not None:
            raise damage
        if self.release:
            self.store.job_release_many(self.owner, self.release, self.clock.now())
            self.release = []
        return due

    def _record_around_damage(
        self, ends: list[AttemptEnd]
    ) -> tuple[list[AttemptEnd], list[bool], list[AttemptEnd]]:
        """A damaged page refused the batch (a row on it, or a b-tree page the write had
        to rebalance): record each end alone, so those whose pages are sound are kept.
        Returns the ends recorded, whether each applied, and those left unwritten."""
        done: list[AttemptEnd] = []
        applied: list[bool] = []
        left: list[AttemptEnd] = []
        for i, end in enumerate(ends):
            try:
                applied += self.store.job_end_many(self.owner, [end])
                done.append(end)
            except DatabaseCorrupt:
                left.append(end)
            except StoreUnavailable:
                left += ends[i:]
                break
        return done, applied, left

    def _record_ends(self, ends: list[AttemptEnd]) -> list[bool]:
        """Record ends in one transaction. One that cannot be stored (whatever the
        reason: what a job returned is its own) must fail that job, never the daemon
        or the jobs recorded with it: the batch is then recorded one end at a time."""
        try:
            return self.store.job_end_many(self.owner, ends)
        except StoreUnavailable:
            raise
        except Exception:  # noqa: BLE001 - found out below, end by end
            pass
        applied = []
        for end in ends:
            try:
                applied += self.store.job_end_many(self.owner, [end])
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001
                log.error(
                    "job %d attempt %d: its outcome cannot be recorded (%s: %s); failing it",
                    end.job_id,
                    end.attempt,
                    type(exc).__name__,
                    exc,
                )
                applied += self.store.job_end_many(self.owner, [outcomes.unrecordable(end, exc)])
        return applied
