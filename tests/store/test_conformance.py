"""The Store conformance suite: every backend must pass every test here.

Written against the protocol in jobrunner/store/base.py only (no SQL, no backend
internals), through the `store` and `connect` fixtures of tests/store/conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from jobrunner.daemon.rescue import rescue
from jobrunner.errors import JobNotFound
from jobrunner.lifecycle import FINAL, NOT_COUNTED, Outcome, State
from jobrunner.models import Attempt, AttemptEnd, DaemonInfo, Job, JobInsert
from jobrunner.store.base import CancelResult, ClaimRequest, Store
from tests.store.together import run_together

NOW = 1_800_000_000.0
OWNER = "host-a:100:aaaa"
OTHER = "host-b:200:bbbb"


# -- helpers -----------------------------------------------------------------------------------


def job(**fields: Any) -> JobInsert:
    fields.setdefault("task", "app.tasks:work")
    return JobInsert(**fields)


def insert(store: Store, *jobs: JobInsert, now: float = NOW) -> list[int]:
    results = store.job_insert_many(list(jobs), now)
    assert all(r.created for r in results)
    return [r.id for r in results]


def claim(
    store: Store,
    *,
    owner: str = OWNER,
    now: float = NOW,
    limit: int = 100,
    queues: list[str] | None = None,
    caps: dict[str, int] | None = None,
) -> list[Job]:
    return store.job_claim(ClaimRequest(owner, now, limit, queues, caps))


def claim_one(store: Store, job_id: int, **kwargs: Any) -> Job:
    """Claim exactly one job, which must be `job_id` (the best due one)."""
    claimed = claim(store, limit=1, **kwargs)
    assert [j.id for j in claimed] == [job_id]
    return claimed[0]


def end(job: Job, outcome: Outcome, state: State, **fields: Any) -> AttemptEnd:
    """The end of `job`'s attempt; `result=` is encoded as the worker does."""
    if "result" in fields:
        fields["result_json"] = json.dumps(fields.pop("result"))
    fields.setdefault("counted", outcome not in NOT_COUNTED)  # as lifecycle decides
    fields.setdefault("started_at", job.started_at)
    fields.setdefault("finished_at", NOW + 1)
    return AttemptEnd(job.id, job.attempts, outcome, state, **fields)


class Rescued(NamedTuple):
    id: int
    state: State


def rescue_jobs(
    store: Store,
    now: float,
    dead: list[str],
    rescuer: str | None,
    starts: dict[str, set[tuple[int, int]] | None] | None = None,
) -> list[Rescued]:
    """The daemon's rescue (daemon/rescue.py): the store finds the orphans, lifecycle
    decides, the store applies the ends fenced; what moved, and where to."""
    return [
        Rescued(e.job_id, e.next_state) for _, e in rescue(store, dead, rescuer, starts or {}, now)
    ]


def get(store: Store, job_id: int) -> Job:
    found = store.job_get(job_id)
    assert found is not None, f"job {job_id} is gone"
    return found


def daemon(daemon_id: str, lease_until: float, started_at: float = NOW) -> DaemonInfo:
    return DaemonInfo(
        id=daemon_id,
        host=daemon_id.split(":")[0],
        pid=123,
        started_at=started_at,
        heartbeat_at=started_at,
        lease_until=lease_until,
        workers=4,
        queues=None,
    )


def make_dead(store: Store, retries: int = 0, **fields: Any) -> Job:
    """A job that used up all its attempts (high priority: claimed before others)."""
    fields.setdefault("priority", 100)
    (job_id,) = insert(store, job(retries=retries, **fields))
    for attempt in range(retries + 1):
        running = claim_one(store, job_id, now=NOW + attempt)
        last = attempt == retries
        state, run_at = (State.DEAD, None) if last else (State.RETRYING, NOW + attempt + 0.5)
        ok = store.job_end_many(
            OWNER,
            [end(running, Outcome.FAILED, state, run_at=run_at, error=f"boom {attempt + 1}")],
        )
        assert ok == [True]
    dead = get(store, job_id)
    assert dead.state is State.DEAD
    return dead


def make_succeeded(store: Store, finished_at: float, **fields: Any) -> Job:
    fields.setdefault("priority", 100)
    (job_id,) = insert(store, job(**fields))
    running = claim_one(store, job_id)
    ok = store.job_end_many(
        OWNER, [end(running, Outcome.SUCCEEDED, State.SUCCEEDED, finished_at=finished_at)]
    )
    assert ok == [True]
    return get(store, job_id)


# -- insert ------------------------------------------------------------------------------------


def test_insert_returns_ids_in_submit_order(store: Store) -> None:
    ids = insert(store, job(args=[0]), job(args=[1]), job(args=[2]))
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [get(store, i).args for i in ids] == [[0], [1], [2]]
    more = insert(store, job(args=[3]))
    assert more[0] > ids[-1]


def test_a_large_batch_maps_every_id_to_its_own_job(store: Store) -> None:
    jobs = [job(args=[i], queue=f"q{i % 3}", priority=i % 5) for i in range(257)]
    ids = insert(store, *jobs)
    assert ids == sorted(ids) and len(set(ids)) == len(jobs)
    for i, job_id in enumerate(ids):
        got = get(store, job_id)
        assert (got.args, got.queue, got.priority) == ([i], f"q{i % 3}", i % 5)


def test_insert_stores_every_field(store: Store) -> None:
    (task_id,) = insert(
        store,
        job(
            args=[1, "x", {"deep": [None, 2.5]}],
            kwargs={"name": "ü", "n": 3},
            queue="email",
            priority=-4,
            run_at=NOW - 10,
            retries=2,
            backoff=1.5,
            timeout=90.0,
            key="invoice-7",
            schedule="nightly",
            scheduled_for=NOW - 10,
            options={"cwd": "/srv", "env": {"A": "1"}},
        ),
    )
    (cmd_id,) = insert(store, JobInsert(command=["echo", "hi there"]))
    got = get(store, task_id)
    assert got.state is State.QUEUED
    assert got.task == "app.tasks:work" and got.command is None
    assert got.args == [1, "x", {"deep": [None, 2.5]}]
    assert got.kwargs == {"name": "ü", "n": 3}
    assert (got.queue, got.priority) == ("email", -4)
    assert (got.retries, got.max_attempts, got.attempts) == (2, 3, 0)
    assert (got.backoff, got.timeout) == (1.5, 90.0)
    assert (got.created_at, got.run_at) == (NOW, NOW - 10)
    assert (got.key, got.schedule, got.scheduled_for) == ("invoice-7", "nightly", NOW - 10)
    assert got.options == {"cwd": "/srv", "env": {"A": "1"}}
    assert got.result is None and got.error is None
    assert got.started_at is None and got.finished_at is None
    assert got.owner is None and got.cancel_requested is False
    cmd = get(store, cmd_id)
    assert cmd.task is None and cmd.command == ["echo", "hi there"]
    assert (cmd.args, cmd.kwargs, cmd.options) == ([], {}, {})
    assert (cmd.queue, cmd.priority, cmd.max_attempts, cmd.timeout) == ("default", 0, 4, None)


