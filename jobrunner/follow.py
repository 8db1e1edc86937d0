"""Following the job event feed: readers sleep until something is committed, then read
what is new, instead of polling job rows (docs/architecture.md, "Events")."""

from __future__ import annotations

from jobrunner import clock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.models import Event
    from jobrunner.store.base import FeedWatch, Store

BATCH = 1000


class Follower:
    """New events after `since` (of every job, or of `job_id`), a batch at a time. The
    watch is made before the first read, so a commit never slips between a read that
    found nothing and the sleep that follows it."""

    def __init__(
        self, store: Store, since: int, job_id: int | None = None, watch: FeedWatch | None = None
    ) -> None:
        self.store = store
        self.seq = since
        self.job_id = job_id
        self.watch = watch if watch is not None else store.events_watch()

    def next(self, timeout: float | None) -> list[Event]:
        """The next events, waiting up to `timeout` seconds (None: for ever) for some;
        [] when it passed."""
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            batch = self.store.events_after(self.seq, self.job_id, BATCH)
            if batch:
                self.seq = batch[-1].seq
                return batch
            left = None if deadline is None else deadline - clock.monotonic()
            if left is not None and left <= 0:
                return []
            self.watch.wait(left)

    def close(self) -> None:
        self.watch.close()
