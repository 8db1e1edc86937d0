"""The operations layer (jobrunner/ops) against a real SQLite file, without a daemon.

A daemon's end of the wake-ups is the store's real waker, so what an operation wakes is
seen as a daemon would see it. Jobs are moved through their states with the store's own
methods (claim, end), as a daemon moves them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobrunner.config import Config, ScheduleConfig
from jobrunner.errors import JobNotFound, UsageError
from jobrunner.lifecycle import Outcome, State
from jobrunner.models import AttemptEnd, ClaimRequest, Job, JobInsert
from jobrunner.ops import control, get_job, schedules, submit, submit_calls, waiting
from jobrunner.store import WAKE_CANCEL, WAKE_SUBMIT, open_store
from jobrunner.store.base import Store, Waker

NOW = 1_800_000_000.0
DAY = 86400.0
OWNER = "host-a:100:aaaa"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.db")


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    opened = open_store(db)
    yield opened
    opened.close()


@pytest.fixture
def daemon_socket(store: Store) -> Iterator[Waker]:
    listener = store.waker("daemon-a")
    yield listener
    listener.close()


def job(**fields: Any) -> JobInsert:
    fields.setdefault("task", "app.tasks:work")
    return JobInsert(**fields)


def insert(store: Store, **fields: Any) -> int:
    return store.job_insert_many([job(**fields)], NOW)[0].id


def running(store: Store, **fields: Any) -> Job:
    """A job claimed by OWNER (its daemon), as the supervisor claims it."""
    job_id = insert(store, priority=100, **fields)
    claimed = store.job_claim(ClaimRequest(OWNER, NOW, 1))
    assert [j.id for j in claimed] == [job_id]
    return claimed[0]


def ended(store: Store, state: State, finished_at: float = NOW + 1) -> Job:
    """A job that ran once and ended in `state`."""
    claimed = running(store)
    outcome = {
        State.SUCCEEDED: Outcome.SUCCEEDED,
        State.DEAD: Outcome.FAILED,
        State.CANCELLED: Outcome.CANCELLED,
    }[state]
    end = AttemptEnd(
        claimed.id,
        claimed.attempts,
        outcome,
        state,
        result_json="1" if state is State.SUCCEEDED else None,
        error=None if state is State.SUCCEEDED else "boom",
        started_at=NOW,
        finished_at=finished_at,
    )
    assert store.job_end_many(OWNER, [end]) == [True]
    return get_job(store, claimed.id)


# -- get_job -------------------------------------------------------------------------------------


def test_get_job_of_an_unknown_id_is_job_not_found(store: Store) -> None:
    with pytest.raises(JobNotFound, match="no job with id 42"):
        get_job(store, 42)


# -- submitting ----------------------------------------------------------------------------------


def test_submit_creates_jobs_in_order_and_wakes_the_daemons(
    store: Store, daemon_socket: Waker
) -> None:
    results = submit(store, [job(args=[0]), job(args=[1])], NOW)
    assert [r.created for r in results] == [True, True]
    assert [get_job(store, r.id).args for r in results] == [[0], [1]]
    assert daemon_socket.drain() == WAKE_SUBMIT


def test_submit_with_a_key_used_before_returns_that_job_and_writes_nothing(
    store: Store, daemon_socket: Waker
) -> None:
    (first,) = submit(store, [job(key="nightly-2026-06-01", args=[1])], NOW)
    daemon_socket.drain()
    (again,) = submit(store, [job(key="nightly-2026-06-01", args=[2])], NOW + 5)
    assert (again.id, again.created) == (first.id, False)
    assert [j.id for j in store.job_list()] == [first.id]
    assert get_job(store, first.id).args == [1]
    assert daemon_socket.drain() == b""  # nothing new to run: no daemon is woken


def test_submit_reports_each_job_of_a_batch(store: Store) -> None:
    (used,) = submit(store, [job(key="k")], NOW)
    results = submit(store, [job(), job(key="k"), job(key="new")], NOW)
    assert [r.created for r in results] == [True, False, True]
    assert results[1].id == used.id


def test_submit_calls_makes_one_job_per_call_and_wakes(store: Store, daemon_socket: Waker) -> None:
    ids = submit_calls(store, job(queue="q"), [json.dumps([i]) for i in range(3)], NOW)
    assert [(get_job(store, i).args, get_job(store, i).queue) for i in ids] == [
        ([0], "q"),
        ([1], "q"),
        ([2], "q"),
    ]
    assert daemon_socket.drain() == WAKE_SUBMIT


# -- cancel --------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [None, 3600.0], ids=["queued", "scheduled"])
def test_cancel_of_a_waiting_job_cancels_it(store: Store, delay: float | None) -> None:
    job_id = insert(store, run_at=None if delay is None else NOW + delay)
    done = control.cancel(store, job_id, NOW + 1)
    assert done == control.Cancellation(control.CancelOutcome.CANCELLED, State.CANCELLED)
    cancelled = get_job(store, job_id)
    assert (cancelled.state, cancelled.finished_at) == (State.CANCELLED, NOW + 1)


def test_cancel_of_a_retrying_job_cancels_it(store: Store) -> None:
    claimed = running(store, retries=2)
    retry = AttemptEnd(
        claimed.id, 1, Outcome.FAILED, State.RETRYING, run_at=NOW + 60, finished_at=NOW
    )
    assert store.job_end_many(OWNER, [retry]) == [True]
    done = control.cancel(store, claimed.id, NOW + 1)
    assert done.outcome is control.CancelOutcome.CANCELLED
    assert get_job(store, claimed.id).state is State.CANCELLED


def test_cancel_of_a_running_job_asks_its_daemon_to_kill_it(
    store: Store, daemon_socket: Waker
) -> None:
    claimed = running(store)
    done = control.cancel(store, claimed.id, NOW + 1)
    assert done == control.Cancellation(control.CancelOutcome.REQUESTED, State.RUNNING)
    after = get_job(store, claimed.id)
    assert (after.state, after.cancel_requested) == (State.RUNNING, True)
    assert store.job_cancel_requests(OWNER) == [(claimed.id, claimed.attempts)]
    assert daemon_socket.drain() == WAKE_CANCEL


@pytest.mark.parametrize("state", [State.SUCCEEDED, State.DEAD, State.CANCELLED])
def test_cancel_of_an_ended_job_says_how_it_ended_and_changes_nothing(
    store: Store, daemon_socket: Waker, state: State
) -> None:
    before = ended(store, state)
    done = control.cancel(store, before.id, NOW + 99)
    assert done == control.Cancellation(control.CancelOutcome.ALREADY_ENDED, state)
    assert get_job(store, before.id) == before
    assert daemon_socket.drain() == b""


def test_cancel_of_an_unknown_job_is_job_not_found(store: Store) -> None:
    with pytest.raises(JobNotFound, match="no job with id 7"):
        control.cancel(store, 7, NOW)


# -- retry (dlq retry) ---------------------------------------------------------------------------


def test_retry_gives_dead_jobs_a_fresh_round_and_wakes(store: Store, daemon_socket: Waker) -> None:
    dead = [ended(store, State.DEAD), ended(store, State.DEAD)]
    daemon_socket.drain()
    result = control.retry(store, [dead[1].id], NOW + 10)
    assert result == control.RetryResult([dead[1].id], {}, [])
    again = get_job(store, dead[1].id)
    assert again.state is State.QUEUED and again.error is None
    assert again.max_attempts == again.attempts + again.retries + 1  # a fresh round
    assert len(store.attempt_list(dead[1].id)) == 1  # the earlier attempt stays
    assert get_job(store, dead[0].id).state is State.DEAD
    assert daemon_socket.drain() == WAKE_SUBMIT


def test_retry_of_every_dead_job(store: Store) -> None:
    dead = [ended(store, State.DEAD).id for _ in range(3)]
    kept = ended(store, State.SUCCEEDED).id
    assert control.retry(store, None, NOW + 10).moved == dead
    assert [get_job(store, i).state for i in dead] == [State.QUEUED] * 3
    assert get_job(store, kept).state is State.SUCCEEDED
    assert control.retry(store, None, NOW + 11) == control.RetryResult([], {}, [])


def test_retry_of_a_job_not_dead_moves_nothing_and_says_which(
    store: Store, daemon_socket: Waker
) -> None:
    dead = ended(store, State.DEAD).id
    done = ended(store, State.SUCCEEDED).id
    waiting_id = insert(store)
    daemon_socket.drain()
    result = control.retry(store, [dead, done, waiting_id], NOW + 10)
    assert result == control.RetryResult([], {done: State.SUCCEEDED, waiting_id: State.QUEUED}, [])
    assert get_job(store, dead).state is State.DEAD  # not moved either
    assert daemon_socket.drain() == b""


def test_retry_of_an_unknown_job_moves_nothing_and_says_which(store: Store) -> None:
    dead = ended(store, State.DEAD).id
    result = control.retry(store, [dead, 404], NOW + 10)
    assert result == control.RetryResult([], {}, [404])
    assert get_job(store, dead).state is State.DEAD


# -- prune and purge -----------------------------------------------------------------------------


def _with_log(store: Store, job: Job) -> Job:
    log_dir = store.output().local_dir
    os.makedirs(log_dir, exist_ok=True)
    Path(log_dir, f"{job.id}.log").write_text("output\n")
    return job


def _has_log(store: Store, job: Job) -> bool:
    return Path(store.output().local_dir, f"{job.id}.log").exists()


def test_prune_deletes_old_ended_jobs_with_their_logs(store: Store) -> None:
    old = [_with_log(store, ended(store, s, finished_at=NOW)) for s in control.ENDED]
    recent = _with_log(store, ended(store, State.SUCCEEDED, finished_at=NOW + 2 * DAY))
    queued = insert(store)
    batches: list[int] = []
    result = control.prune(store, DAY, NOW + 2.5 * DAY, on_batch=batches.append)
    assert result.removed == {"succeeded": 1, "dead": 1, "cancelled": 1}
    assert result.total == 3 and sum(batches) == 3
    for gone in old:
        assert store.job_get(gone.id) is None and not _has_log(store, gone)
    assert get_job(store, recent.id).state is State.SUCCEEDED and _has_log(store, recent)
    assert get_job(store, queued).state is State.QUEUED


def test_prune_of_nothing_to_delete(store: Store) -> None:
    ended(store, State.SUCCEEDED, finished_at=NOW)
    result = control.prune(store, DAY, NOW + 1)
    assert (result.removed, result.total) == ({}, 0)


def test_purge_deletes_only_dead_jobs(store: Store) -> None:
    dead = _with_log(store, ended(store, State.DEAD, finished_at=NOW))
    others = [ended(store, s, finished_at=NOW) for s in (State.SUCCEEDED, State.CANCELLED)]
    result = control.purge_dead(store, 0.0, NOW + 10)
    assert (result.removed, result.total) == ({"dead": 1}, 1)
    assert store.job_get(dead.id) is None and not _has_log(store, dead)
    assert all(store.job_get(j.id) is not None for j in others)


# -- waiting -------------------------------------------------------------------------------------


def test_wait_for_end_of_an_ended_job_returns_it(store: Store) -> None:
    done = ended(store, State.SUCCEEDED)
    assert waiting.wait_for_end(store, done.id, timeout=0) == done


def test_wait_for_end_returns_the_job_unended_when_the_timeout_passes(store: Store) -> None:
    job_id = insert(store)
    got = waiting.wait_for_end(store, job_id, timeout=0.05)
    assert (got.id, got.state) == (job_id, State.QUEUED)


def test_wait_for_end_sees_an_end_committed_by_another_connection(db: str, store: Store) -> None:
    job_id = insert(store)
    other = open_store(db)
    seen: list[State] = []

    def cancel_once_seen_waiting(job: Job) -> None:
        seen.append(job.state)
        if job.state is State.QUEUED:
            other.job_cancel(job_id, NOW + 1)

    try:
        got = waiting.wait_for_end(store, job_id, 30, on_progress=cancel_once_seen_waiting)
    finally:
        other.close()
    assert got.state is State.CANCELLED
    assert seen == [State.QUEUED, State.CANCELLED]


def test_wait_for_end_reports_each_change_of_progress(db: str, store: Store) -> None:
    claimed = running(store)
    other = open_store(db)
    steps = iter([(0.5, "half"), (0.5, "still half"), None])
    seen: list[tuple[State, float | None, str | None]] = []

    def next_step(job: Job) -> None:
        seen.append((job.state, job.progress, job.progress_message))
        if job.state is not State.RUNNING:
            return
        step = next(steps)
        if step is not None:
            progress, message = step
            other.job_progress_many(OWNER, [(job.id, job.attempts, progress, message, NOW)])
        else:
            finish = AttemptEnd(
                job.id, job.attempts, Outcome.SUCCEEDED, State.SUCCEEDED, result_json="1"
            )
            assert other.job_end_many(OWNER, [finish]) == [True]

    try:
        got = waiting.wait_for_end(store, claimed.id, 30, on_progress=next_step)
    finally:
        other.close()
    assert (got.state, got.result) == (State.SUCCEEDED, 1)
    assert seen == [
        (State.RUNNING, None, None),
        (State.RUNNING, 0.5, "half"),
        (State.RUNNING, 0.5, "still half"),
        (State.SUCCEEDED, 1.0, "still half"),  # success fills the bar
    ]


def test_wait_for_end_of_an_unknown_job_is_job_not_found(store: Store) -> None:
    with pytest.raises(JobNotFound):
        waiting.wait_for_end(store, 5, timeout=1)


def test_wait_for_stop_returns_once_the_job_no_longer_runs(store: Store) -> None:
    done = ended(store, State.CANCELLED)
    assert waiting.wait_for_stop(store, Config(), done.id) == done


def test_wait_for_stop_gives_up_after_the_kill_grace_and_slack(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    claimed = running(store)
    control.cancel(store, claimed.id, NOW + 1)
    config = Config()
    config.daemon.kill_grace = 0.05
    monkeypatch.setattr(waiting, "KILL_SLACK", 0.0)  # no daemon here will ever kill it
    got = waiting.wait_for_stop(store, config, claimed.id)
    assert (got.state, got.cancel_requested) == (State.RUNNING, True)


# -- schedules -----------------------------------------------------------------------------------


def _config() -> Config:
    nightly = ScheduleConfig(
        name="nightly", cron="0 3 * * *", task="app.jobs:report", args=[1], queue="reports"
    )
    tick = ScheduleConfig(name="tick", every=60.0, command=["true"])
    return Config(schedules={"nightly": nightly, "tick": tick})


def test_schedule_run_inserts_a_manual_job_now_and_wakes(
    store: Store, daemon_socket: Waker
) -> None:
    job_id = schedules.run(store, _config(), "nightly", NOW)
    fired = get_job(store, job_id)
    assert (fired.task, fired.args, fired.queue) == ("app.jobs:report", [1], "reports")
    assert (fired.schedule, fired.scheduled_for, fired.run_at) == ("nightly", NOW, NOW)
    assert fired.options.get("manual") is True and fired.state is State.QUEUED
    assert daemon_socket.drain() == WAKE_SUBMIT
    assert schedules.run(store, _config(), "nightly", NOW + 1) != job_id  # each run a job


def test_schedule_run_while_paused_still_runs(store: Store) -> None:
    schedules.pause(store, _config(), "tick", NOW)
    job_id = schedules.run(store, _config(), "tick", NOW + 1)
    assert get_job(store, job_id).command == ["true"]


def test_schedule_pause_and_resume_are_kept(store: Store) -> None:
    schedules.pause(store, _config(), "nightly", NOW)
    schedules.pause(store, _config(), "nightly", NOW + 1)  # twice is harmless
    assert {s.name: s.paused for s in store.schedule_list()} == {"nightly": True}
    schedules.resume(store, _config(), "nightly", NOW + 2)
    assert {s.name: s.paused for s in store.schedule_list()} == {"nightly": False}


@pytest.mark.parametrize("operation", [schedules.run, schedules.pause, schedules.resume])
def test_an_unknown_schedule_is_refused_and_nothing_written(store: Store, operation: Any) -> None:
    with pytest.raises(UsageError, match=r"no schedule named 'nigthly'.*nightly, tick"):
        operation(store, _config(), "nigthly", NOW)
    assert store.schedule_list() == [] and store.job_list() == []


def test_find_schedule_without_any_configured(store: Store) -> None:
    with pytest.raises(UsageError, match="none configured"):
        schedules.find_schedule(Config(), "x")
    assert schedules.find_schedule(_config(), "tick").name == "tick"