def test_job_without_run_at_is_queued_to_run_now(store: Store) -> None:
    (job_id,) = insert(store, job())
    got = get(store, job_id)
    assert (got.state, got.run_at) == (State.QUEUED, NOW)


def test_delayed_job_is_scheduled_and_due_or_past_is_queued(store: Store) -> None:
    later, due, past = insert(store, job(run_at=NOW + 60), job(run_at=NOW), job(run_at=NOW - 60))
    assert get(store, later).state is State.SCHEDULED
    assert get(store, later).run_at == NOW + 60
    assert get(store, due).state is State.QUEUED
    assert get(store, past).state is State.QUEUED


def test_idempotency_key_returns_the_first_job_and_inserts_nothing(store: Store) -> None:
    (first,) = store.job_insert_many([job(args=[1], key="k")], NOW)
    assert first.created
    again = store.job_insert_many([job(args=[2], queue="other", key="k")], NOW + 5)
    assert [(r.id, r.created) for r in again] == [(first.id, False)]
    assert [j.id for j in store.job_list()] == [first.id]
    kept = get(store, first.id)
    assert (kept.args, kept.queue, kept.created_at) == ([1], "default", NOW)


def test_idempotency_key_within_one_batch(store: Store) -> None:
    results = store.job_insert_many([job(key="a"), job(), job(key="a"), job(key="b"), job()], NOW)
    ids = [r.id for r in results]
    assert [r.created for r in results] == [True, True, False, True, True]
    assert ids[2] == ids[0]
    assert len(set(ids)) == 4
    assert len(store.job_list(limit=100)) == 4
    assert ids[0] < ids[1] < ids[3] < ids[4]  # created ones still in submit order


def test_idempotency_key_holds_after_the_job_ended(store: Store) -> None:
    done = make_succeeded(store, NOW + 1, key="once")
    (again,) = store.job_insert_many([job(key="once")], NOW + 10)
    assert (again.id, again.created) == (done.id, False)
    assert get(store, done.id).state is State.SUCCEEDED


def test_get_unknown_job_is_none(store: Store) -> None:
    assert store.job_get(424242) is None
    assert store.attempt_list(424242) == []


# -- claim -------------------------------------------------------------------------------------


def test_claim_order_is_priority_then_run_at_then_id(store: Store) -> None:
    a, b, c, d, e = insert(
        store,
        job(priority=0, run_at=NOW - 10),
        job(priority=5, run_at=NOW - 1),
        job(priority=5, run_at=NOW - 5),
        job(priority=0, run_at=NOW - 10),
        job(priority=-1, run_at=NOW - 100),
    )
    assert [j.id for j in claim(store)] == [c, b, a, d, e]


def test_claim_order_holds_across_queues(store: Store) -> None:
    a, b, c, d = insert(
        store,
        job(queue="x", priority=1, run_at=NOW - 1),
        job(queue="y", priority=3, run_at=NOW - 1),
        job(queue="z", priority=1, run_at=NOW - 2),
        job(queue="x", priority=2, run_at=NOW - 1),
    )
    assert [j.id for j in claim(store)] == [b, d, c, a]
    # and with a limit, the best ones across all queues win
    e, f, g = insert(
        store,
        job(queue="x", priority=0),
        job(queue="y", priority=9),
        job(queue="z", priority=5),
    )
    assert [j.id for j in claim(store, limit=2)] == [f, g]


def test_claim_respects_the_limit(store: Store) -> None:
    ids = insert(store, *[job(priority=p) for p in (1, 5, 3, 4, 2)])
    first = claim(store, limit=2)
    assert [j.priority for j in first] == [5, 4]
    assert sum(get(store, i).state is State.QUEUED for i in ids) == 3
    assert [j.priority for j in claim(store, limit=2)] == [3, 2]
    assert [j.priority for j in claim(store, limit=2)] == [1]
    assert claim(store, limit=2) == []


def test_claim_with_no_room_claims_nothing(store: Store) -> None:
    (job_id,) = insert(store, job())
    assert claim(store, limit=0) == []
    assert get(store, job_id).state is State.QUEUED


def test_claim_only_from_the_named_queues(store: Store) -> None:
    a, b, c = insert(store, job(queue="a"), job(queue="b"), job(queue="c"))
    assert {j.id for j in claim(store, queues=["a", "c", "nothing-here"])} == {a, c}
    assert get(store, b).state is State.QUEUED
    assert claim(store, queues=[]) == []
    assert [j.id for j in claim(store, queues=["b"])] == [b]


def test_claim_caps_per_queue(store: Store) -> None:
    mail = insert(store, *[job(queue="email") for _ in range(3)])
    default = insert(store, *[job(queue="default") for _ in range(3)])
    got = claim(store, limit=10, caps={"email": 1})
    assert {j.id for j in got} == {mail[0], *default}
    assert claim(store, caps={"email": 0}) == []
    assert [j.id for j in claim(store, caps={"email": 5}, limit=1)] == [mail[1]]


@pytest.mark.parametrize("spread", [3, 200], ids=["few-queues", "many-queues"])
def test_claim_order_and_caps_hold_with_many_queues(store: Store, spread: int) -> None:
    """The claim takes the best due jobs across any number of queues (one walk past a
    few dozen queues with work, queue by queue below), with caps exact either way, and
    delayed jobs and retries that fell due ranked with the rest."""
    insert(store, *[job(queue=f"q{i}", priority=0, run_at=NOW - 1) for i in range(spread)])
    best = insert(
        store,
        job(queue="q1", priority=7, run_at=NOW - 1),
        job(queue="email", priority=9, run_at=NOW - 3),
        job(queue="email", priority=9, run_at=NOW - 2),
        job(queue="email", priority=9, run_at=NOW - 1),
        job(queue="later", priority=20, run_at=NOW + 60),  # not due: never claimed
    )
    (fell_due,) = insert(store, job(queue="q2", priority=8, run_at=NOW + 5))  # scheduled
    got = claim(store, now=NOW + 5, limit=4, caps={"email": 2, "q0": 0})
    assert [j.id for j in got] == [best[1], best[2], fell_due, best[0]]
    rest = claim(store, now=NOW + 5, limit=10 * spread, caps={"email": 0, "q0": 0})
    assert len(rest) == spread - 1  # every q but q0, which is at its cap
    assert {j.queue for j in rest} == {f"q{i}" for i in range(1, spread)}
    assert get(store, best[4]).state is State.SCHEDULED


def test_claim_does_not_take_future_jobs(store: Store) -> None:
    (later,) = insert(store, job(run_at=NOW + 60))
    assert claim(store, now=NOW) == []
    assert claim(store, now=NOW + 59.999) == []
    assert [j.id for j in claim(store, now=NOW + 60)] == [later]


def test_a_future_high_priority_job_does_not_block_due_ones(store: Store) -> None:
    (later, due) = insert(store, job(priority=10, run_at=NOW + 60), job(priority=0))
    assert [j.id for j in claim(store, limit=1)] == [due]
    assert get(store, later).state is State.SCHEDULED


