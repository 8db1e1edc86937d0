"""The job event feed, for every backend: each state change appends one event in its
own transaction, in commit order, and a job's events replay its state history exactly,
every step a transition lifecycle.TRANSITIONS allows."""

from __future__ import annotations

import json

from jobrunner import lifecycle
from jobrunner.lifecycle import Outcome, State
from jobrunner.models import Event, JobInsert, ScheduleState
from jobrunner.store.base import Store
from tests.store.test_conformance import (
    NOW,
    OTHER,
    OWNER,
    claim,
    claim_one,
    daemon,
    end,
    get,
    insert,
    job,
    rescue_jobs,
)


def events(store: Store, job_id: int | None = None) -> list[Event]:
    return store.events_after(0, job_id, 10_000)


def kinds(store: Store, job_id: int) -> list[tuple[str, str, int]]:
    return [(e.type, str(e.state), e.attempt) for e in events(store, job_id)]


def assert_replays(store: Store, job_id: int) -> None:
    """The job's events, in order, are a walk of the state machine from its submission
    to the state the job is in now (progress reports change no state)."""
    history = events(store, job_id)
    assert history, f"job {job_id} has no events"
    assert history[0].type in ("job.queued", "job.scheduled", "schedule.fired")
    state = history[0].state
    for event in history[1:]:
        if event.state is not state:  # a progress report, or a fire and its job: no change
            assert lifecycle.can_move(state, event.state), (state, event)
            state = event.state
    assert state is get(store, job_id).state


def test_a_jobs_life_is_its_events(store: Store) -> None:
    (job_id,) = insert(store, job(retries=1, backoff=0.0))
    first = claim_one(store, job_id)
    store.job_progress_many(OWNER, [(job_id, 1, 0.5, "half", NOW + 1)])
    store.job_end_many(
        OWNER, [end(first, Outcome.FAILED, State.RETRYING, run_at=NOW, error="boom\nline 2")]
    )
    second = claim_one(store, job_id, now=NOW + 2)
    store.job_end_many(OWNER, [end(second, Outcome.SUCCEEDED, State.SUCCEEDED, result=7)])
    assert kinds(store, job_id) == [
        ("job.queued", "queued", 0),
        ("job.started", "running", 1),
        ("job.progress", "running", 1),
        ("job.retrying", "retrying", 1),
        ("job.started", "running", 2),
        ("job.succeeded", "succeeded", 2),
    ]
    progress, failed = events(store, job_id)[2:4]
    assert progress.data == {"progress": 0.5, "message": "half"}
    assert failed.data == {"outcome": "failed", "error": "boom"}
    assert_replays(store, job_id)


def test_seqs_grow_in_commit_order_and_readers_page_through_them(store: Store) -> None:
    ids = insert(store, *[job() for _ in range(5)])
    assert store.events_last_seq() == 5
    feed = events(store)
    assert [e.seq for e in feed] == sorted({e.seq for e in feed})
    assert [e.job_id for e in feed] == ids
    assert [e.job_id for e in store.events_after(2, None, 2)] == ids[2:4]
    claim(store, limit=2)
    newer = store.events_after(5)
    assert [(e.type, e.job_id) for e in newer] == [("job.started", ids[0]), ("job.started", ids[1])]
    assert [e.type for e in store.events_after(0, ids[0])] == ["job.queued", "job.started"]
    assert store.events_after(store.events_last_seq()) == []


def test_submissions_say_how_they_wait(store: Store) -> None:
    now_id, later_id = insert(store, job(), job(run_at=NOW + 60))
    results = store.job_insert_many([job(key="k"), job(key="k")], NOW)
    assert [r.created for r in results] == [True, False]  # a key that matched adds nothing
    calls = store.job_insert_calls(job(), ["[1]", "[2]"], NOW)
    assert [kinds(store, i)[0][:2] for i in (now_id, later_id, results[0].id, *calls)] == [
        ("job.queued", "queued"),
        ("job.scheduled", "scheduled"),
        ("job.queued", "queued"),
        ("job.queued", "queued"),
        ("job.queued", "queued"),
    ]
    assert len(events(store)) == 5


