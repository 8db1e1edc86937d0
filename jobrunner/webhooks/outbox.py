"""What the dispatcher decides, apart from sending: which deliveries the feed's events
make (`expand`), and what follows an attempt (`after_attempt`). Both take `now`; the
store applies the decisions (docs/architecture.md, "Webhooks")."""

from __future__ import annotations

import secrets

from jobrunner.models import DeliveryInsert, iso
from jobrunner.webhooks.settings import FINAL_EVENTS
from jobrunner.webhooks.signing import payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random

    from jobrunner.models import Delivery, Job
    from jobrunner.store.base import Store
    from jobrunner.webhooks.send import Attempt
    from jobrunner.webhooks.settings import WebhooksConfig

EXPAND_BATCH = 500  # events read per transaction


def new_msg_id() -> str:
    """A webhook-id: unique across databases too (a receiver that deduplicates on it
    must never drop a delivery because an older database once used the same number)."""
    return "msg_" + secrets.token_urlsafe(18)


def targets(config: WebhooksConfig, event_type: str, job: Job) -> list[str]:
    """The URLs that get `event_type` of `job`: each endpoint that subscribes to it
    (and to the job's queue), and the job's own callback for its final event."""
    urls = [e.url for e in config.endpoints if e.wants(event_type, job.queue)]
    callback = job.options.get("callback")
    if callback and event_type in FINAL_EVENTS and callback not in urls:
        urls.append(str(callback))
    return urls


def expand(store: Store, config: WebhooksConfig, now: float, batch: int = EXPAND_BATCH) -> int:
    """Turn the events after the cursor into deliveries, up to `batch` of them, moving
    the cursor past them in the same transaction. Returns how many events were read (0:
    none new, or another dispatcher took them first; `batch`: there may be more)."""
    after = store.webhook_cursor()
    events = store.events_after(after, None, batch)
    if not events:
        return 0
    wanted = {t for e in config.endpoints for t in e.events} | set(FINAL_EVENTS)
    jobs: dict[int, Job | None] = {}
    deliveries = []
    for event in events:
        if event.type not in wanted:
            continue
        if event.job_id not in jobs:
            jobs[event.job_id] = store.job_get(event.job_id)
        job = jobs[event.job_id]
        if job is None:  # pruned already: there is no record left to send
            continue
        urls = targets(config, event.type, job)
        if not urls:
            continue
        # The record as it is now, a moment after the event: fixed here, so every
        # attempt (and a redelivery) sends the same body.
        body = payload(event.type, iso(event.at) or "", job.to_dict()).decode()
        deliveries += [
            DeliveryInsert(new_msg_id(), event.seq, event.job_id, url, event.type, body)
            for url in urls
        ]
    if not store.webhook_enqueue(after, events[-1].seq, deliveries, now):
        return 0
    return len(events)


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