def test_claimed_jobs_are_running_with_an_attempt_and_owner(store: Store) -> None:
    (job_id,) = insert(store, job(run_at=NOW - 5))
    (claimed,) = claim(store, now=NOW)
    assert claimed.id == job_id
    for seen in (claimed, get(store, job_id)):
        assert seen.state is State.RUNNING
        assert seen.attempts == 1
        assert seen.owner == OWNER
        assert seen.started_at == NOW
        assert seen.cancel_requested is False


def test_a_claimed_job_is_exactly_what_the_store_then_holds(store: Store) -> None:
    """The claim returns each job as it leaves it, field for field, including a retry
    whose first attempt reported progress (cleared for the new attempt)."""
    (job_id,) = insert(store, job(args=[1, "a"], kwargs={"k": [2]}, run_at=NOW - 5))
    (first,) = claim(store, now=NOW)
    store.job_progress_many(OWNER, [(job_id, 1, 0.5, "half", NOW + 1)])
    store.job_end_many(
        OWNER,
        [
            AttemptEnd(
                job_id,
                1,
                Outcome.FAILED,
                State.RETRYING,
                run_at=NOW + 2,
                error="boom",
                started_at=NOW,
                finished_at=NOW + 1,
            )
        ],
    )
    (second,) = claim(store, now=NOW + 3)
    assert second == get(store, job_id)
    assert (second.attempts, second.progress, second.error) == (2, None, "boom")
    assert first.progress is None


def test_claims_never_return_the_same_job(store: Store) -> None:
    ids = insert(store, *[job() for _ in range(5)])
    first = claim(store, owner=OWNER, limit=3)
    second = claim(store, owner=OTHER, limit=3)
    assert len(first) == 3 and len(second) == 2
    assert {j.id for j in first} | {j.id for j in second} == set(ids)
    assert claim(store, owner=OTHER) == []
    assert {get(store, j.id).owner for j in second} == {OTHER}


def test_concurrent_claims_from_two_connections_never_share_a_job(
    connect: Callable[[], Store],
) -> None:
    ids = insert(connect(), *[job() for _ in range(150)])
    stores = {OWNER: connect(), OTHER: connect()}
    claimed: dict[str, list[int]] = {OWNER: [], OTHER: []}

    def work(owner: str) -> Callable[[], None]:
        def take() -> None:
            while batch := claim(stores[owner], owner=owner, limit=3):
                claimed[owner].extend(j.id for j in batch)

        return take

    run_together(*(work(owner) for owner in stores))
    together = claimed[OWNER] + claimed[OTHER]
    assert len(together) == len(set(together)) == len(ids)
    assert set(together) == set(ids)


# -- end: finish, fail, cancel, interrupt (fenced) --------------------------------------------


def test_success_records_the_result_and_an_attempt(store: Store) -> None:
    (job_id,) = insert(store, job())
    running = claim_one(store, job_id)
    result = {"rows": [1, 2, 3], "ok": True, "name": "ü"}
    applied = store.job_end_many(
        OWNER,
        [end(running, Outcome.SUCCEEDED, State.SUCCEEDED, result=result, finished_at=NOW + 2)],
    )
    assert applied == [True]
    done = get(store, job_id)
    assert done.state is State.SUCCEEDED
    assert done.result == result
    assert done.error is None
    assert done.finished_at == NOW + 2
    assert done.started_at == NOW
    assert done.owner is None
    assert done.attempts == 1
    assert store.attempt_list(job_id) == [
        Attempt(job_id, 1, Outcome.SUCCEEDED, NOW, NOW + 2, None, None, OWNER)
    ]


@pytest.mark.parametrize("result", [0, "", [], False, "text", 3.25])
def test_falsy_and_scalar_results_round_trip(store: Store, result: Any) -> None:
    (job_id,) = insert(store, job())
    running = claim_one(store, job_id)
    store.job_end_many(OWNER, [end(running, Outcome.SUCCEEDED, State.SUCCEEDED, result=result)])
    assert get(store, job_id).result == result


def test_failure_to_retrying_waits_until_the_given_run_at(store: Store) -> None:
    (job_id,) = insert(store, job(retries=2))
    running = claim_one(store, job_id)
    applied = store.job_end_many(
        OWNER,
        [
            end(
                running,
                Outcome.FAILED,
                State.RETRYING,
                run_at=NOW + 30,
                error="ValueError: bad",
                traceback="Traceback ...",
            )
        ],
    )
    assert applied == [True]
    waiting = get(store, job_id)
    assert waiting.state is State.RETRYING
    assert waiting.run_at == NOW + 30
    assert waiting.error == "ValueError: bad"
    assert waiting.finished_at is None
    assert waiting.attempts == 1 and waiting.owner is None
    (attempt,) = store.attempt_list(job_id)
    assert (attempt.attempt, attempt.outcome) == (1, Outcome.FAILED)
    assert (attempt.error, attempt.traceback) == ("ValueError: bad", "Traceback ...")
    assert store.job_next_due() == NOW + 30
    assert claim(store, now=NOW + 29) == []
    again = claim_one(store, job_id, now=NOW + 30)
    assert again.attempts == 2 and again.state is State.RUNNING


def test_failure_to_dead_ends_the_job(store: Store) -> None:
    (job_id,) = insert(store, job(retries=0))
    running = claim_one(store, job_id)
    store.job_end_many(
        OWNER, [end(running, Outcome.TIMEOUT, State.DEAD, error="timed out after 5s")]
    )
    dead = get(store, job_id)
    assert dead.state is State.DEAD
    assert dead.finished_at == NOW + 1
    assert dead.error == "timed out after 5s"
    assert claim(store, now=NOW + 10_000) == []
    assert [a.outcome for a in store.attempt_list(job_id)] == [Outcome.TIMEOUT]


def test_end_with_a_wrong_attempt_or_owner_changes_nothing(store: Store) -> None:
    (job_id,) = insert(store, job())
    running = claim_one(store, job_id)
    stale_attempt = AttemptEnd(
        job_id, running.attempts + 1, Outcome.SUCCEEDED, State.SUCCEEDED, finished_at=NOW
    )
    assert store.job_end_many(OWNER, [stale_attempt]) == [False]
    previous = AttemptEnd(job_id, 0, Outcome.FAILED, State.DEAD, finished_at=NOW)
    assert store.job_end_many(OWNER, [previous]) == [False]
    ok_end = end(running, Outcome.SUCCEEDED, State.SUCCEEDED, result=1)
    assert store.job_end_many(OTHER, [ok_end]) == [False]
    still = get(store, job_id)
    assert (still.state, still.attempts, still.owner, still.result) == (
        State.RUNNING,
        1,
        OWNER,
        None,
    )
    assert store.attempt_list(job_id) == []
    # the real owner still can
    assert store.job_end_many(OWNER, [ok_end]) == [True]


