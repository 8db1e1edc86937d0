"""One attempt of one delivery: vet the address, POST the signed body to it, read what
came back (docs/architecture.md, "Webhooks"); and the retry schedule's delays."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from email.utils import parsedate_to_datetime

from jobrunner.webhooks.guard import Refused, Unresolved, default_resolve, vet

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    import httpx

KEEP_BODY = 2048  # bytes of an answer kept per attempt
RETRY_AFTER_STATUSES = (429, 502, 503, 504)
MAX_DELAY = 86400.0  # a Retry-After is honoured up to a day
JITTER = 0.2  # each delay is the schedule's step, plus or minus 20%


class Attempt:
    """How an attempt went. `outcome`: delivered (2xx), gone (410), refused (the address
    guard; nothing was sent), failed (any other answer, a timeout, no connection)."""

    __slots__ = ("outcome", "status", "body", "error", "retry_after", "duration")

    def __init__(
        self,
        outcome: str,
        status: int | None = None,
        body: str = "",
        error: str | None = None,
        retry_after: float | None = None,
        duration: float = 0.0,
    ) -> None:
        self.outcome, self.status, self.body, self.error = outcome, status, body, error
        self.retry_after, self.duration = retry_after, duration

    def __repr__(self) -> str:
        return f"Attempt({self.outcome!r}, {self.status!r}, error={self.error!r})"


class Clients:
    """One httpx client per host name. The connection goes to a vetted address, so the
    pool's key is that address: a client shared across names could send a request for
    b.example over a TLS connection made (and its certificate checked) for a.example at
    the same address. Bounded: the least recently used is closed past `most`."""

    def __init__(self, most: int = 64) -> None:
        self.most = most
        self.clients: dict[str, httpx.AsyncClient] = {}

    def get(self, host: str) -> httpx.AsyncClient:
        import httpx

        client = self.clients.pop(host, None)
        if client is None:
            # No redirects (a 3xx is a failure), no proxies from the environment (the
            # guard vets where the connection goes).
            client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self.clients[host] = client  # the most recently used last
        while len(self.clients) > self.most:
            oldest = next(iter(self.clients))
            stale = self.clients.pop(oldest)
            task = asyncio.ensure_future(stale.aclose())
            task.add_done_callback(lambda t: t.exception())
        return client

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()


async def send(
    client: httpx.AsyncClient | Clients,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    allow_private: bool,
    now: datetime,
    resolve: Callable[[str, int], list[str]] = default_resolve,
) -> Attempt:
    """POST `body` to `url` once. The name is resolved here, once (in a thread: a slow
    DNS server must not stall the other deliveries); the connection goes to the vetted
    address, with the URL's host in the Host header and as the TLS name, so a second
    lookup cannot send it elsewhere. Redirects are not followed."""
    import httpx

    started = time.monotonic()
    try:
        if _literal_host(url):  # an address: nothing to resolve, no thread needed
            target = vet(url, allow_private=allow_private, resolve=resolve)
        else:
            target = await asyncio.to_thread(vet, url, allow_private=allow_private, resolve=resolve)
    except Unresolved as exc:  # tried again later: DNS may be back
        return Attempt("failed", error=str(exc), duration=time.monotonic() - started)
    except Refused as exc:
        return Attempt("refused", error=str(exc), duration=time.monotonic() - started)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    if isinstance(client, Clients):
        client = client.get(target.host)
    request = client.build_request(
        "POST",
        target.connect_url(),
        content=body,
        headers={**headers, "host": target.host_header()},
        timeout=httpx.Timeout(timeout),
        extensions=extensions,
    )
    try:
        async with asyncio.timeout(timeout):
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                kept = await _first_bytes(response, KEEP_BODY)
            finally:
                await response.aclose()
                client.cookies.clear()  # a receiver's cookies go nowhere, not even back
    except (TimeoutError, httpx.TimeoutException):
        return Attempt(
            "failed", error=f"timed out after {timeout:g}s", duration=time.monotonic() - started
        )
    except httpx.HTTPError as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Attempt(
            "failed", error=f"{type(exc).__name__}: {why}", duration=time.monotonic() - started
        )
    duration = time.monotonic() - started
    status = response.status_code
    text = kept.decode(errors="replace")
    if 200 <= status < 300:
        return Attempt("delivered", status, text, duration=duration)
    if status == 410:
        return Attempt("gone", status, text, "HTTP 410 Gone", duration=duration)
    if 300 <= status < 400:
        where = response.headers.get("location", "?")[:200]
        error = f"HTTP {status}: redirect to {where} not followed"
        return Attempt("failed", status, text, error, duration=duration)
    retry_after = None
    if status in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    return Attempt("failed", status, text, f"HTTP {status}", retry_after, duration)


def _literal_host(url: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    try:
        ipaddress.ip_address((urlsplit(url).hostname or "").split("%")[0])
    except ValueError:
        return False
    return True


async def _first_bytes(response: httpx.Response, limit: int) -> bytes:
    """Up to `limit` bytes of the body; the rest is never read (a huge or endless answer
    costs nothing)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After: delta-seconds or an HTTP-date; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_DELAY)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max((when - now).total_seconds(), 0.0), MAX_DELAY)


def retry_delay(schedule: list[float], failures: int, rng: random.Random) -> float | None:
    """The delay after `failures` failed attempts (1: the first step), with jitter; None
    once the schedule is used up (len(schedule) retries after the first attempt)."""
    if failures < 1 or failures > len(schedule):
        return None
    step = schedule[failures - 1]
    return max(0.0, step * (1 + rng.uniform(-JITTER, JITTER)))


def next_delay(
    schedule: list[float], failures: int, retry_after: float | None, rng: random.Random
) -> float | None:
    """`retry_delay`, or the receiver's Retry-After when that is longer (up to a day)."""
    delay = retry_delay(schedule, failures, rng)
    if delay is None:
        return None
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_DELAY))
    return delay
