"""Conformance: schedules (the compare-and-set fire, pause, what `schedules list`
reads) and named leases. Protocol only, through the fixtures of conftest.py."""

from __future__ import annotations

from collections.abc import Callable

from jobrunner.models import JobInsert, ScheduleState
from jobrunner.store.base import Store
from tests.store.test_conformance import NOW, daemon, get, rescue_jobs
from tests.store.together import run_together

LEADER = "leader"
A, B = "host-a:1:aaaa", "host-b:2:bbbb"


def fire_job(name: str, at: float, **fields: object) -> JobInsert:
    return JobInsert(task="app.tasks:nightly", schedule=name, scheduled_for=at, **fields)


# -- schedules -----------------------------------------------------------------------------


def test_a_fire_moves_last_fire_only_from_the_value_the_scheduler_read(store: Store) -> None:
    (first,) = store.schedule_fire("nightly", None, NOW, [fire_job("nightly", NOW)], NOW) or []
    # a daemon that read an older last_fire (or none) loses the race: nothing is written
    fire = [fire_job("nightly", NOW + 60)]
    assert store.schedule_fire("nightly", None, NOW + 60, fire, NOW) is None
    assert store.schedule_fire("nightly", NOW - 60, NOW + 60, [], NOW + 60) is None
    (second,) = (
        store.schedule_fire("nightly", NOW, NOW + 60, [fire_job("nightly", NOW + 60)], NOW + 60)
        or []
    )
    assert store.schedule_list() == [ScheduleState("nightly", NOW + 60, False, second)]
    assert [get(store, i).scheduled_for for i in (first, second)] == [NOW, NOW + 60]


def test_one_fire_makes_one_job_even_when_the_same_fire_is_made_twice(store: Store) -> None:
    """The unique (schedule, scheduled_for) holds whatever last_fire says: a fire time's
    second job is never inserted (a manual run is another time)."""
    store.schedule_fire("nightly", None, NOW, [fire_job("nightly", NOW)], NOW)
    again = store.schedule_fire("nightly", NOW, NOW + 1, [fire_job("nightly", NOW)], NOW + 1)
    assert again == []  # last_fire moved on, but no second job for the same fire time
    assert len(store.job_list()) == 1


def test_two_connections_racing_for_one_fire_make_one_job(connect: Callable[[], Store]) -> None:
    stores = [connect() for _ in range(4)]
    stores[0].schedule_fire("every", None, NOW, [], NOW)
    won: list[list[int]] = []

    def race(store: Store) -> Callable[[], None]:
        def fire() -> None:
            fired = store.schedule_fire("every", NOW, NOW + 60, [fire_job("every", NOW + 60)], NOW)
            if fired is not None:
                won.append(fired)

        return fire

    run_together(*(race(s) for s in stores))
    assert len(won) == 1 and len(won[0]) == 1
    assert [j.id for j in stores[0].job_list()] == won[0]


def test_a_paused_schedule_does_not_fire_and_resumes_from_now(store: Store) -> None:
    store.schedule_fire("nightly", None, NOW, [], NOW)
    store.schedule_set_paused("nightly", True, NOW + 10)
    fire = [fire_job("nightly", NOW + 60)]
    assert store.schedule_fire("nightly", NOW, NOW + 60, fire, NOW) is None
    assert store.job_list() == []
    assert store.schedule_states(["nightly"]) == [ScheduleState("nightly", NOW, True, None)]
    store.schedule_set_paused("nightly", False, NOW + 500)
    (state,) = store.schedule_states(["nightly"])
    assert (state.paused, state.last_fire) == (False, NOW + 500)  # no catch-up of the pause


def test_pausing_an_unseen_schedule_records_it(store: Store) -> None:
    store.schedule_set_paused("later", True, NOW)
    assert store.schedule_list() == [ScheduleState("later", NOW, True, None)]