def test_a_late_end_after_the_job_ended_changes_nothing(store: Store) -> None:
    (job_id,) = insert(store, job())
    running = claim_one(store, job_id)
    first = end(running, Outcome.SUCCEEDED, State.SUCCEEDED, result="first")
    late = end(running, Outcome.FAILED, State.DEAD, error="late")
    assert store.job_end_many(OWNER, [first]) == [True]
    assert store.job_end_many(OWNER, [late]) == [False]
    done = get(store, job_id)
    assert (done.state, done.result, done.error) == (State.SUCCEEDED, "first", None)
    assert len(store.attempt_list(job_id)) == 1


def test_a_result_from_an_older_attempt_does_not_end_the_retry(store: Store) -> None:
    (job_id,) = insert(store, job(retries=3))
    first = claim_one(store, job_id)
    store.job_end_many(OWNER, [end(first, Outcome.FAILED, State.RETRYING, run_at=NOW)])
    second = claim_one(store, job_id, owner=OTHER)
    assert second.attempts == 2
    stale = AttemptEnd(job_id, 1, Outcome.SUCCEEDED, State.SUCCEEDED, finished_at=NOW)
    assert store.job_end_many(OWNER, [stale]) == [False]
    assert store.job_end_many(OTHER, [stale]) == [False]
    assert get(store, job_id).state is State.RUNNING


def test_end_many_answers_each_end(store: Store) -> None:
    a, b, c = insert(store, job(), job(), job())
    running = {j.id: j for j in claim(store)}
    applied = store.job_end_many(
        OWNER,
        [
            end(running[a], Outcome.SUCCEEDED, State.SUCCEEDED),
            AttemptEnd(b, 7, Outcome.SUCCEEDED, State.SUCCEEDED, finished_at=NOW),
            end(running[c], Outcome.FAILED, State.DEAD, error="x"),
        ],
    )
    assert applied == [True, False, True]
    assert [get(store, i).state for i in (a, b, c)] == [
        State.SUCCEEDED,
        State.RUNNING,
        State.DEAD,
    ]
    assert store.job_end_many(OWNER, []) == []


def test_interrupted_goes_back_to_queued_without_counting_the_attempt(store: Store) -> None:
    (job_id,) = insert(store, job(retries=0, run_at=NOW - 3))
    running = claim_one(store, job_id)
    applied = store.job_end_many(
        OWNER, [end(running, Outcome.INTERRUPTED, State.QUEUED, error="daemon shut down")]
    )
    assert applied == [True]
    back = get(store, job_id)
    assert back.state is State.QUEUED
    assert back.attempts == 0
    assert back.owner is None
    assert back.run_at == NOW - 3
    assert back.finished_at is None
    # its one allowed attempt is still there
    again = claim_one(store, job_id, owner=OTHER)
    assert (again.attempts, again.max_attempts) == (1, 1)


def test_cancelled_end_is_final(store: Store) -> None:
    (job_id,) = insert(store, job())
    running = claim_one(store, job_id)
    store.job_end_many(OWNER, [end(running, Outcome.CANCELLED, State.CANCELLED, error="killed")])
    got = get(store, job_id)
    assert (got.state, got.finished_at) == (State.CANCELLED, NOW + 1)
    assert [a.outcome for a in store.attempt_list(job_id)] == [Outcome.CANCELLED]


# -- release -----------------------------------------------------------------------------------


def test_release_hands_back_claims_that_never_started(store: Store) -> None:
    a, b, c = insert(store, job(), job(), job())
    running = {j.id: j for j in claim(store)}
    assert store.job_release_many(OWNER, [(a, 1), (b, 1)], NOW) == 2
    for job_id in (a, b):
        back = get(store, job_id)
        assert back.state is State.QUEUED
        assert (back.attempts, back.owner, back.started_at) == (0, None, None)
        assert store.attempt_list(job_id) == []
    assert get(store, c).state is State.RUNNING
    assert running[c].attempts == 1
    again = {j.id: j for j in claim(store, owner=OTHER)}
    assert set(again) == {a, b}
    assert again[a].attempts == 1


def test_release_is_fenced_by_owner_and_attempt(store: Store) -> None:
    (job_id,) = insert(store, job())
    claim_one(store, job_id)
    assert store.job_release_many(OTHER, [(job_id, 1)], NOW) == 0
    assert store.job_release_many(OWNER, [(job_id, 2)], NOW) == 0
    assert store.job_release_many(OWNER, [], NOW) == 0
    assert get(store, job_id).state is State.RUNNING
    assert store.job_release_many(OWNER, [(job_id, 1)], NOW) == 1
    assert store.job_release_many(OWNER, [(job_id, 1)], NOW) == 0  # already released


# -- rescue ------------------------------------------------------------------------------------


def test_rescue_fails_the_attempts_of_a_daemon_judged_dead(store: Store) -> None:
    dead_daemon, live_daemon = "host-a:1:dead", "host-b:2:live"
    store.daemon_register(daemon(dead_daemon, lease_until=NOW + 30))
    store.daemon_register(daemon(live_daemon, lease_until=NOW + 300))
    retry, last, other = insert(store, job(retries=2, backoff=10.0), job(retries=0), job(retries=0))
    lost = claim(store, owner=dead_daemon, limit=2)
    assert {j.id for j in lost} == {retry, last}
    claim_one(store, other, owner=live_daemon)

    # until the rescuer judges a daemon dead nothing moves, whatever the time: leases
    # are not compared with the rescuer's wall clock (see daemon/peers.py)
    assert rescue_jobs(store, NOW + 10_000, [], live_daemon) == []
    assert {get(store, i).state for i in (retry, last, other)} == {State.RUNNING}

    later = NOW + 31
    rescued = rescue_jobs(store, later, [dead_daemon], live_daemon)
    assert {j.id for j in rescued} == {retry, last}

    retrying = get(store, retry)
    assert retrying.state is State.RETRYING
    assert later + 5.0 <= retrying.run_at <= later + 10.0  # backoff of attempt 1
    assert retrying.owner is None and retrying.attempts == 1
    assert retrying.error and "lost" in retrying.error

    dead = get(store, last)
    assert (dead.state, dead.finished_at, dead.owner) == (State.DEAD, later, None)

    for job_id in (retry, last):
        (attempt,) = store.attempt_list(job_id)
        assert (attempt.attempt, attempt.outcome) == (1, Outcome.LOST)
        assert (attempt.owner, attempt.finished_at) == (dead_daemon, later)

    # the live daemon's job is untouched, and it is still registered
    kept = get(store, other)
    assert (kept.state, kept.owner) == (State.RUNNING, live_daemon)
    assert [d.id for d in store.daemon_list()] == [live_daemon]

    # the dead daemon's late results are fenced off, and it learns it was rescued
    late = AttemptEnd(retry, 1, Outcome.SUCCEEDED, State.SUCCEEDED, finished_at=later)
    assert store.job_end_many(dead_daemon, [late]) == [False]
    assert store.daemon_heartbeat(dead_daemon, later, later + 30) is False
    assert rescue_jobs(store, later + 1, [dead_daemon], live_daemon) == []


