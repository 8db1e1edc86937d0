"""A queue's `concurrency` limit holds across every daemon of the database (conformance):
the claim counts the jobs running in the queue, whoever runs them, in its own
transaction, and takes at most the rest; a daemon's own `per_daemon` cap lowers it
further. Two daemons claiming at the same moment never run more than the limit."""

from __future__ import annotations

import threading
from collections.abc import Callable

from jobrunner.lifecycle import Outcome, State
from jobrunner.models import JobInsert
from jobrunner.store.base import ClaimRequest, Store
from tests.store.test_conformance import NOW, OTHER, OWNER, end, insert, job
from tests.store.together import run_together


def claim_limited(
    store: Store,
    owner: str,
    limits: dict[str, int],
    caps: dict[str, int] | None = None,
    limit: int = 100,
) -> list[int]:
    return [j.id for j in store.job_claim(ClaimRequest(owner, NOW, limit, None, caps, limits))]


def test_the_limit_counts_jobs_running_on_every_daemon(store: Store) -> None:
    ids = insert(store, *(job(queue="one") for _ in range(5)), job(queue="free"))
    mine = claim_limited(store, OWNER, {"one": 2})
    assert sorted(mine) == sorted([*ids[:2], ids[5]])  # two of the limited, the free one
    assert claim_limited(store, OTHER, {"one": 2}) == []  # the limit is reached, whoever
    running = store.job_get(ids[0])
    assert running is not None
    ended = end(running, Outcome.SUCCEEDED, State.SUCCEEDED)
    assert store.job_end_many(OWNER, [ended]) == [True]
    assert claim_limited(store, OTHER, {"one": 2}) == [ids[2]]  # one place came free


def test_a_daemons_own_cap_and_the_limit_both_hold(store: Store) -> None:
    ids = insert(store, *(job(queue="one") for _ in range(6)))
    assert claim_limited(store, OWNER, {"one": 4}, caps={"one": 1}) == [ids[0]]
    assert claim_limited(store, OTHER, {"one": 4}, caps={"one": 5}) == ids[1:4]
    assert claim_limited(store, OTHER, {"one": 4}, caps={"one": 5}) == []


def test_a_daemon_that_does_not_serve_the_queue_leaves_it(store: Store) -> None:
    insert(store, job(queue="one"), job(queue="two"))
    request = ClaimRequest(OWNER, NOW, 10, ["two"], None, {"one": 1})
    assert [j.queue for j in store.job_claim(request)] == ["two"]


def test_two_daemons_claiming_at_once_never_pass_the_limit(
    connect: Callable[[], Store],
) -> None:
    """Many rounds of two connections claiming a limited queue at the same moment,
    ending what they got: never more than the limit running, and every job runs."""
    stores = {OWNER: connect(), OTHER: connect()}
    ids = insert(stores[OWNER], *(job(queue="one") for _ in range(40)))
    ran: list[int] = []
    lock = threading.Lock()
    most = 0

    def work(owner: str) -> Callable[[], None]:
        def loop() -> None:
            nonlocal most
            store = stores[owner]
            for _ in range(200):
                got = store.job_claim(ClaimRequest(owner, NOW, 2, None, None, {"one": 2}))
                running = sum(n for (s, q), n in store.job_counts().items() if s == "running")
                with lock:
                    most = max(most, running)
                    ran.extend(j.id for j in got)
                for j in got:
                    store.job_end_many(owner, [end(j, Outcome.SUCCEEDED, State.SUCCEEDED)])
                if len(ran) >= len(ids):
                    return

        return loop

    run_together(work(OWNER), work(OTHER))
    assert most <= 2
    assert sorted(ran) == ids  # each once


# -- rate limits ------------------------------------------------------------------------------


def claim_rated(store: Store, owner: str, now: float, most: int, period: float) -> list[int]:
    request = ClaimRequest(owner, now, 100, None, None, None, {"api": (most, period)})
    return [j.id for j in store.job_claim(request)]


