"""Webhook deliveries, for every backend: the feed's events become deliveries once, with
the cursor moved in the same transaction; claims are leased and fenced; attempts are kept;
a 410 disables a URL until it is enabled; retention prunes ended deliveries."""

from __future__ import annotations

from collections.abc import Callable

from jobrunner.models import DeliveryAttempt, DeliveryInsert, JobInsert
from jobrunner.store.base import Store
from tests.store.test_conformance import NOW, insert, job

URL = "https://hooks.example/jobs"
OTHER_URL = "https://other.example/in"


def make(store: Store, *urls: str, job_id: int = 1, seq: int | None = None) -> list[int]:
    """Deliveries of event `seq` (default: the newest) to `urls`; returns their ids."""
    after = store.webhook_cursor()
    upto = store.events_last_seq() if seq is None else seq
    rows = [
        DeliveryInsert(f"msg_{upto}_{i}", upto, job_id, url, "job.succeeded", '{"type":"x"}')
        for i, url in enumerate(urls)
    ]
    assert store.webhook_enqueue(after, upto, rows, NOW)
    return sorted(d.id for d in store.webhook_deliveries(job_id=job_id) if d.event_seq == upto)


def attempt(delivery_id: int, outcome: str = "failed", status: int | None = 500) -> DeliveryAttempt:
    return DeliveryAttempt(delivery_id, NOW + 1, outcome, status, "oops", f"HTTP {status}", 0.01)


def test_a_new_database_starts_the_cursor_after_its_feed(store: Store) -> None:
    assert store.webhook_cursor() == 0
    insert(store, job(), job())
    assert store.webhook_cursor() == 0  # nothing read yet
    assert store.events_last_seq() == 2


def test_events_become_deliveries_once(connect: Callable[[], Store]) -> None:
    a, b = connect(), connect()
    insert(a, job())
    cursor = a.webhook_cursor()
    one = DeliveryInsert("msg_a", 1, 1, URL, "job.succeeded", "{}")
    assert a.webhook_enqueue(cursor, 1, [one], NOW)
    # a second dispatcher that read the same events is refused and writes nothing
    assert not b.webhook_enqueue(cursor, 1, [DeliveryInsert("msg_b", 1, 1, URL, "x", "{}")], NOW)
    assert [d.msg_id for d in b.webhook_deliveries()] == ["msg_a"]
    assert b.webhook_cursor() == 1
    # the same event to the same URL again (a retried expansion) is one delivery
    assert a.webhook_enqueue(1, 1, [DeliveryInsert("msg_c", 1, 1, URL, "x", "{}")], NOW)
    assert len(a.webhook_deliveries()) == 1
    (d,) = a.webhook_deliveries()
    assert (d.state, d.attempts, d.next_at, d.url, d.job_id) == ("pending", 0, NOW, URL, 1)


def test_claims_are_leased_bounded_per_url_and_exclusive(connect: Callable[[], Store]) -> None:
    a, b = connect(), connect()
    insert(a, job())
    ids = make(a, URL, OTHER_URL, "https://third.example/")
    make(a, URL, seq=a.webhook_cursor())  # same seq, same URL: ignored
    insert(a, job())
    make(a, URL)
    got = a.webhook_claim("d1", NOW, 30, limit=10, per_url=1)
    assert sorted(d.url for d in got) == sorted([URL, OTHER_URL, "https://third.example/"])
    assert all(d.owner == "d1" and d.lease_until == NOW + 30 for d in got)
    # held: another dispatcher gets only what d1 did not take
    (rest,) = b.webhook_claim("d2", NOW, 30, limit=10, per_url=5)
    assert rest.url == URL and rest.id not in ids
    assert b.webhook_claim("d2", NOW, 30, limit=10, per_url=5) == []
    # busy URLs are skipped; an expired lease makes a delivery due again
    got = b.webhook_claim("d2", NOW + 31, 30, 10, 5, room={URL: 0, OTHER_URL: 0})
    assert [d.url for d in got] == ["https://third.example/"]


def test_a_claim_leaves_each_url_its_room(store: Store) -> None:
    for _ in range(4):
        insert(store, job())
        make(store, URL, OTHER_URL)
    got = store.webhook_claim("d1", NOW, 30, limit=10, per_url=3, room={URL: 1})
    assert sorted(d.url for d in got) == [URL] + [OTHER_URL] * 3


def test_an_attempt_is_fenced_by_its_owner_and_kept(connect: Callable[[], Store]) -> None:
    a, b = connect(), connect()
    insert(a, job())
    (did,) = make(a, URL)
    a.webhook_claim("d1", NOW, 30, 10, 5)
    b.webhook_claim("d2", NOW + 31, 30, 10, 5)  # d1's lease ran out: d2 took it
    assert a.webhook_attempt_end("d1", [(attempt(did), "pending", NOW + 5, None)]) == [False]
    assert a.webhook_attempts(did) == []
    assert b.webhook_attempt_end("d2", [(attempt(did), "pending", NOW + 36, None)]) == [True]
    d = b.webhook_delivery(did)
    assert d is not None
    assert (d.state, d.attempts, d.next_at, d.owner, d.last_status) == (
        "pending",
        1,
        NOW + 36,
        None,
        500,
    )
    assert b.webhook_claim("d2", NOW + 35, 30, 10, 5) == []  # not due yet
    b.webhook_claim("d2", NOW + 36, 30, 10, 5)
    assert b.webhook_attempt_end(
        "d2", [(attempt(did, "delivered", 204), "delivered", None, None)]
    ) == [True]
    d = b.webhook_delivery(did)
    assert d is not None and (d.state, d.attempts, d.ended_at) == ("delivered", 2, NOW + 1)
    assert [(x.outcome, x.status, x.body) for x in a.webhook_attempts(did)] == [
        ("failed", 500, "oops"),
        ("delivered", 204, "oops"),
    ]
    assert a.webhook_counts() == {"delivered": 1}
    assert a.webhook_next_due() is None