def test_rescue_returns_claims_that_never_started_without_using_an_attempt(
    store: Store,
) -> None:
    """The dead daemon's workers journaled the starts (worker/starts.py): a claim in no
    journal waited in a batch and goes back to `queued` as it was; one asked to cancel
    is cancelled; a started one is `lost` as before."""
    dead_daemon, rescuer = "host-a:1:dead", "host-b:2:live"
    store.daemon_register(daemon(dead_daemon, lease_until=NOW + 30))
    started, waiting, cancel_me = insert(store, job(retries=0), job(retries=0), job(retries=0))
    claimed = {j.id: j for j in claim(store, owner=dead_daemon, limit=3)}
    assert set(claimed) == {started, waiting, cancel_me}
    store.job_cancel(cancel_me, NOW)

    rescued = rescue_jobs(store, NOW + 31, [dead_daemon], rescuer, {dead_daemon: {(started, 1)}})
    assert {j.id: j.state for j in rescued} == {
        started: State.DEAD,
        waiting: State.QUEUED,
        cancel_me: State.CANCELLED,
    }
    back = get(store, waiting)
    assert (back.state, back.attempts, back.owner, back.max_attempts) == (
        State.QUEUED,
        0,
        None,
        1,
    )
    (record,) = store.attempt_list(waiting)
    assert (record.attempt, record.outcome, record.started_at) == (1, Outcome.NOT_STARTED, None)
    assert record.error and "before the job started" in record.error
    assert [a.outcome for a in store.attempt_list(started)] == [Outcome.LOST]
    # claimed again, it runs as attempt 1 of 1: the rescue used nothing up
    again = claim_one(store, waiting, owner=rescuer)
    assert (again.attempts, again.max_attempts) == (1, 1)


def test_rescue_counts_every_claim_as_started_without_a_journal(store: Store) -> None:
    dead_daemon = "host-a:1:dead"
    store.daemon_register(daemon(dead_daemon, lease_until=NOW + 30))
    (job_id,) = insert(store, job(retries=1))
    claim_one(store, job_id, owner=dead_daemon)
    (rescued,) = rescue_jobs(store, NOW + 31, [dead_daemon], None, {dead_daemon: None})
    assert rescued.state is State.RETRYING
    assert [a.outcome for a in store.attempt_list(job_id)] == [Outcome.LOST]


def test_a_job_that_loses_its_daemon_every_time_ends_dead(store: Store) -> None:
    (job_id,) = insert(store, job(retries=1, backoff=0.0))
    now = NOW
    for n in (1, 2):
        owner = f"host:{n}:x"
        store.daemon_register(daemon(owner, lease_until=now + 30, started_at=now))
        claim_one(store, job_id, owner=owner, now=now)
        now += 31
        assert [j.id for j in rescue_jobs(store, now, [owner], None)] == [job_id]
    dead = get(store, job_id)
    assert (dead.state, dead.attempts) == (State.DEAD, 2)
    assert [a.outcome for a in store.attempt_list(job_id)] == [Outcome.LOST, Outcome.LOST]


def test_rescue_takes_jobs_of_a_daemon_that_unregistered(store: Store) -> None:
    store.daemon_register(daemon(OWNER, lease_until=NOW + 300))
    (job_id,) = insert(store, job(retries=3))
    claim_one(store, job_id)
    store.daemon_unregister(OWNER)
    assert [j.id for j in rescue_jobs(store, NOW + 1, [], "host-b:2:other")] == [job_id]
    assert get(store, job_id).state is State.RETRYING


def test_a_registered_daemons_jobs_are_never_rescued_by_the_clock(store: Store) -> None:
    store.daemon_register(daemon(OWNER, lease_until=NOW + 30))
    (job_id,) = insert(store, job())
    claim_one(store, job_id)
    assert store.daemon_heartbeat(OWNER, NOW + 25, NOW + 55) is True
    for now in (NOW + 40, NOW + 3600, NOW - 3600):  # a rescuer's clock, stepped either way
        assert rescue_jobs(store, now, [], "host-b:2:other") == []
    assert get(store, job_id).state is State.RUNNING


def test_a_daemon_never_rescues_its_own_jobs(store: Store) -> None:
    """Not even when another daemon judged it dead and deleted its row meanwhile."""
    store.daemon_register(daemon(OWNER, lease_until=NOW + 30))
    (job_id,) = insert(store, job(retries=3))
    claim_one(store, job_id)
    assert rescue_jobs(store, NOW + 1, [OWNER], OWNER) == []  # it cannot judge itself dead
    assert [d.id for d in store.daemon_list()] == [OWNER]
    store.daemon_unregister(OWNER)  # as if a peer had forgotten it
    assert rescue_jobs(store, NOW + 2, [], OWNER) == []
    assert get(store, job_id).state is State.RUNNING
    assert [j.id for j in rescue_jobs(store, NOW + 3, [], "host-b:2:other")] == [job_id]


def test_rescue_of_a_job_asked_to_cancel_cancels_it(store: Store) -> None:
    """A cancel the dying daemon never carried out is not forgotten by a retry."""
    store.daemon_register(daemon(OWNER, lease_until=NOW + 30))
    (job_id,) = insert(store, job(retries=5))
    claim_one(store, job_id)
    assert store.job_cancel(job_id, NOW + 5) == CancelResult("requested")
    assert [j.id for j in rescue_jobs(store, NOW + 31, [OWNER], None)] == [job_id]
    got = get(store, job_id)
    assert got.state is State.CANCELLED
    assert got.finished_at == NOW + 31
    assert claim(store, now=NOW + 10_000) == []


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_a_waiting_job(store: Store) -> None:
    retrying, queued, scheduled = insert(store, job(retries=1), job(), job(run_at=NOW + 60))
    running = claim_one(store, retrying)
    store.job_end_many(
        OWNER, [end(running, Outcome.FAILED, State.RETRYING, run_at=NOW + 5, error="x")]
    )
    for job_id in (queued, scheduled, retrying):
        assert store.job_cancel(job_id, NOW + 2) == CancelResult("cancelled")
        got = get(store, job_id)
        assert (got.state, got.finished_at) == (State.CANCELLED, NOW + 2)
    assert claim(store, now=NOW + 1000) == []
    assert store.job_next_due() is None


def test_cancel_a_running_job_is_a_request_to_its_owner(store: Store) -> None:
    (job_id,) = insert(store, job())
    running = claim_one(store, job_id)
    assert store.job_cancel(job_id, NOW + 1) == CancelResult("requested")
    got = get(store, job_id)
    assert (got.state, got.cancel_requested) == (State.RUNNING, True)
    assert store.job_cancel_requests(OWNER) == [(job_id, 1)]
    assert store.job_cancel_requests(OTHER) == []
    # asking twice is still a request
    assert store.job_cancel(job_id, NOW + 2) == CancelResult("requested")
    # the owner kills it and ends it cancelled
    store.job_end_many(OWNER, [end(running, Outcome.CANCELLED, State.CANCELLED)])
    assert get(store, job_id).state is State.CANCELLED
    assert store.job_cancel_requests(OWNER) == []


