"""Conformance: two connections doing conflicting things at once. Each test runs real
threads on separate connections (bounded loops), then checks what the store must
guarantee whatever the interleaving: no job taken twice, none lost, one end each, and a
feed that says so."""

from __future__ import annotations

from collections.abc import Callable

from jobrunner.lifecycle import FINAL, Outcome, State
from jobrunner.store.base import Store
from tests.store.test_conformance import (
    NOW,
    claim,
    daemon,
    end,
    get,
    insert,
    job,
    rescue_jobs,
)
from tests.store.together import run_together

LIVE, DEAD, RESCUER = "host-a:1:live", "host-b:2:dead", "host-c:3:resc"


def final_events(store: Store, job_id: int) -> list[State]:
    return [e.state for e in store.events_after(0, job_id) if e.state in FINAL]


def test_a_rescue_racing_a_live_daemons_claims_takes_only_the_dead_daemons_jobs(
    connect: Callable[[], Store],
) -> None:
    setup = connect()
    setup.daemon_register(daemon(LIVE, lease_until=NOW + 300))
    setup.daemon_register(daemon(DEAD, lease_until=NOW + 30))
    ids = insert(setup, *[job(retries=0) for _ in range(120)])
    lost = {j.id for j in claim(setup, owner=DEAD, limit=30)}
    live, rescuer = connect(), connect()
    finished: list[int] = []
    rescued: list[int] = []

    def work() -> None:
        while batch := claim(live, owner=LIVE, limit=4):
            ends = [end(j, Outcome.SUCCEEDED, State.SUCCEEDED) for j in batch]
            assert live.job_end_many(LIVE, ends) == [True] * len(batch)
            finished.extend(j.id for j in batch)

    def rescue() -> None:
        for _ in range(15):
            rescued.extend(r.id for r in rescue_jobs(rescuer, NOW + 31, [DEAD], RESCUER))

    run_together(work, rescue)
    assert set(rescued) == lost and len(rescued) == len(lost)  # each once, none of LIVE's
    assert set(finished) == set(ids) - lost and len(finished) == len(set(finished))
    for job_id in ids:
        expected = State.DEAD if job_id in lost else State.SUCCEEDED
        assert get(setup, job_id).state is expected
        assert final_events(setup, job_id) == [expected]
    assert [d.id for d in setup.daemon_list()] == [LIVE]


def test_a_finish_racing_a_cancel_ends_each_job_once(connect: Callable[[], Store]) -> None:
    """The worker's result and an operator's cancel meet: whichever commits first wins
    and the other changes nothing; a cancel that came first is a request the end
    settles (none is left pending)."""
    setup = connect()
    ids = insert(setup, *[job() for _ in range(80)])
    running = claim(setup, owner=LIVE, limit=len(ids))
    finisher, canceller = connect(), connect()
    answers: dict[int, str] = {}

    def finish() -> None:
        for j in running:
            (ok,) = finisher.job_end_many(LIVE, [end(j, Outcome.SUCCEEDED, State.SUCCEEDED)])
            assert ok

    def cancel() -> None:
        for job_id in reversed(ids):
            answers[job_id] = canceller.job_cancel(job_id, NOW + 1).state

    run_together(finish, cancel)
    assert set(answers.values()) <= {"requested", "succeeded"}
    for job_id in ids:
        assert get(setup, job_id).state is State.SUCCEEDED
        assert final_events(setup, job_id) == [State.SUCCEEDED]
    assert setup.job_cancel_requests(LIVE) == []


def test_a_claim_racing_a_cancel_never_runs_a_cancelled_job(connect: Callable[[], Store]) -> None:
    setup = connect()
    ids = insert(setup, *[job() for _ in range(100)])
    claimer, canceller = connect(), connect()
    claimed: list[int] = []
    answers: dict[int, str] = {}

    def take() -> None:
        while batch := claim(claimer, owner=LIVE, limit=3):
            claimed.extend(j.id for j in batch)

    def cancel() -> None:
        for job_id in reversed(ids):
            answers[job_id] = canceller.job_cancel(job_id, NOW + 1).state

    run_together(take, cancel)
    cancelled = {i for i, a in answers.items() if a == "cancelled"}
    assert cancelled.isdisjoint(claimed) and cancelled | set(claimed) == set(ids)
    for job_id in claimed:  # claimed first: the cancel is a request to its owner
        assert answers[job_id] == "requested"
        assert get(setup, job_id).state is State.RUNNING
    assert {i for i, _ in setup.job_cancel_requests(LIVE)} == set(claimed)
    for job_id in cancelled:
        assert get(setup, job_id).state is State.CANCELLED


def test_counts_stay_exact_while_claims_ends_and_folds_run_at_once(
    connect: Callable[[], Store],
) -> None:
    """Two daemons' claims and ends, submits, and the leader folding the counts, all at
    once: the counts then equal the jobs counted one by one (PostgreSQL keeps them as
    deltas that nobody locks; a fold must lose none committed meanwhile)."""
    from tests.store.test_conformance import counted

    setup = connect()
    insert(setup, *[job(queue=("a", "b")[i % 2]) for i in range(100)])
    first, second, submitter, folder = connect(), connect(), connect(), connect()

    def work(store: Store, owner: str) -> Callable[[], None]:
        def loop() -> None:
            while batch := claim(store, owner=owner, limit=3):
                outcome = [
                    end(j, Outcome.SUCCEEDED, State.SUCCEEDED)
                    if j.id % 3
                    else end(j, Outcome.FAILED, State.DEAD, error="no")
                    for j in batch
                ]
                assert store.job_end_many(owner, outcome) == [True] * len(batch)

        return loop

    def submit() -> None:
        for i in range(40):
            insert(submitter, job(queue=("a", "c")[i % 2]))

    def fold() -> None:
        for _ in range(60):
            folder.job_counts_fold()

    run_together(work(first, LIVE), work(second, DEAD), submit, fold)
    assert setup.job_counts() == counted(setup)
    setup.job_counts_fold()
    assert setup.job_counts() == counted(setup)
    assert sum(setup.job_counts().values()) == 140
