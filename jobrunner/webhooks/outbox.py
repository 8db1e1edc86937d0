"""What the dispatcher decides, apart from sending: which deliveries the feed's events
make (`expand`), and what follows an attempt (`after_attempt`). Both take `now`; the
store applies the decisions (docs/architecture.md, "Webhooks")."""

from __future__ import annotations

import itertools
import secrets

from jobrunner.models import DeliveryInsert, iso
from jobrunner.webhooks.settings import FINAL_EVENTS
from jobrunner.webhooks.signing import payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random

    from jobrunner.models import Delivery, Event, Job
    from jobrunner.store.base import Store
    from jobrunner.webhooks.send import Attempt
    from jobrunner.webhooks.settings import WebhooksConfig

EXPAND_BATCH = 500  # events read per transaction


_PREFIX = f"msg_{secrets.token_urlsafe(12)}_"  # random per process
_count = itertools.count(1)


def new_msg_id() -> str:
    """A webhook-id: unique across processes and databases too (a receiver that
    deduplicates on it must never drop a delivery because an older database once used
    the same number): 72 random bits per process, then a count."""
    return f"{_PREFIX}{next(_count)}"


def targets(config: WebhooksConfig, event_type: str, queue: str, callback: str | None) -> list[str]:
    """The URLs that get `event_type` of a job of `queue`: each endpoint that subscribes
    to it (and to the queue), and the job's own callback for its final event."""
    urls = [e.url for e in config.endpoints if e.wants(event_type, queue)]
    if callback and event_type in FINAL_EVENTS and callback not in urls:
        urls.append(callback)
    return urls


class Expander:
    """Turns the events after the cursor into deliveries, moving the cursor past them in
    the same transaction (compare-and-set: another dispatcher that read them first wins,
    and this one reads on from where that one left the cursor).

    Events that make no delivery (most of them: `job.queued`, `job.started`...) are read
    and passed in memory; the cursor is written for them at most every PERSIST_EVERY
    seconds, so a busy daemon's feed does not cost a write transaction per look. A
    dispatcher that dies before it wrote the cursor leaves those events to be read
    again, which makes no delivery again."""

    PERSIST_EVERY = 1.0

    def __init__(self) -> None:
        self.position: int | None = None  # the last event read (None: read the cursor)
        self.stored: int | None = None  # the cursor as this dispatcher last wrote or read it
        self.stored_at = 0.0

    def expand(
        self, store: Store, config: WebhooksConfig, now: float, batch: int = EXPAND_BATCH
    ) -> int:
        """Up to `batch` new events read; returns how many (`batch`: there may be more;
        0: none new, or another dispatcher moved the cursor and they are read again
        from there)."""
        if self.position is None or self.stored is None:
            self.stored = self.position = store.webhook_cursor()
        wanted = sorted({t for e in config.endpoints for t in e.events} | set(FINAL_EVENTS))
        events, upto = store.webhook_events(self.position, wanted, batch)
        if upto == self.position:
            return 0
        deliveries = deliveries_of(store, config, events)
        if deliveries or now - self.stored_at >= self.PERSIST_EVERY:
            if not store.webhook_enqueue(self.stored, upto, deliveries, now):
                self.position = self.stored = None
                return 0
            self.stored, self.stored_at = upto, now
        self.position = upto
        return batch if len(events) == batch else len(events)


def deliveries_of(
    store: Store,
    config: WebhooksConfig,
    events: list[tuple[Event, str | None, str | None]],
) -> list[DeliveryInsert]:
    """The deliveries `events` (each with its job's queue and callback) make. Only a job
    that gets one is read whole, for the body."""
    jobs: dict[int, Job | None] = {}
    deliveries = []
    for event, queue, callback in events:
        if queue is None:  # the job is gone (pruned): there is no record left to send
            continue
        urls = targets(config, event.type, queue, callback)
        if not urls:
            continue
        if event.job_id not in jobs:
            jobs[event.job_id] = store.job_get(event.job_id)
        job = jobs[event.job_id]
        if job is None:
            continue
        # The record as it is now, a moment after the event: fixed here, so every
        # attempt (and a redelivery) sends the same body.
        body = payload(event.type, iso(event.at) or "", job.to_dict()).decode()
        deliveries += [
            DeliveryInsert(new_msg_id(), event.seq, event.job_id, url, event.type, body)
            for url in urls
        ]
    return deliveries


class Next:
    """What follows an attempt: the delivery's state, when to try again (pending), and
    the reason to disable its URL (a 410)."""

    __slots__ = ("state", "next_at", "disable")

    def __init__(self, state: str, next_at: float | None = None, disable: str | None = None):
        self.state, self.next_at, self.disable = state, next_at, disable


def after_attempt(
    delivery: Delivery,
    attempt: Attempt,
    schedule: list[float],
    now: float,
    rng: random.Random,
) -> Next:
    """2xx: delivered. 410: failed, and the URL disabled until `webhooks enable`. Refused
    by the address guard: failed at once (it would be refused again; fix the config and
    redeliver). Anything else: pending again after the schedule's next delay (a
    Retry-After, if longer, wins), or failed once the schedule is used up."""
    from jobrunner.webhooks.send import next_delay

    if attempt.outcome == "delivered":
        return Next("delivered")
    if attempt.outcome == "gone":
        return Next("failed", disable=f"410 Gone from a delivery of job {delivery.job_id}")
    if attempt.outcome == "refused":
        return Next("failed")
    delay = next_delay(schedule, delivery.attempts + 1, attempt.retry_after, rng)
    if delay is None:
        return Next("failed")
    return Next("pending", now + delay)