def test_cancel_an_ended_job_reports_its_state_and_changes_nothing(store: Store) -> None:
    done = make_succeeded(store, NOW + 1)
    dead = make_dead(store)
    (cancelled,) = insert(store, job())
    store.job_cancel(cancelled, NOW)
    for ended, state in ((done, "succeeded"), (dead, "dead"), (get(store, cancelled), "cancelled")):
        before = get(store, ended.id)
        assert store.job_cancel(ended.id, NOW + 50) == CancelResult(state)
        assert get(store, ended.id) == before


def test_cancel_an_unknown_job(store: Store) -> None:
    with pytest.raises(JobNotFound):
        store.job_cancel(987654, NOW)


# -- dead-letter queue ---------------------------------------------------------------------------


def test_retry_dead_gives_a_fresh_round_of_attempts(store: Store) -> None:
    dead = make_dead(store, retries=1)
    assert (dead.attempts, dead.max_attempts, dead.error) == (2, 2, "boom 2")
    assert store.job_retry_dead([dead.id], NOW + 100) == [dead.id]
    back = get(store, dead.id)
    assert back.state is State.QUEUED
    assert back.max_attempts == back.attempts + back.retries + 1 == 4
    assert back.attempts == 2
    assert back.run_at == NOW + 100
    assert back.finished_at is None and back.error is None and back.result is None
    # the earlier attempts stay visible
    assert [a.error for a in store.attempt_list(dead.id)] == ["boom 1", "boom 2"]
    again = claim_one(store, dead.id, now=NOW + 100)
    assert again.attempts == 3


def test_retry_dead_moves_only_dead_jobs(store: Store) -> None:
    dead = make_dead(store)
    done = make_succeeded(store, NOW + 1)
    (queued,) = insert(store, job())
    (running,) = insert(store, job(priority=1))
    claim_one(store, running)
    before = {i: get(store, i) for i in (done.id, queued, running)}
    moved = store.job_retry_dead([dead.id, done.id, queued, running, 999_999], NOW + 5)
    assert moved == [dead.id]
    assert {i: get(store, i) for i in before} == before


def test_retry_all_dead(store: Store) -> None:
    first, second = make_dead(store), make_dead(store)
    make_succeeded(store, NOW + 1)
    assert store.job_retry_dead(None, NOW + 9) == [first.id, second.id]
    assert store.job_retry_dead(None, NOW + 9) == []


# -- prune ---------------------------------------------------------------------------------------


def test_delete_ended_removes_only_older_jobs_in_batches(store: Store) -> None:
    old = [make_succeeded(store, NOW + i).id for i in range(5)]
    new = make_succeeded(store, NOW + 1000).id
    before = NOW + 500
    batches = [store.job_delete_ended("succeeded", before, batch=2) for _ in range(4)]
    assert [len(b) for b in batches] == [2, 2, 1, 0]
    assert sorted(i for b in batches for i in b) == old
    for job_id in old:
        assert store.job_get(job_id) is None
        assert store.attempt_list(job_id) == []
    assert get(store, new).state is State.SUCCEEDED
    assert len(store.attempt_list(new)) == 1


def test_delete_ended_takes_only_the_named_final_state(store: Store) -> None:
    done = make_succeeded(store, NOW + 1)
    dead = make_dead(store)
    (cancelled,) = insert(store, job())
    store.job_cancel(cancelled, NOW)
    (queued,) = insert(store, job(run_at=NOW - 10_000))
    (running,) = insert(store, job(priority=1))
    claim_one(store, running)
    far = NOW + 10**6
    assert store.job_delete_ended("dead", far) == [dead.id]
    assert store.attempt_list(dead.id) == []
    assert store.job_delete_ended("cancelled", far) == [cancelled]
    assert store.job_delete_ended("succeeded", far) == [done.id]
    assert {j.id for j in store.job_list(limit=100)} == {queued, running}


def test_count_ended_is_what_delete_ended_deletes(store: Store) -> None:
    old = [make_succeeded(store, NOW + i).id for i in range(3)]
    make_succeeded(store, NOW + 1000)
    make_dead(store)
    assert store.job_count_ended("succeeded", NOW + 500) == 3
    assert store.job_count_ended("cancelled", NOW + 500) == 0
    assert sorted(store.job_delete_ended("succeeded", NOW + 500)) == old
    assert store.job_count_ended("succeeded", NOW + 500) == 0
    with pytest.raises(ValueError):
        store.job_count_ended("queued", NOW + 500)


def test_job_ids_lists_a_state_that_has_not_ended_in_a_queue_or_all(store: Store) -> None:
    queued = insert(store, job(), job(queue="mail"), job(queue="mail"))
    (scheduled,) = insert(store, job(run_at=NOW + 3600))
    (running,) = insert(store, job(priority=5, queue="mail"))
    claim_one(store, running)
    (retrying,) = insert(store, job(priority=5, retries=1))
    failed = claim_one(store, retrying)
    store.job_end_many(
        OWNER, [end(failed, Outcome.FAILED, State.RETRYING, run_at=NOW + 60, error="x")]
    )
    make_dead(store)
    assert store.job_ids("queued") == queued
    assert store.job_ids("queued", "mail") == queued[1:]
    assert store.job_ids("queued", "nowhere") == []
    assert store.job_ids("scheduled") == [scheduled]
    assert store.job_ids("running") == [running]
    assert store.job_ids("running", "default") == []
    assert store.job_ids("retrying") == [retrying]
    with pytest.raises(ValueError):
        store.job_ids("dead")


@pytest.mark.parametrize("state", ["queued", "running", "scheduled", "retrying"])
def test_delete_refuses_jobs_that_have_not_ended(store: Store, state: str) -> None:
    with pytest.raises(ValueError):
        store.job_delete_ended(state, NOW + 10**6)


def test_ids_are_never_reused_after_a_prune(store: Store) -> None:
    last = make_succeeded(store, NOW + 1)
    assert store.job_delete_ended("succeeded", NOW + 10) == [last.id]
    (new,) = insert(store, job())
    assert new > last.id


# -- reads: counts, list, failures, next due ---------------------------------------------------


def test_counts_by_state_and_queue(store: Store) -> None:
    assert store.job_counts() == {}
    insert(
        store,
        job(),
        job(),
        job(queue="email"),
        job(queue="email", run_at=NOW + 60),
    )
    claim(store, limit=1, queues=["default"])
    assert store.job_counts() == {
        ("queued", "default"): 1,
        ("running", "default"): 1,
        ("queued", "email"): 1,
        ("scheduled", "email"): 1,
    }


def counted(store: Store) -> dict[tuple[str, str], int]:
    """The jobs counted one by one, by (state, queue): what job_counts must say."""
    truth: dict[tuple[str, str], int] = {}
    for j in store.job_list(limit=100_000):
        truth[(j.state.value, j.queue)] = truth.get((j.state.value, j.queue), 0) + 1
    return truth


