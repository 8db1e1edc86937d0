"""Webhook endpoints and deliveries as the CLI and the HTTP API show and work them
(docs/webhooks.md): one implementation behind `jobrunner webhooks ...` and
/webhooks/... ."""

from __future__ import annotations

from jobrunner.errors import NotFound, UsageError
from jobrunner.models import iso, shown_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from jobrunner.config import Config
    from jobrunner.models import Delivery, DeliveryAttempt
    from jobrunner.store.base import Store
    from jobrunner.webhooks.send import Attempt
    from jobrunner.webhooks.settings import WebhooksConfig

DELIVERY_STATES = ("pending", "delivered", "failed")


class BeingSent(UsageError):
    """A redelivery asked for while the delivery is being sent (409 over HTTP)."""


def webhooks_of(config: Config) -> WebhooksConfig:
    if config.webhooks is None:
        where = f" {config.path}" if config.path else ""
        raise UsageError(f"the config{where} has no [webhooks] table")
    return config.webhooks


def endpoints(config: Config, store: Store) -> list[dict[str, Any]]:
    """The configured endpoints, each enabled or disabled (by a 410, and when), and any
    other URL a 410 disabled (a job's --callback). The secret is never among them."""
    disabled = {d.url: d for d in store.webhook_disabled()}
    rows = []
    configured = config.webhooks.endpoints if config.webhooks is not None else []
    for endpoint in configured:
        off = disabled.pop(endpoint.url, None)
        rows.append(
            {
                "url": shown_url(endpoint.url),
                "events": list(endpoint.events),
                "queues": endpoint.queues,
                "enabled": off is None,
                "disabled_at": iso(off.disabled_at) if off else None,
                "reason": off.reason if off else None,
            }
        )
    for off in disabled.values():
        rows.append(
            {
                "url": shown_url(off.url),
                "events": None,  # a job's callback: its final event
                "queues": None,
                "enabled": False,
                "disabled_at": iso(off.disabled_at),
                "reason": off.reason,
            }
        )
    return rows


def deliveries(
    store: Store,
    job_id: int | None = None,
    state: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[Delivery]:
    if state is not None and state not in DELIVERY_STATES:
        raise UsageError(f"state: expected one of {', '.join(DELIVERY_STATES)}, got {state!r}")
    return store.webhook_deliveries(job_id, state, limit, before)


def delivery(store: Store, delivery_id: int) -> tuple[Delivery, list[DeliveryAttempt]]:
    found = store.webhook_delivery(delivery_id)
    if found is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return found, store.webhook_attempts(delivery_id)


def redeliver(store: Store, delivery_id: int, now: float) -> Delivery:
    """Send a delivery again, from the first step of the retry schedule, with the same
    webhook-id (a receiver that saw it already can tell)."""
    if store.webhook_redeliver(delivery_id, now):
        found, _ = delivery(store, delivery_id)
        return found  # (a dispatcher wakes at the commit: it sleeps on the feed)
    found, _ = delivery(store, delivery_id)  # NotFound when there is none
    raise BeingSent(f"delivery {delivery_id} is being sent right now; try again when it ends")


def enable(config: Config, store: Store, url: str) -> bool:
    """Re-enable a URL a 410 disabled. False: it was not disabled. A URL that is
    neither configured nor disabled is an error (a typo, most likely)."""
    if store.webhook_enable(url):
        return True
    known = {e.url for e in (config.webhooks.endpoints if config.webhooks else [])}
    if url in known:
        return False
    raise NotFound(f"{url}: not a [[webhooks.endpoints]] url and not disabled")


def delivery_dict(found: Delivery, attempts: list[DeliveryAttempt] | None = None) -> dict:
    out = found.to_dict()
    out["url"] = shown_url(found.url)
    if attempts is not None:
        out["attempt_history"] = [a.to_dict() for a in attempts]
    return out


async def send_test(
    config: Config,
    url: str,
    now: float,
    resolve: Callable[[str, int], list[str]] | None = None,
) -> Attempt:
    """POST a signed `webhook.test` event to `url` now, through the address guard, as a
    delivery would go; nothing is stored."""
    from jobrunner.webhooks.outbox import new_msg_id
    from jobrunner.webhooks.send import Clients, send
    from jobrunner.webhooks.settings import url_problem
    from jobrunner.webhooks.signing import payload, signed_headers

    settings = webhooks_of(config)
    problem = url_problem(url)
    if problem:
        raise UsageError(f"{url}: {problem}")
    body = payload("webhook.test", iso(now) or "", {"message": "a test from jobrunner"})
    headers = signed_headers(settings.key(), new_msg_id(), int(now), body)
    from datetime import UTC, datetime

    options: dict[str, Any] = {"resolve": resolve} if resolve else {}
    clients = Clients()
    try:
        return await send(
            clients,
            url,
            body,
            headers,
            timeout=settings.timeout,
            allow_private=settings.allow_private,
            now=datetime.fromtimestamp(now, UTC),
            **options,
        )
    finally:
        await clients.aclose()
