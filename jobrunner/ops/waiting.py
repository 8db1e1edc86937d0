"""Waiting: the one place an interface waits for a job to change.

`wait`, `wait --progress`, `Client.wait`, `JobHandle.result` and `cancel` (waiting for the
kill) all wait here. Today by reading the job's row with a growing pause (1 ms, up to
100 ms); the event feed replaces `_watch` alone. See docs/architecture.md, "Operations".
"""

from __future__ import annotations

import time

from jobrunner import clock
from jobrunner.lifecycle import FINAL, State
from jobrunner.ops import get_job

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from collections.abc import Callable

    from jobrunner.config import Config
    from jobrunner.models import Job
    from jobrunner.store.base import Store

FIRST_PAUSE = 0.001  # a job that ends within milliseconds is seen within one
MAX_PAUSE = 0.1
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
    pause = FIRST_PAUSE
    seen: tuple[object, ...] | None = None
    while True:
        job = get_job(store, job_id)
        if on_change is not None:
            now_seen = (job.state, job.progress, job.progress_message)
            if now_seen != seen:
                seen = now_seen
                on_change(job)
        if done(job):
            return job
        if deadline is None:
            time.sleep(pause)
        else:
            left = deadline - clock.monotonic()
            if left <= 0:
                return job
            time.sleep(min(pause, left))
        pause = min(MAX_PAUSE, pause * 1.5)