def test_a_rate_allows_so_many_starts_per_window_on_every_daemon(store: Store) -> None:
    ids = insert(store, *(job(queue="api") for _ in range(10)), job(queue="free"))
    start = NOW - NOW % 60  # a window's first second
    assert claim_rated(store, OWNER, start, 3, 60.0) == [*ids[:3], ids[10]]
    assert claim_rated(store, OTHER, start + 59, 3, 60.0) == []  # the window is used up
    assert claim_rated(store, OTHER, start + 60, 3, 60.0) == ids[3:6]  # the next one
    assert claim_rated(store, OWNER, start + 61, 3, 60.0) == []
    assert store.queue_rate_counts() == {"api": (start + 60, 3)}  # what `status` reads
    # a daemon whose clock is behind counts into the later window, never reopens its own
    assert claim_rated(store, OWNER, start + 59.99, 3, 60.0) == []
    assert store.queue_rate_counts() == {"api": (start + 60, 3)}


def test_two_daemons_claiming_at_once_share_the_window(connect: Callable[[], Store]) -> None:
    stores = {OWNER: connect(), OTHER: connect()}
    insert(stores[OWNER], *(job(queue="api") for _ in range(60)))
    taken: list[int] = []
    lock = threading.Lock()

    def work(owner: str) -> Callable[[], None]:
        def loop() -> None:
            for _ in range(30):
                got = claim_rated(stores[owner], owner, NOW, 7, 3600.0)
                with lock:
                    taken.extend(got)

        return loop

    run_together(work(OWNER), work(OTHER))
    assert len(taken) == len(set(taken)) == 7


# -- concurrency keys -------------------------------------------------------------------------


def keyed(key: str | None) -> JobInsert:
    return job(queue="sync", options={"concurrency_key": key} if key else {})


def claim_keyed(store: Store, owner: str, per_key: int, limit: int = 100) -> list[int]:
    request = ClaimRequest(owner, NOW, limit, None, None, None, None, {"sync": per_key})
    return [j.id for j in store.job_claim(request)]


def test_per_key_holds_across_daemons_and_keyless_jobs_pass(store: Store) -> None:
    a1, a2, b1, none1, a3, b2 = insert(
        store, keyed("a"), keyed("a"), keyed("b"), keyed(None), keyed("a"), keyed("b")
    )
    assert claim_keyed(store, OWNER, 1, limit=2) == [a1, b1]  # a2 steps aside for b1
    assert claim_keyed(store, OTHER, 1) == [none1]  # a and b are full, on any daemon
    running = store.job_get(a1)
    assert running is not None
    assert store.job_end_many(OWNER, [end(running, Outcome.SUCCEEDED, State.SUCCEEDED)]) == [True]
    assert claim_keyed(store, OTHER, 1) == [a2]  # a has room again: its next, in order
    assert claim_keyed(store, OTHER, 2) == [a3, b2]  # two a key may run with per_key 2


def test_a_key_full_in_a_long_backlog_does_not_hide_the_others(store: Store) -> None:
    many = insert(store, *(keyed("big") for _ in range(300)))
    (other,) = insert(store, keyed("small"))
    assert claim_keyed(store, OWNER, 1) == [many[0], other]
    assert claim_keyed(store, OTHER, 1) == []


def test_two_daemons_claiming_keyed_jobs_at_once_never_pass_per_key(
    connect: Callable[[], Store],
) -> None:
    stores = {OWNER: connect(), OTHER: connect()}
    ids = insert(stores[OWNER], *(keyed(k) for _ in range(10) for k in ("a", "b")))
    ran: list[int] = []
    lock = threading.Lock()
    worst = 0

    def work(owner: str) -> Callable[[], None]:
        def loop() -> None:
            nonlocal worst
            store = stores[owner]
            for _ in range(200):
                got = store.job_claim(
                    ClaimRequest(owner, NOW, 2, None, None, None, None, {"sync": 1})
                )
                running = store.job_list("running", None, 100)
                keys = [j.options.get("concurrency_key") for j in running]
                with lock:
                    worst = max([worst, *(keys.count(k) for k in set(keys))])
                    ran.extend(j.id for j in got)
                for j in got:
                    store.job_end_many(owner, [end(j, Outcome.SUCCEEDED, State.SUCCEEDED)])
                if len(ran) >= len(ids):
                    return

        return loop

    run_together(work(OWNER), work(OTHER))
    assert worst <= 1
    assert sorted(ran) == ids
