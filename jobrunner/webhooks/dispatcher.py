"""The webhook dispatcher: turns the event feed's final events into deliveries and sends
them, signed, with retries (docs/architecture.md, "Webhooks").

It runs as a child of `jobrunner daemon` when the config has [webhooks]
(daemon/children.py), or in the foreground as `jobrunner webhooks dispatch`. Every
dispatcher of a database takes deliveries with a lease, so each is sent by one at a time,
and one that dies leaves its deliveries to the others when their leases run out.

One event loop sends (httpx); every store call goes to one thread with the dispatcher's
connection; another thread sleeps on the feed (a commit wakes the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from jobrunner import clock as clocks
from jobrunner.errors import StoreUnavailable
from jobrunner.models import Delivery, DeliveryAttempt, shown_url
from jobrunner.webhooks.outbox import EXPAND_BATCH, Expander, after_attempt
from jobrunner.webhooks.signing import signed_headers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from jobrunner.clock import Clock
    from jobrunner.store.base import Store
    from jobrunner.webhooks.send import Clients
    from jobrunner.webhooks.settings import WebhooksConfig

log = logging.getLogger("jobrunner.webhooks")

MAX_IN_FLIGHT = 64  # deliveries sent at once by one dispatcher, over every URL
LEASE_MARGIN = 5.0  # a claim lasts the timeout plus this: room to record the answer
IDLE_WAIT = 5.0  # the longest sleep with nothing due (a commit wakes it sooner)
STOP_GRACE = 5.0  # at a stop, how long sends under way may finish
WAKE_EVERY = 0.01  # the feed wakes the loop at most this often (seconds)
RECHECK = 0.1  # seconds before another look when a due delivery was taken by another


class Dispatcher:
    def __init__(
        self,
        store: Store,
        config: WebhooksConfig,
        *,
        owner: str | None = None,
        clock: Clock = clocks.SYSTEM,
        rng: random.Random | None = None,
        resolve: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.key = config.key()  # ConfigError now, not at the first delivery
        self.owner = owner or f"webhooks@{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.rng = rng or random.Random()
        self.resolve = resolve  # the address guard's resolver (tests give their own)
        self.lease = config.timeout + LEASE_MARGIN
        self.per_url: Counter[str] = Counter()  # deliveries in flight, by URL
        self.tasks: set[asyncio.Task[None]] = set()
        self.db = ThreadPoolExecutor(1, thread_name_prefix="webhooks-store")
        self.wake = asyncio.Event()
        self.feed_moved = True  # set by the feed watch at each commit (and to start)
        self.expander = Expander()
        self.ends: list[tuple[tuple[Any, ...], asyncio.Future[bool]]] = []
        self.writer: asyncio.Task[None] | None = None

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A store call, on the store's thread."""
        return await asyncio.get_running_loop().run_in_executor(self.db, fn, *args)

    async def run(self, stop: asyncio.Event, client: Clients) -> None:
        """Expand, claim and send until `stop` is set; then let sends under way finish
        for up to STOP_GRACE (what is cut off is sent again after its lease)."""
        while not stop.is_set():
            self.wake.clear()
            try:
                due = await self.step(client)
            except StoreUnavailable as exc:
                log.warning("%s; trying again in 1s", exc)
                due = self.clock.now() + 1
            timeout = IDLE_WAIT if due is None else min(IDLE_WAIT, due - self.clock.now())
            if timeout > 0:
                await _first(stop.wait(), self.wake.wait(), timeout=max(timeout, 0.01))
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=STOP_GRACE)
            for task in self.tasks:
                task.cancel()

    async def step(self, client: Clients) -> float | None:
        """One round: every new event expanded, then as many due deliveries started as
        there is room for, at most `concurrency` in flight per URL (a slow receiver
        holds back only its own). Returns when to look again (None: at a wake-up)."""
        if self.feed_moved:  # a commit since the last look: maybe new events
            self.feed_moved = False
            while (
                await self.call(self.expander.expand, self.store, self.config, self.clock.now())
                == EXPAND_BATCH
            ):
                pass
        # A read first: a claim is a write, and a daemon busy with jobs should not wait
        # for the write lock on a dispatcher that has nothing due.
        due: float | None = await self.call(self.store.webhook_next_due)
        free = MAX_IN_FLIGHT - len(self.tasks)
        if due is None or due > self.clock.now():
            return due
        if free <= 0:
            return None  # full: a send that ends wakes the loop
        bound = self.config.concurrency
        room = {url: bound - n for url, n in self.per_url.items()}
        claimed: list[Delivery] = await self.call(
            self.store.webhook_claim, self.owner, self.clock.now(), self.lease, free, bound, room
        )
        for delivery in claimed:
            self.per_url[delivery.url] += 1
            task = asyncio.create_task(self.deliver(client, delivery))
            self.tasks.add(task)
            task.add_done_callback(self._done)
        if claimed or self.tasks:
            return None  # sends under way wake the loop as they end
        # Due, yet nothing taken: another dispatcher was first. Look again shortly.
        return self.clock.now() + RECHECK

    def feed_commit(self) -> None:
        """The feed watch saw a commit (in the loop's thread)."""
        self.feed_moved = True
        self.wake.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.wake.set()  # room for another
        if not task.cancelled() and task.exception() is not None:
            log.error("a delivery failed unexpectedly: %r", task.exception())

    async def deliver(self, client: Clients, delivery: Delivery) -> None:
        """One attempt of `delivery`, and what follows it, recorded."""
        from jobrunner.webhooks.send import send

        try:
            started = self.clock.now()
            body = delivery.payload.encode()
            headers = signed_headers(self.key, delivery.msg_id, int(started), body)
            options: dict[str, Any] = {"resolve": self.resolve} if self.resolve else {}
            attempt = await send(
                client,
                delivery.url,
                body,
                headers,
                timeout=self.config.timeout,
                allow_private=self.config.allow_private,
                now=datetime.fromtimestamp(started, UTC),
                **options,
            )
        finally:
            self.per_url[delivery.url] -= 1
            if self.per_url[delivery.url] <= 0:
                del self.per_url[delivery.url]
            self.wake.set()  # its URL has room: the next may go while this one is recorded
        now = self.clock.now()
        following = after_attempt(delivery, attempt, self.config.retry_schedule, now, self.rng)
        record = DeliveryAttempt(
            delivery.id,
            started,
            attempt.outcome,
            attempt.status,
            attempt.body,
            attempt.error,
            attempt.duration,
        )
        kept = await self.record((record, following.state, following.next_at, following.disable))
        _log_attempt(delivery, attempt, following, now, kept)

    async def record(self, end: tuple[Any, ...]) -> bool:
        """Record an attempt's end; ends that come while a transaction commits are
        written together in the next (a group commit: one transaction for many)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.ends.append((end, done))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write_ends())
        return await done

    async def _write_ends(self) -> None:
        while self.ends:
            batch, self.ends = self.ends, []
            try:
                kept = await self.call(
                    self.store.webhook_attempt_end, self.owner, [end for end, _ in batch]
                )
            except Exception as exc:  # noqa: BLE001 - each waiting delivery gets it
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for (_, done), ok in zip(batch, kept, strict=True):
                done.set_result(ok)

    def close(self) -> None:
        self.db.shutdown(wait=True)


def _log_attempt(delivery: Delivery, attempt: Any, following: Any, now: float, kept: bool) -> None:
    what = (
        f"delivery {delivery.id} (job {delivery.job_id}, {delivery.event_type}) "
        f"to {shown_url(delivery.url)}"
    )
    answer = f"HTTP {attempt.status}" if attempt.status is not None else attempt.error
    if not kept:
        log.warning("%s: %s, but its lease ran out; another dispatcher has it", what, answer)
    elif following.state == "delivered":
        # (not logged: a line per success would cost more than the delivery; `webhooks
        # deliveries` shows them)
        log.debug("%s: delivered (%s, %.3fs)", what, answer, attempt.duration)
    elif following.state == "pending":
        log.warning(
            "%s: %s; attempt %d, again in %.0fs",
            what,
            attempt.error or answer,
            delivery.attempts + 1,
            following.next_at - now,
        )
    else:
        why = {"gone": "410 Gone: the URL is disabled until `jobrunner webhooks enable`"}.get(
            attempt.outcome, attempt.error or answer
        )
        log.error("%s: failed after %d attempt(s): %s", what, delivery.attempts + 1, why)


async def _first(*waits: Any, timeout: float) -> None:
    """Return when the first of `waits` is done, or after `timeout`."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _watch_feed(
    path: str, wake: Callable[[], None], stopped: threading.Event, listen: bool
) -> None:
    """Sleep on the feed with a connection of its own; wake the loop at each commit, at
    most every WAKE_EVERY: a daemon busy with jobs commits hundreds of times a second,
    and a wake-up for each would take a core's share from the jobs (the commits that
    come meanwhile are read in one go)."""
    from jobrunner.store import open_store

    with (
        contextlib.closing(open_store(path, listen=listen)) as store,
        store.events_watch() as watch,
    ):
        while not stopped.is_set():
            watch.wait(1.0)
            wake()
            time.sleep(WAKE_EVERY)