def test_cancel_retry_release_and_interrupt_are_events(store: Store) -> None:
    waiting, running, dead, released = insert(store, job(), job(), job(retries=0), job())
    assert store.job_cancel(waiting, NOW).state == "cancelled"
    jobs = {j.id: j for j in claim(store, limit=3)}
    store.job_cancel(running, NOW)  # asked to stop: a request, not yet a change
    store.job_end_many(
        OWNER,
        [
            end(jobs[running], Outcome.CANCELLED, State.CANCELLED, error="cancelled while running"),
            end(jobs[dead], Outcome.FAILED, State.DEAD, error="no"),
        ],
    )
    assert store.job_release_many(OWNER, [(released, 1)], NOW) == 1
    assert store.job_retry_dead([dead], NOW + 5) == [dead]
    assert [k[0] for k in kinds(store, waiting)] == ["job.queued", "job.cancelled"]
    assert [k[0] for k in kinds(store, running)] == ["job.queued", "job.started", "job.cancelled"]
    assert [k[0] for k in kinds(store, dead)] == [
        "job.queued",
        "job.started",
        "job.dead",
        "job.queued",
    ]
    assert events(store, dead)[-1].data == {"reason": "dlq retry"}
    assert kinds(store, released)[-1] == ("job.queued", "queued", 0)  # the claim did not count
    for job_id in (waiting, running, dead, released):
        assert_replays(store, job_id)


def test_a_write_that_is_fenced_off_adds_no_event(store: Store) -> None:
    (job_id,) = insert(store, job())
    running = claim_one(store, job_id)
    before = store.events_last_seq()
    assert store.job_end_many(OTHER, [end(running, Outcome.SUCCEEDED, State.SUCCEEDED)]) == [False]
    store.job_progress_many(OTHER, [(job_id, 1, 0.1, None, NOW)])
    assert store.job_release_many(OTHER, [(job_id, 1)], NOW) == 0
    assert store.events_last_seq() == before


def test_a_rescue_replays_too(store: Store) -> None:
    """A dead daemon's claims: one that ran is `job.rescued` (back to wait) or its final
    event; one that never started goes back to the queue, and both replay cleanly."""
    store.daemon_register(daemon(OWNER, lease_until=NOW + 30))
    ran, waited, last = insert(store, job(retries=2), job(retries=2), job(retries=0))
    claim(store, limit=3)
    rescued = rescue_jobs(store, NOW + 31, [OWNER], OTHER, {OWNER: {(ran, 1), (last, 1)}})
    assert {r.id: r.state for r in rescued} == {
        ran: State.RETRYING,
        waited: State.QUEUED,
        last: State.DEAD,
    }
    assert kinds(store, ran)[-1] == ("job.rescued", "retrying", 1)
    assert kinds(store, waited)[-1] == ("job.rescued", "queued", 1)
    assert kinds(store, last)[-1] == ("job.dead", "dead", 1)
    assert events(store, ran)[-1].data is not None
    assert events(store, ran)[-1].data["outcome"] == "lost"  # type: ignore[index]
    assert events(store, waited)[-1].data["outcome"] == "not_started"  # type: ignore[index]
    for job_id in (ran, waited, last):
        assert_replays(store, job_id)
    again = claim_one(store, waited, now=NOW + 40)
    assert again.attempts == 1  # the rescue used nothing up


def test_a_schedule_fire_is_an_event_with_its_job(store: Store) -> None:
    fire = JobInsert(task="app.tasks:nightly", schedule="nightly", scheduled_for=NOW)
    (job_id,) = store.schedule_fire("nightly", None, NOW, [fire], NOW) or []
    assert [(e.type, e.data) for e in events(store, job_id)] == [
        ("schedule.fired", {"schedule": "nightly", "scheduled_for": NOW}),
        ("job.queued", {"schedule": "nightly", "scheduled_for": NOW}),
    ]
    assert store.schedule_fire("nightly", None, NOW, [fire], NOW) is None  # no second fire
    assert len(events(store)) == 2
    assert store.schedule_list() == [ScheduleState("nightly", NOW, False, job_id)]


def test_retention_deletes_the_oldest_events_in_bounded_batches(store: Store) -> None:
    insert(store, *[job() for _ in range(5)], now=NOW)
    insert(store, *[job() for _ in range(3)], now=NOW + 100)
    # the webhooks dispatcher has read no event yet: retention keeps them all
    assert store.events_prune(NOW + 50, batch=2) == 0
    assert store.webhook_enqueue(store.webhook_cursor(), store.events_last_seq(), [], NOW)
    assert store.events_prune(NOW + 50, batch=2) == 2
    assert store.events_prune(NOW + 50, batch=2) == 2
    assert store.events_prune(NOW + 50, batch=2) == 1  # fewer than a batch: done
    assert store.events_prune(NOW + 50, batch=2) == 0
    assert [e.at for e in events(store)] == [NOW + 100] * 3
    last = store.events_last_seq()
    insert(store, job(), now=NOW + 200)
    assert store.events_last_seq() == last + 1  # a seq is never used again


def test_event_records_read_as_json(store: Store) -> None:
    (job_id,) = insert(store, job())
    (event,) = events(store, job_id)
    record = event.to_dict()
    assert record == {
        "seq": event.seq,
        "type": "job.queued",
        "at": "2027-01-15T08:00:00.000Z",
        "job": job_id,
        "attempt": 0,
        "state": "queued",
    }
    json.dumps(record)