def test_states_list_every_name_asked_for_seen_or_not(store: Store) -> None:
    """A manual run of a schedule no daemon has seen is its last job all the same."""
    store.schedule_fire("seen", None, NOW, [fire_job("seen", NOW)], NOW)
    (manual,) = store.job_insert_many([fire_job("unseen", NOW + 5)], NOW + 5)
    states = store.schedule_states(["unseen", "seen", "never"])
    assert [(s.name, s.last_fire, s.last_job_id) for s in states] == [
        ("unseen", None, manual.id),
        ("seen", NOW, 1),
        ("never", None, None),
    ]


def test_last_jobs_are_the_latest_fires_job_and_the_manual_runs_after_it(store: Store) -> None:
    store.schedule_fire("s", None, NOW, [fire_job("s", NOW)], NOW)
    (second,) = store.schedule_fire("s", NOW, NOW + 60, [fire_job("s", NOW + 60)], NOW) or []
    manual = store.job_insert_many([fire_job("s", NOW + 70)], NOW + 70)[0].id
    assert [j.id for j in store.schedule_last_jobs("s", NOW + 60)] == [second, manual]
    assert store.schedule_last_jobs("other", NOW + 60) == []


# -- leases --------------------------------------------------------------------------------


def test_a_lease_has_one_holder_until_it_expires(store: Store) -> None:
    assert store.lease_acquire(LEADER, A, 30, NOW) == A
    assert store.lease_acquire(LEADER, B, 30, NOW + 29) == A  # held: B is told by whom
    assert store.lease_acquire(LEADER, A, 30, NOW + 29) == A  # its holder renews it
    assert store.lease_acquire(LEADER, B, 30, NOW + 58) == A  # renewed until NOW + 59
    assert store.lease_acquire(LEADER, B, 30, NOW + 59) == B  # expired: taken over
    assert store.lease_acquire("other", A, 30, NOW + 59) == A  # names are independent


def test_renew_extends_only_the_holders_lease(store: Store) -> None:
    store.lease_acquire(LEADER, A, 30, NOW)
    assert store.lease_renew(LEADER, B, 30, NOW + 1) is False
    assert store.lease_renew(LEADER, A, 30, NOW + 20) is True
    assert store.lease_acquire(LEADER, B, 30, NOW + 40) == A  # held until NOW + 50
    store.lease_acquire(LEADER, B, 30, NOW + 50)
    assert store.lease_renew(LEADER, A, 30, NOW + 51) is False  # lost: A must step down
    assert store.lease_renew("never-taken", A, 30, NOW) is False


def test_release_frees_the_lease_at_once_but_only_for_its_holder(store: Store) -> None:
    store.lease_acquire(LEADER, A, 30, NOW)
    store.lease_release(LEADER, B)  # not B's: nothing changes
    assert store.lease_acquire(LEADER, B, 30, NOW + 1) == A
    store.lease_release(LEADER, A)
    assert store.lease_acquire(LEADER, B, 30, NOW + 1) == B


def test_a_daemon_that_stops_or_is_judged_dead_holds_no_lease(store: Store) -> None:
    for who in (A, B, "host-c:3:cccc"):
        store.daemon_register(daemon(who, lease_until=NOW + 30))
    store.lease_acquire("l1", A, 300, NOW)
    store.lease_acquire("l2", B, 300, NOW)
    store.lease_acquire("l3", "host-c:3:cccc", 300, NOW)
    store.daemon_unregister(A)
    store.daemon_expire(B)
    rescue_jobs(store, NOW, ["host-c:3:cccc"], "host-d:4:dddd")
    for name in ("l1", "l2", "l3"):
        assert store.lease_acquire(name, "host-d:4:dddd", 300, NOW + 1) == "host-d:4:dddd"


def test_connections_racing_for_a_free_lease_agree_on_one_holder(
    connect: Callable[[], Store],
) -> None:
    owners = [f"host-{i}:{i}:x" for i in range(4)]
    stores = {o: connect() for o in owners}
    seen: dict[str, str] = {}

    def race(owner: str) -> Callable[[], None]:
        def take() -> None:
            seen[owner] = stores[owner].lease_acquire(LEADER, owner, 30, NOW)

        return take

    run_together(*(race(o) for o in owners))
    (holder,) = set(seen.values())
    assert holder in owners