def run_dispatcher(db_path: str, config: WebhooksConfig, listen: bool = True) -> int:
    """`jobrunner webhooks dispatch`: deliver until SIGTERM or SIGINT."""
    from jobrunner.store import open_store
    from jobrunner.webhooks.send import Clients

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # httpx logs each request at INFO, URL and all: a line per delivery in the daemon's
    # log, and a callback's query string may hold a token (invariant 11).
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    store = open_store(db_path, listen=listen)
    dispatcher = Dispatcher(store, config)
    stopped = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        dispatcher.wake = asyncio.Event()
        watcher = threading.Thread(
            target=_watch_feed,
            args=(
                db_path,
                lambda: loop.call_soon_threadsafe(dispatcher.feed_commit),
                stopped,
                listen,
            ),
            daemon=True,
        )
        watcher.start()
        clients = Clients()  # one per host name (webhooks/send.py)
        try:
            await dispatcher.run(stop, clients)
        finally:
            await clients.aclose()
        stopped.set()

    log.info(
        "started as %s: %d endpoint(s)%s",
        dispatcher.owner,
        len(config.endpoints),
        ", private addresses allowed" if config.allow_private else "",
    )
    try:
        asyncio.run(main())
    finally:
        dispatcher.close()
        store.close()
    return 0
