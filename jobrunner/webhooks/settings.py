"""The [webhooks] table of the config: the signing secret, the retry schedule and the
endpoints that receive job events (docs/webhooks.md)."""

from __future__ import annotations

import base64
import binascii
import os
from urllib.parse import urlsplit

from jobrunner.errors import ConfigError
from jobrunner.record import Record, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The final events: what an endpoint gets unless it names others, and what a job's own
# --callback URL gets.
FINAL_EVENTS = ("job.succeeded", "job.dead", "job.cancelled")
EVENTS = (
    "job.blocked",
    "job.queued",
    "job.scheduled",
    "job.started",
    "job.retrying",
    "job.rescued",
    *FINAL_EVENTS,
)
DEFAULT_RETRY_SCHEDULE = [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
DEFAULT_TIMEOUT = 15.0
DEFAULT_PER_ENDPOINT = 4  # concurrent deliveries to one URL, per dispatcher
MAX_URL = 2048
WEBHOOKS_KEYS = frozenset(
    {
        "secret",
        "secret_env",
        "allow_private",
        "retry_schedule",
        "timeout",
        "concurrency",
        "endpoints",
    }
)
ENDPOINT_KEYS = frozenset({"url", "events", "queues"})


class EndpointConfig(Record):
    url: str
    events: tuple[str, ...] = FINAL_EVENTS
    queues: list[str] | None = None  # None: every queue

    def wants(self, event_type: str, queue: str) -> bool:
        return event_type in self.events and (self.queues is None or queue in self.queues)


class WebhooksConfig(Record):
    secret: str | None = None  # never logged, never shown
    secret_env: str | None = None  # or the name of an environment variable holding it
    allow_private: bool = False
    retry_schedule: list[float] = field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_PER_ENDPOINT
    endpoints: list[EndpointConfig] = field(default_factory=list)

    def key(self) -> bytes:
        """The signing key; ConfigError (naming where, never the value) when it is
        missing or malformed."""
        if self.secret is not None:
            return secret_key(self.secret, "[webhooks] secret")
        assert self.secret_env is not None  # parse_webhooks requires one of the two
        value = os.environ.get(self.secret_env)
        if not value:
            raise ConfigError(
                f"[webhooks] secret_env: the environment variable {self.secret_env} is not set"
            )
        return secret_key(value, f"the environment variable {self.secret_env}")


def secret_key(secret: str, where: str) -> bytes:
    """The key of a `whsec_<base64>` secret (Standard Webhooks); errors never show it."""
    if not secret.startswith("whsec_"):
        raise ConfigError(f"{where}: expected a secret like whsec_<base64>")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: the part after whsec_ is not base64") from None
    if len(key) < 16:
        raise ConfigError(f"{where}: the key is {len(key)} bytes; use at least 16 (24 or 32)")
    return key


def url_problem(url: object) -> str | None:
    """Why `url` cannot be a webhook target, or None. Syntax only: where it resolves to
    is checked at each attempt (webhooks/guard.py)."""
    if not isinstance(url, str) or not url:
        return "expected an http:// or https:// URL"
    if len(url) > MAX_URL:
        return f"longer than {MAX_URL} characters"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "holds whitespace or a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"expected an http:// or https:// URL, got {url!r}"
    if not parts.hostname:
        return f"no host in {url!r}"
    if parts.username is not None or parts.password is not None:
        return "must not hold a user or password (user:pass@); sign, don't embed credentials"
    return None


def parse_webhooks(r: Any, data: dict[str, Any]) -> WebhooksConfig:
    """The [webhooks] table, checked with the config reader `r` (errors carry file:line)."""
    r.unknown_keys("webhooks", data, WEBHOOKS_KEYS)
    cfg = WebhooksConfig(
        secret=r.string("webhooks", data, "secret", None),
        secret_env=r.string("webhooks", data, "secret_env", None),
        timeout=r.duration("webhooks", data, "timeout", DEFAULT_TIMEOUT),
        concurrency=r.integer("webhooks", data, "concurrency", DEFAULT_PER_ENDPOINT, 1),
    )
    if (cfg.secret is None) == (cfg.secret_env is None):
        raise r.fail("webhooks", None, "give exactly one of secret or secret_env")
    if cfg.secret is not None:
        try:
            secret_key(cfg.secret, "value")
        except ConfigError as exc:
            raise r.fail("webhooks", "secret", str(exc).removeprefix("value: ")) from None
    allow = data.get("allow_private", False)
    if not isinstance(allow, bool):
        raise r.fail("webhooks", "allow_private", f"expected true or false, got {allow!r}")
    cfg.allow_private = allow
    if not 0 < cfg.timeout <= 300:
        raise r.fail("webhooks", "timeout", "must be more than 0s and at most 5m")
    if "retry_schedule" in data:
        steps = data["retry_schedule"]
        if not isinstance(steps, list):
            raise r.fail("webhooks", "retry_schedule", 'expected a list like ["5s", "5m"]')
        cfg.retry_schedule = [
            r.duration("webhooks", {"retry_schedule": step}, "retry_schedule", None)
            for step in steps
        ]
        if len(cfg.retry_schedule) > 50:
            raise r.fail("webhooks", "retry_schedule", "at most 50 retries")
    endpoints = data.get("endpoints", [])
    if not isinstance(endpoints, list):
        raise r.fail("webhooks", "endpoints", "expected [[webhooks.endpoints]] tables")
    seen: set[str] = set()
    for index, entry in enumerate(endpoints):
        endpoint = _parse_endpoint(r, index, entry)
        if endpoint.url in seen:
            raise r.fail(f"webhooks.endpoints[{index}]", "url", "named twice")
        seen.add(endpoint.url)
        cfg.endpoints.append(endpoint)
    return cfg


def _parse_endpoint(r: Any, index: int, entry: Any) -> EndpointConfig:
    table = f"webhooks.endpoints[{index}]"
    if not isinstance(entry, dict):
        raise r.fail("webhooks", "endpoints", "expected [[webhooks.endpoints]] tables")
    r.unknown_keys(table, entry, ENDPOINT_KEYS)
    if "url" not in entry:
        raise r.fail(table, None, "every endpoint needs a url")
    url = entry["url"]
    problem = url_problem(url)
    if problem:
        raise r.fail(table, "url", problem)
    events = r.string_list(table, entry, "events")
    if events == []:
        raise r.fail(table, "events", "an empty list sends nothing")
    for event in events or ():
        if event not in EVENTS:
            raise r.fail(table, "events", f"unknown event {event!r}; known: {', '.join(EVENTS)}")
    return EndpointConfig(
        url=str(url),
        events=tuple(events) if events is not None else FINAL_EVENTS,
        queues=r.string_list(table, entry, "queues"),
    )
