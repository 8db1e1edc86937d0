"""The operations layer: what every interface does to jobs and schedules.

The CLI, the Python `Client` and the HTTP API call these functions; they parse before
and render after, nothing else. Each operation takes the store (and the config where it
needs one) and `now`: callers read the clock (clock.py). Results are records; a request
that cannot be served raises the project's exceptions (errors.py), which every interface
maps the same way. See docs/architecture.md, "Operations".

This package holds what `jobrunner submit` needs (60 ms budget: no records, nothing
imported that submit does not load anyway, one module); the rest is imported where used:

- `control`: cancel, dlq retry, prune and dlq purge;
- `waiting`: the one place an interface waits for a job to change;
- `schedules`: run a schedule now, pause, resume.
"""

from __future__ import annotations

from jobrunner.errors import JobNotFound
from jobrunner.store import WAKE_SUBMIT

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from jobrunner.models import InsertResult, Job, JobInsert
    from jobrunner.store.base import Store


def submit(store: Store, jobs: Sequence[JobInsert], now: float) -> list[InsertResult]:
    """Write `jobs` (checked by `Client.prepare`) in one transaction, in order, and wake
    the daemons.

    One result per job: its id, and `created` False when a job with the same idempotency
    key already existed (its id is returned and nothing is written for this one)."""
    results = store.job_insert_many(jobs, now)
    if any(r.created for r in results) and not store.wakes_on_submit:
        wake_daemons(store)
    return results


def submit_calls(
    store: Store, template: JobInsert, args_json: Sequence[str], now: float
) -> list[int]:
    """One job per entry of `args_json` (each its args as checked JSON text), everything
    else as in `template`; one transaction, then a wake-up. Returns the ids in order."""
    ids = store.job_insert_calls(template, args_json, now)
    if ids and not store.wakes_on_submit:
        wake_daemons(store)
    return ids


def get_job(store: Store, job_id: int) -> Job:
    """The job, or JobNotFound."""
    job = store.job_get(job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}")
    return job


def wake_daemons(store: Store, message: bytes = WAKE_SUBMIT) -> None:
    """Tell the daemons of `store` that something changed (new work, or a cancel). Best
    effort: a daemon not reached finds the change at its next poll. Every operation wakes
    through here, after its transaction, by the backend's own waker (Store.wake), but a
    submit to a store that wakes in the submit's transaction (Store.wakes_on_submit)."""
    store.wake(message)


def job_record(store: Store, job: Job) -> dict[str, Any]:
    """The job's record (`status ID --json`, GET /jobs/ID), with `after` when it runs
    after other jobs: each one's id, what it needs of it and where that job is now."""
    record = job.to_dict()
    deps = store.job_dependencies(job.id)
    if deps:
        record["after"] = [
            {"id": d.job_id, "needs": d.need, "state": None if d.state is None else d.state.value}
            for d in deps
        ]
    return record