def test_counts_follow_every_change_a_job_goes_through(store: Store) -> None:
    """job_counts is kept as jobs change (not counted at each read): after every kind of
    write it still equals the jobs counted one by one."""

    def check() -> None:
        assert store.job_counts() == counted(store)
        store.job_counts_fold()  # as the leader does now and then: the same counts
        assert store.job_counts() == counted(store)

    *_, d, _ = insert(
        store, job(), job(), job(queue="email"), job(queue="email", run_at=NOW + 60), job()
    )
    keyed = store.job_insert_many([job(key="k"), job(key="k")], NOW)  # one made, one matched
    assert [r.created for r in keyed] == [True, False]
    store.job_insert_calls(job(queue="bulk"), ["[1]", "[2]", "[3]"], NOW)
    check()
    ja, jb, jc = claim(store, limit=3, queues=["default", "email"])
    check()
    assert store.job_end_many(
        OWNER,
        [
            end(ja, Outcome.SUCCEEDED, State.SUCCEEDED, result=1),
            end(jb, Outcome.FAILED, State.RETRYING, error="again", run_at=NOW + 5),
            end(jc, Outcome.FAILED, State.DEAD, error="gone"),
        ],
    ) == [True, True, True]
    check()
    assert store.job_cancel(d, NOW).state == "cancelled"  # waiting: cancelled at once
    (running,) = claim(store, limit=1, queues=["default"])
    assert store.job_cancel(running.id, NOW).state == "requested"  # running: asked
    check()
    assert store.job_release_many(OWNER, [(running.id, running.attempts)], NOW) == 1
    check()
    assert store.job_retry_dead(None, NOW) == [jc.id]
    check()
    assert store.job_delete_ended("succeeded", NOW + 10) == [ja.id]
    assert store.job_delete_ended("cancelled", NOW + 10) == [d]
    check()
    assert {("queued", "bulk"), ("retrying", "default")} <= set(store.job_counts())


def test_search_filters_by_state_queue_task_text_and_time(store: Store) -> None:
    from jobrunner.models import JobQuery

    plain, mail, named, cmd, later = insert(
        store,
        job(args=["invoice-17", 3]),
        job(queue="email", kwargs={"to": "zoë@example.com"}),
        job(options={"task_name": "thumbnail"}, args=["cat.png"]),
        job(task=None, command=["tar", "czf", "backup-17.tgz"]),
        job(args=["invoice-18"]),
        now=NOW,
    )
    store.job_insert_many([job(args=["late"])], NOW + 100)
    claim_one(store, plain, queues=["default"])

    def ids(**fields: Any) -> list[int]:
        return [j.id for j in store.job_search(JobQuery(**fields), None, 50).jobs]

    assert ids(states=["running"]) == [plain]
    assert ids(queue="email") == [mail]
    assert ids(task="thumbnail") == [named]
    assert ids(text="invoice-1") == [later, plain]
    assert ids(text="-17") == [cmd, plain]  # a command's argv too
    assert ids(text="zoë") == [mail]  # as typed, though JSON may have escaped it
    assert ids(text='"to"') == [mail]
    assert ids(text="nowhere") == []
    assert len(ids(until=NOW + 50)) == 5 and ids(since=NOW + 50) == [max(ids())]
    assert ids(states=["queued"], text="invoice") == [later]


def test_search_looks_at_a_window_and_says_where_to_go_on(store: Store) -> None:
    from jobrunner.models import JobQuery

    first = insert(store, *[job(args=[i]) for i in range(10)])
    wanted = insert(store, job(queue="rare"))[0]
    insert(store, *[job(args=[i]) for i in range(10)])
    rare = JobQuery(queue="rare")
    page = store.job_search(rare, None, 50, window=5)  # the 5 newest: not there
    assert page.jobs == [] and page.next is not None and page.scanned == 5
    found = []
    while page.next is not None:  # window after window, as the page's "older" link
        page = store.job_search(rare, page.next, 50, window=5)
        found += [j.id for j in page.jobs]
    assert found == [wanted]
    assert page.scanned < 5  # the last window ran out of jobs
    # every match's id at once, window after window (a bulk action's)
    assert store.job_search_ids(rare, window=5) == [wanted]
    assert store.job_search_ids(JobQuery(), window=7) == sorted(
        [j.id for j in store.job_list(limit=100)], reverse=True
    )
    # a full page goes on below its last job
    every = store.job_search(JobQuery(), None, 4, window=100)
    assert len(every.jobs) == 4 and every.next == every.jobs[-1].id
    rest = store.job_search(JobQuery(), every.next, 100, window=100)
    assert [j.id for j in rest.jobs][-1] == first[0] and rest.next is None


def test_deleting_named_jobs_takes_only_those_that_ended(store: Store) -> None:
    dead = make_dead(store).id
    waiting, running = insert(store, job(), job(priority=9))
    claim_one(store, running)
    assert store.job_delete_ids([dead, waiting, running, 12345]) == [dead]
    assert store.job_get(dead) is None and store.attempt_list(dead) == []
    assert {j.id for j in store.job_list()} == {waiting, running}
    assert store.job_counts() == counted(store)


def test_ended_per_minute_counts_each_final_state_by_minute(store: Store) -> None:
    a, b, c = insert(store, job(), job(), job())
    for job_id, when, outcome, state in (
        (a, NOW + 30, Outcome.SUCCEEDED, State.SUCCEEDED),
        (b, NOW + 150, Outcome.SUCCEEDED, State.SUCCEEDED),
        (c, NOW + 170, Outcome.FAILED, State.DEAD),
    ):
        running = claim_one(store, job_id)
        assert store.job_end_many(OWNER, [end(running, outcome, state, finished_at=when)])
    assert store.job_ended_per_minute(NOW) == {
        ("succeeded", 0): 1,
        ("succeeded", 2): 1,
        ("dead", 2): 1,
    }
    assert store.job_ended_per_minute(NOW + 100) == {("succeeded", 0): 1, ("dead", 1): 1}


def test_list_filters_by_state_and_queue_newest_first(store: Store) -> None:
    a, b, c, d = insert(store, job(), job(queue="email"), job(), job(queue="email"))
    assert [j.id for j in claim(store, queues=["default"])] == [a, c]
    assert [j.id for j in store.job_list()] == [d, c, b, a]
    assert [j.id for j in store.job_list(state="queued")] == [d, b]
    assert [j.id for j in store.job_list(queue="email")] == [d, b]
    assert [j.id for j in store.job_list(state="running", queue="default")] == [c, a]
    assert [j.id for j in store.job_list(state="queued", queue="default")] == []
    assert [j.id for j in store.job_list(limit=2)] == [d, c]
    assert store.job_list(state="dead") == []


