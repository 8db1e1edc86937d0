"""Jobs that run after others, on every backend (conformance): a job submitted after
others waits blocked, never claimed, and leaves `blocked` in the very transaction that
ends the last job it waits for: queued when they did as it needed, cancelled (with why,
cascading) when one it needed to succeed did not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobrunner.errors import UsageError
from jobrunner.lifecycle import ENDED, SUCCEEDED, Dependency, Outcome, State
from jobrunner.models import Job
from jobrunner.store.base import Store
from tests.store.test_conformance import NOW, OTHER, OWNER, claim, claim_one, end, insert, job
from tests.store.together import run_together


def state(store: Store, job_id: int) -> State:
    got = store.job_get(job_id)
    assert got is not None
    return got.state


def succeed(store: Store, running: Job, owner: str = OWNER) -> None:
    assert store.job_end_many(owner, [end(running, Outcome.SUCCEEDED, State.SUCCEEDED)]) == [True]


def die(store: Store, running: Job) -> None:
    assert store.job_end_many(OWNER, [end(running, Outcome.FAILED, State.DEAD, error="boom")]) == [
        True
    ]


def events_of(store: Store, job_id: int) -> list[tuple[str, dict | None]]:
    return [(e.type, e.data) for e in store.events_after(0, None, 1000) if e.job_id == job_id]


def test_a_job_after_another_is_blocked_until_it_succeeds_then_ready_at_once(store: Store) -> None:
    (parent,) = insert(store, job())
    (child,) = insert(store, job(after=[parent]))
    assert state(store, child) is State.BLOCKED
    running = claim_one(store, parent)  # the child is never a candidate
    assert claim(store) == []
    succeed(store, running)
    # the end's own transaction made it ready: the next claim takes it
    assert state(store, child) is State.QUEUED
    assert [j.id for j in claim(store)] == [child]
    assert events_of(store, child)[:2] == [
        ("job.blocked", {"after": [parent], "after_ended": []}),
        ("job.queued", {"reason": f"job {parent} it runs after ended"}),
    ]
    assert store.job_dependencies(child) == [Dependency(parent, SUCCEEDED, State.SUCCEEDED)]


def test_every_job_it_runs_after_must_end(store: Store) -> None:
    a, b = insert(store, job(), job())
    (child,) = insert(store, job(after=[a, b]))
    first, second = claim(store)
    succeed(store, first)
    assert state(store, child) is State.BLOCKED
    succeed(store, second)
    assert state(store, child) is State.QUEUED


def test_a_dead_dependency_cancels_the_job_and_what_runs_after_it(store: Store) -> None:
    (parent,) = insert(store, job(retries=0))
    (child,) = insert(store, job(after=[parent]))
    (grandchild,) = insert(store, job(after=[child]))
    (tolerant,) = insert(store, job(after_ended=[child]))
    die(store, claim_one(store, parent))
    got = store.job_get(child)
    assert got is not None and got.state is State.CANCELLED
    assert got.error == f"cancelled: job {parent} it runs after ended dead"
    assert state(store, grandchild) is State.CANCELLED
    assert state(store, tolerant) is State.QUEUED  # it only needed the child to end
    assert ("job.cancelled", {"reason": f"job {parent} it runs after ended dead"}) in events_of(
        store, child
    )


def test_after_ended_runs_whatever_the_outcome(store: Store) -> None:
    (parent,) = insert(store, job(retries=0))
    (child,) = insert(store, job(after_ended=[parent]))
    die(store, claim_one(store, parent))
    assert state(store, child) is State.QUEUED
    assert store.job_dependencies(child) == [Dependency(parent, ENDED, State.DEAD)]


def test_a_retry_is_not_an_end(store: Store) -> None:
    (parent,) = insert(store, job(retries=1))
    (child,) = insert(store, job(after=[parent]))
    running = claim_one(store, parent)
    failed = end(running, Outcome.FAILED, State.RETRYING, run_at=NOW + 1)
    assert store.job_end_many(OWNER, [failed]) == [True]
    assert state(store, child) is State.BLOCKED


def test_cancelling_a_waiting_dependency_cancels_the_dependent(store: Store) -> None:
    (parent,) = insert(store, job())
    (child,) = insert(store, job(after=[parent]))
    assert store.job_cancel(parent, NOW).state == "cancelled"
    assert state(store, child) is State.CANCELLED


def test_a_blocked_job_can_be_cancelled_and_its_dependents_follow(store: Store) -> None:
    (parent,) = insert(store, job())
    (child,) = insert(store, job(after=[parent]))
    (grandchild,) = insert(store, job(after_ended=[child]))
    assert store.job_cancel(child, NOW).state == "cancelled"
    assert state(store, grandchild) is State.QUEUED
    assert state(store, parent) is State.QUEUED


def test_submitted_after_jobs_that_ended_already(store: Store) -> None:
    (done,) = insert(store, job())
    succeed(store, claim_one(store, done))
    (dead,) = insert(store, job(retries=0))
    die(store, claim_one(store, dead))
    (ready,) = insert(store, job(after=[done]))
    (cancelled,) = insert(store, job(after=[done, dead]))
    (tolerant,) = insert(store, job(after_ended=[dead]))
    assert state(store, ready) is State.QUEUED
    assert state(store, cancelled) is State.CANCELLED
    assert state(store, tolerant) is State.QUEUED


def test_a_delayed_dependent_becomes_scheduled(store: Store) -> None:
    (parent,) = insert(store, job())
    (child,) = insert(store, job(after=[parent], delay=3600))
    succeed(store, claim_one(store, parent))
    assert state(store, child) is State.SCHEDULED


def test_an_unknown_job_is_bad_input_and_nothing_is_written(store: Store) -> None:
    (parent,) = insert(store, job())
    with pytest.raises(UsageError, match="after: no job with id 999"):
        store.job_insert_many([job(), job(after=[parent, 999])], NOW)
    assert store.job_list() and [j.id for j in store.job_list()] == [parent]


def test_a_keyed_job_after_another_is_created_once(store: Store) -> None:
    (parent,) = insert(store, job())
    first = store.job_insert_many([job(key="k", after=[parent])], NOW)[0]
    again = store.job_insert_many([job(key="k", after=[parent])], NOW)[0]
    assert first.created and not again.created and again.id == first.id
    assert state(store, first.id) is State.BLOCKED


def test_the_last_two_dependencies_ended_at_once_by_two_daemons(
    connect: Callable[[], Store],
) -> None:
    """Each end's transaction sees the other's dependency still running unless the two
    settle the dependent one after the other: the dependent must end up queued."""
    stores = {OWNER: connect(), OTHER: connect()}
    store = stores[OWNER]
    for _ in range(20):
        a, b = insert(store, job(), job())
        (child,) = insert(store, job(after=[a, b]))
        running = {OWNER: claim_one(store, a, owner=OWNER), OTHER: claim_one(store, b, owner=OTHER)}

        def finish(owner: str, held: dict[str, Job] = running) -> Callable[[], None]:
            return lambda: succeed(stores[owner], held[owner], owner)

        run_together(finish(OWNER), finish(OTHER))
        assert state(store, child) is State.QUEUED
        (claimed,) = claim(store)
        assert claimed.id == child
        succeed(store, claimed)


# -- dlq retry of a job whose death cancelled others ------------------------------------------


def test_retrying_a_dead_dependency_takes_back_what_its_death_cancelled(store: Store) -> None:
    (parent,) = insert(store, job(retries=0))
    (child,) = insert(store, job(after=[parent]))
    (grandchild,) = insert(store, job(after=[child]))
    die(store, claim_one(store, parent))
    assert state(store, grandchild) is State.CANCELLED
    assert store.job_retry_dead([parent], NOW + 1) == [parent]
    got = store.job_get(child)
    assert got is not None and got.state is State.BLOCKED and got.error is None
    assert state(store, grandchild) is State.BLOCKED  # down the cascade
    assert events_of(store, child)[-1] == (
        "job.blocked",
        {"reason": f"job {parent} it runs after was retried"},
    )
    assert ("job.blocked", {"reason": f"job {child} it runs after waits again"}) in events_of(
        store, grandchild
    )
    assert store.job_counts()[("blocked", "default")] == 2
    succeed(store, claim_one(store, parent))  # the retry succeeds: the rest runs
    assert state(store, child) is State.QUEUED
    succeed(store, claim_one(store, child))
    assert state(store, grandchild) is State.QUEUED


def test_a_retry_leaves_what_was_cancelled_by_hand_or_for_another_death(store: Store) -> None:
    a, b = insert(store, job(retries=0), job(retries=0))
    (merge,) = insert(store, job(after=[a, b]))
    (by_hand,) = insert(store, job(after=[a]))
    assert store.job_cancel(by_hand, NOW).state == "cancelled"
    first, second = claim(store)
    die(store, first)
    die(store, second)
    got = store.job_get(merge)
    assert got is not None and got.error == f"cancelled: job {a} it runs after ended dead"
    assert store.job_retry_dead([a], NOW + 1) == [a]
    # b is dead too: the merge stays cancelled, now for b's death, which a retry of b undoes
    got = store.job_get(merge)
    assert got is not None and got.state is State.CANCELLED
    assert got.error == f"cancelled: job {b} it runs after ended dead"
    assert state(store, by_hand) is State.CANCELLED
    assert store.job_retry_dead([b], NOW + 2) == [b]
    assert state(store, merge) is State.BLOCKED
    assert state(store, by_hand) is State.CANCELLED


def test_retrying_every_dead_job_at_once_takes_back_a_merge_that_both_killed(
    store: Store,
) -> None:
    a, b = insert(store, job(retries=0), job(retries=0))
    (merge,) = insert(store, job(after=[a, b]))
    first, second = claim(store)
    die(store, first)
    die(store, second)
    assert sorted(store.job_retry_dead(None, NOW + 1)) == [a, b]
    assert state(store, merge) is State.BLOCKED