def test_a_gone_url_is_disabled_until_enabled(store: Store) -> None:
    insert(store, job())
    first, other = make(store, URL, OTHER_URL)
    insert(store, job())
    (second,) = make(store, URL)
    claimed = store.webhook_claim("d1", NOW, 30, 10, 1)
    gone = next(d for d in claimed if d.id == first)
    store.webhook_attempt_end("d1", [(attempt(gone.id, "gone", 410), "failed", None, "410 Gone")])
    assert [(e.url, e.reason) for e in store.webhook_disabled()] == [(URL, "410 Gone")]
    # the URL's other deliveries wait, not lost; other URLs go on
    # (the other URL's delivery is due again: its lease ran out unanswered)
    assert [d.id for d in store.webhook_claim("d1", NOW + 100, 30, 10, 5)] == [other]
    assert store.webhook_next_due() == NOW + 130  # when that lease runs out
    assert store.webhook_enable(URL)
    assert not store.webhook_enable(URL)
    assert [d.id for d in store.webhook_claim("d1", NOW + 100, 30, 10, 5)] == [second]


def test_redeliver_sends_again_with_the_same_id(store: Store) -> None:
    insert(store, job())
    (did,) = make(store, URL)
    store.webhook_claim("d1", NOW, 30, 10, 5)
    assert not store.webhook_redeliver(did, NOW)  # being sent: left to finish
    store.webhook_attempt_end("d1", [(attempt(did), "failed", None, None)])
    assert store.webhook_deliveries(state="failed")[0].id == did
    assert store.webhook_redeliver(did, NOW + 50)
    d = store.webhook_delivery(did)
    assert d is not None and (d.state, d.attempts, d.next_at, d.ended_at) == (
        "pending",
        0,
        NOW + 50,
        None,
    )
    (again,) = store.webhook_claim("d1", NOW + 50, 30, 10, 5)
    assert again.msg_id == d.msg_id
    assert not store.webhook_redeliver(999, NOW)
    assert store.webhook_delivery(999) is None


def test_deliveries_page_newest_first_by_job_and_state(store: Store) -> None:
    insert(store, job(), job())
    ids = make(store, URL, OTHER_URL, job_id=1)
    assert [d.id for d in store.webhook_deliveries()] == sorted(ids, reverse=True)
    assert [d.id for d in store.webhook_deliveries(limit=1, before=max(ids))] == [min(ids)]
    assert store.webhook_deliveries(job_id=2) == []
    assert store.webhook_deliveries(state="failed") == []
    assert store.webhook_counts() == {"pending": 2}


def test_retention_prunes_ended_deliveries_and_their_attempts(store: Store) -> None:
    insert(store, job())
    done, waiting = make(store, URL, OTHER_URL)
    store.webhook_claim("d1", NOW, 30, 10, 5)
    store.webhook_attempt_end("d1", [(attempt(done, "delivered", 200), "delivered", None, None)])
    store.webhook_attempt_end("d1", [(attempt(waiting), "pending", NOW + 10, None)])
    assert store.webhook_prune(NOW + 1, 10) == 0  # ended at NOW + 1: not before it
    assert store.webhook_prune(NOW + 2, 10) == 1
    assert store.webhook_delivery(done) is None and store.webhook_attempts(done) == []
    assert store.webhook_delivery(waiting) is not None  # pending: kept


def test_retention_keeps_events_the_dispatcher_has_not_read(store: Store) -> None:
    insert(store, job(), job(), job(), now=NOW)
    assert store.webhook_enqueue(0, 2, [], NOW)
    assert store.events_prune(NOW + 50, batch=10) == 2
    assert [e.seq for e in store.events_after(0, None, 10)] == [3]


def test_the_dispatcher_reads_only_the_event_types_it_wants(store: Store) -> None:
    insert(store, job(), job(), job())  # three job.queued events, seq 1..3
    fire = JobInsert(task="app.tasks:nightly", schedule="nightly", scheduled_for=NOW)
    store.schedule_fire("nightly", None, NOW, [fire], NOW)  # schedule.fired, job.queued
    assert store.webhook_events(0, ["job.succeeded"], 10) == ([], 5)  # none, read to 5
    events, upto = store.webhook_events(0, ["job.queued"], 10)
    assert [e.seq for e, _, _ in events] == [1, 2, 3, 5] and upto == 5
    assert {(queue, callback) for _, queue, callback in events} == {("default", None)}
    events, upto = store.webhook_events(0, ["job.queued"], 2)
    assert [e.seq for e, _, _ in events] == [1, 2] and upto == 2  # a full page: to its end
    assert store.webhook_events(5, ["job.queued"], 10) == ([], 5)
    called = JobInsert(task="app:f", queue="mail", options={"callback": "https://x.example/"})
    (job_id,) = insert(store, called)
    ((event, queue, callback),), _ = store.webhook_events(5, ["job.queued"], 10)
    assert (event.job_id, queue, callback) == (job_id, "mail", "https://x.example/")