def test_list_takes_several_states_and_a_task_newest_first(store: Store) -> None:
    """`list --state A --state B --task T`: every state from its own index, merged newest
    first; the task is the function or the [tasks.NAME] (a named command task too)."""
    dead = make_dead(store).id
    named = {"task_name": "thumbnail"}
    queued, later, running, other, command = insert(
        store,
        job(),
        job(run_at=NOW + 60),
        job(priority=50, options=named),
        job(task="app.tasks:other"),
        job(task=None, command=["echo"], options=named),
    )
    claim_one(store, running)
    assert [j.id for j in store.job_list(["queued", "dead"])] == [command, other, queued, dead]
    assert [j.id for j in store.job_list(("scheduled", "running", "scheduled"))] == [
        running,
        later,
    ]
    assert [j.id for j in store.job_list(["queued", "dead"], limit=2)] == [command, other]
    assert [j.id for j in store.job_list(task="app.tasks:other")] == [other]
    assert [j.id for j in store.job_list(task="thumbnail")] == [command, running]
    assert [j.id for j in store.job_list(["running"], task="thumbnail")] == [running]
    assert [j.id for j in store.job_list(["queued"], queue="email", task="thumbnail")] == []
    assert [j.id for j in store.job_list(task="app.tasks:work", limit=2)] == [running, later]
    assert store.job_list([]) == []
    assert store.job_list(["succeeded", "cancelled", "retrying"]) == []


def test_list_before_an_id_is_the_next_page_whatever_was_added(store: Store) -> None:
    """`before`: only jobs with a smaller id, newest first, with every other filter; a
    page read after more jobs came is the same page (the HTTP API's cursor)."""
    a, b, c, d = insert(store, job(), job(queue="email"), job(), job(queue="email"))
    assert [j.id for j in store.job_list(limit=2)] == [d, c]
    insert(store, job(), job(queue="email"))
    assert [j.id for j in store.job_list(limit=2, before=c)] == [b, a]
    assert [j.id for j in store.job_list(before=d, queue="email")] == [b]
    assert [j.id for j in store.job_list(["queued"], before=c)] == [b, a]
    assert [j.id for j in store.job_list(["queued", "dead"], limit=1, before=b)] == [a]
    assert [j.id for j in store.job_list(task="app.tasks:work", before=b)] == [a]
    assert store.job_list(before=a) == []


def test_recent_failures_are_dead_or_retrying_jobs_with_an_error(store: Store) -> None:
    older_dead = make_dead(store)
    (retry_id,) = insert(store, job(retries=3))
    running = claim_one(store, retry_id, now=NOW + 2)
    store.job_end_many(
        OWNER,
        [end(running, Outcome.FAILED, State.RETRYING, run_at=NOW + 3, error="flaky")],
    )
    make_succeeded(store, NOW + 4)
    insert(store, job())
    (newer_dead_id,) = insert(store, job(retries=0, priority=1))
    newer = claim_one(store, newer_dead_id, now=NOW + 5)
    store.job_end_many(
        OWNER, [end(newer, Outcome.CRASHED, State.DEAD, error="signal 9", finished_at=NOW + 6)]
    )
    failures = store.job_recent_failures(10)
    assert {j.id for j in failures} == {older_dead.id, retry_id, newer_dead_id}
    ids = [j.id for j in failures]
    assert ids.index(newer_dead_id) < ids.index(older_dead.id)
    assert all(j.error for j in failures)
    assert len(store.job_recent_failures(2)) == 2


def test_next_due_is_the_earliest_delayed_or_retrying_job(store: Store) -> None:
    assert store.job_next_due() is None
    insert(store, job())  # queued jobs are due already; they are not "next"
    assert store.job_next_due() is None
    insert(store, job(run_at=NOW + 60), job(run_at=NOW + 30))
    assert store.job_next_due() == NOW + 30
    (retry_id,) = insert(store, job(retries=1, priority=1))
    running = claim_one(store, retry_id)
    store.job_end_many(OWNER, [end(running, Outcome.FAILED, State.RETRYING, run_at=NOW + 10)])
    assert store.job_next_due() == NOW + 10
    claim(store, now=NOW + 45)  # takes the retry and the +30 job
    assert store.job_next_due() == NOW + 60


# -- daemons -------------------------------------------------------------------------------------


def test_daemon_register_list_heartbeat_unregister(store: Store) -> None:
    assert store.daemon_list() == []
    first = daemon("host-a:1:x", lease_until=NOW + 30, started_at=NOW)
    second = DaemonInfo("host-b:2:y", "host-b", 2, NOW + 1, NOW + 1, NOW + 31, 8, ["email", "b"])
    store.daemon_register(first)
    store.daemon_register(second)
    assert store.daemon_list() == [first, second]

    assert store.daemon_heartbeat(first.id, NOW + 20, NOW + 50) is True
    (beat, _) = store.daemon_list()
    assert (beat.heartbeat_at, beat.lease_until) == (NOW + 20, NOW + 50)
    assert store.daemon_heartbeat("nobody:0:z", NOW, NOW + 30) is False

    # registering again (after being presumed dead) updates, never duplicates
    store.daemon_register(daemon(first.id, lease_until=NOW + 90, started_at=NOW))
    assert [d.id for d in store.daemon_list()] == [first.id, second.id]
    assert store.daemon_list()[0].lease_until == NOW + 90

    store.daemon_unregister(first.id)
    assert store.daemon_list() == [second]
    assert store.daemon_heartbeat(first.id, NOW + 21, NOW + 51) is False
    store.daemon_unregister(first.id)  # twice is harmless
    assert store.daemon_list() == [second]


# -- whole paths -----------------------------------------------------------------------------


def test_every_state_the_store_produces_is_in_the_lifecycle(store: Store) -> None:
    make_dead(store)
    make_succeeded(store, NOW + 1)
    (c,) = insert(store, job())
    store.job_cancel(c, NOW)
    insert(store, job(run_at=NOW + 99), job())
    states = {state for state, _ in store.job_counts()}
    assert states == {"dead", "succeeded", "cancelled", "scheduled", "queued"}
    assert {"dead", "succeeded", "cancelled"} == {str(s) for s in FINAL}


def test_data_written_by_one_connection_is_seen_by_another(
    connect: Callable[[], Store],
) -> None:
    writer, reader = connect(), connect()
    (job_id,) = insert(writer, job(args=["shared"]))
    assert get(reader, job_id).args == ["shared"]
    claim_one(reader, job_id)
    assert get(writer, job_id).state is State.RUNNING


def test_insert_calls_makes_one_job_per_args_in_order(store: Any) -> None:
    template = JobInsert(task="mod:fn", queue="bulk", priority=3, retries=2)
    ids = store.job_insert_calls(template, ["[1]", '[2,"x"]', "[]"], NOW)
    assert ids == sorted(ids) and len(set(ids)) == 3
    jobs = [store.job_get(i) for i in ids]
    assert [j.args for j in jobs] == [[1], [2, "x"], []]
    assert {(j.task, j.queue, j.priority, j.max_attempts, str(j.state)) for j in jobs} == {
        ("mod:fn", "bulk", 3, 3, "queued")
    }


def test_insert_calls_writes_nothing_when_an_args_text_cannot_be_stored(store: Any) -> None:
    before = sum(store.job_counts().values())
    with pytest.raises(ValueError):  # a lone surrogate is not UTF-8
        store.job_insert_calls(JobInsert(task="mod:fn"), ["[1]", '["\udcff"]'], NOW)
    assert sum(store.job_counts().values()) == before
