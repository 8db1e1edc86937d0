"""Following the job event feed: readers sleep until something is committed, then read
what is new, instead of polling job rows (docs/architecture.md, "Events")."""

from __future__ import annotations

from jobrunner import clock
from jobrunner.lifecycle import FINAL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from jobrunner.models import Event, Job
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


def wait_for_end(
    store: Store,
    job_id: int,
    timeout: float | None,
    on_event: Callable[[Event], None] | None = None,
) -> Job | None:
    """The job once it has ended, or None when `timeout` passed first. `on_event` sees
    its events as they come (a progress bar). JobNotFound for no such job."""
    from jobrunner.errors import JobNotFound

    watch = store.events_watch()
    try:
        since = store.events_last_seq()  # after the watch: nothing is missed
        job = store.job_get(job_id)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        if job.state in FINAL:
            return job
        follower = Follower(store, since, job_id, watch)
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - clock.monotonic())
            events = follower.next(left)
            if not events:
                return None
            for event in events:
                if on_event is not None:
                    on_event(event)
                if event.state in FINAL:
                    return store.job_get(job_id)
    finally:
        watch.close()
