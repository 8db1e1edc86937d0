"""The rescue: ending the attempts of daemons found dead.

The store finds the orphans (`job_orphans`: running jobs no registered daemon owns);
lifecycle decides where each goes (`outcomes.from_rescue`); the ends are written like any
other, fenced on the dead owner (`job_end_many`), so a daemon that comes back late finds
its claims gone. A claim none of the dead daemon's workers journaled as started goes back
to the queue without using an attempt (worker/starts.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set

from jobrunner.daemon import outcomes
from jobrunner.models import AttemptEnd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.store.base import Store


def rescue(
    store: Store,
    dead: Sequence[str],
    rescuer: str | None,
    starts: Mapping[str, Set[tuple[int, int]] | None],
    now: float,
) -> list[tuple[str | None, AttemptEnd]]:
    """Forget the daemons `dead` and end the attempts of every orphaned running job
    (except the rescuer's own). `starts`: by daemon, what its workers journaled as
    started; a daemon not in it, or None, counts every claim as started. Returns the
    ends applied, each with the owner it was taken from."""
    by_owner: dict[str | None, list[AttemptEnd]] = {}
    for job in store.job_orphans(dead, rescuer):
        journal = starts.get(job.owner or "")
        started = journal is None or (job.id, job.attempts) in journal
        by_owner.setdefault(job.owner, []).append(outcomes.from_rescue(job, started, now))
    applied = []
    for owner, ends in by_owner.items():
        for end, ok in zip(ends, store.job_end_many(owner, ends), strict=True):
            if ok:  # else it ended meanwhile after all
                applied.append((owner, end))
    return applied
