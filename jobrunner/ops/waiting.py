"""Waiting: the one place an interface waits for a job to change.

`wait`, `wait --progress`, `Client.wait`, `JobHandle.result`, `cancel` (waiting for the
kill) and `logs --follow` all wait here, on the job event feed: they sleep until something
is committed (the store's watch) and read the job's new events; its row is read only when
one came. See docs/architecture.md, "Events" and "Operations".
"""

from __future__ import annotations

from jobrunner import clock
from jobrunner.follow import Follower
from jobrunner.lifecycle import FINAL, State
from jobrunner.ops import get_job

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from jobrunner.config import Config
    from jobrunner.models import Job
    from jobrunner.store.base import Store

STOP_POLL = 0.5  # seconds between looks at follow_output's `stop`
KILL_SLACK = 5.0  # beyond the daemon's TERM-to-KILL grace, before `cancel` stops waiting


def wait_for_end(
    store: Store,
    job_id: int,
    timeout: float | None = None,
    on_progress: Callable[[Job], None] | None = None,
) -> Job:
    """The job once it has ended, or as it is when `timeout` seconds have passed (its
    state then is not final). `on_progress` is called with the job first, and again each
    time its state or progress changes. JobNotFound if there is no such job (or it was
    deleted meanwhile)."""
    return _watch(store, job_id, lambda job: job.state in FINAL, timeout, on_progress)


def wait_for_stop(store: Store, config: Config, job_id: int) -> Job:
    """After a cancel was requested for a running job: the job once it is no longer
    running (its daemon killed it), or as it is when the daemon has had time to send
    TERM, wait the grace and KILL (`running` still: the daemon may be down)."""
    timeout = config.daemon.kill_grace + KILL_SLACK
    return _watch(store, job_id, lambda job: job.state is not State.RUNNING, timeout, None)


def _watch(
    store: Store,
    job_id: int,
    done: Callable[[Job], bool],
    timeout: float | None,
    on_change: Callable[[Job], None] | None,
) -> Job:
    deadline = None if timeout is None else clock.monotonic() + timeout
    watch = store.events_watch()
    try:
        # After the watch, before the row: a change between the two is in the feed.
        follower = Follower(store, store.events_last_seq(), job_id, watch)
        while True:
            job = get_job(store, job_id)
            if on_change is not None:
                on_change(job)
            if done(job):
                return job
            left = None if deadline is None else deadline - clock.monotonic()
            if left is not None and left <= 0:
                return job
            if not follower.next(left):  # nothing new about this job in time
                return get_job(store, job_id)
    finally:
        watch.close()


def follow_output(
    store: Store,
    job_id: int,
    write: Callable[[bytes], None],
    stop: threading.Event | None = None,
) -> None:
    """Write the job's output as it comes, until the job has ended and all it wrote is
    out, or `stop` is set (a reader that went away: seen within STOP_POLL seconds).
    Sleeps on the feed and on new output."""
    output = store.output()
    watch = store.events_watch(output=True)
    try:
        follower = Follower(store, store.events_last_seq(), job_id, watch)
        offset = 0
        ended = get_job(store, job_id).state in FINAL
        while stop is None or not stop.is_set():
            chunk = output.read(job_id, offset)
            if chunk:
                write(chunk)
                offset += len(chunk)
                continue
            if ended:
                return  # ended, and nothing was left to read after the end was seen
            if any(e.state in FINAL for e in follower.next(0)):
                ended = True  # read once more: what it wrote last
                continue
            watch.wait(None if stop is None else STOP_POLL)  # new output, or a commit
    finally:
        watch.close()
