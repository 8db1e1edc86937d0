"""The feed hub: one thread per server sleeps on the store's feed watch and, when
something is committed, reads the new events once and hands them to every subscriber on
the event loop (docs/architecture.md, "Events").

A subscriber is an entry in a set and a deque: 500 idle /events clients cost no thread,
no timer and no query. Keep-alive comes from one timer for all of them.

The hand-over is gap-free: a subscription receives every event after `start` (the last
seq handed out when it was made), in order, as batches. A reader that must also see what
came before (a resume, a job's history) subscribes first, then reads the store from its
own point on, and drops from the batches what it has already seen (seq <= its last).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from jobrunner.errors import StoreUnavailable
from jobrunner.models import Event
from jobrunner.store.base import FeedWatch, Store

BATCH = 1000  # events read at a time
MAX_PENDING = 1000  # batches a subscriber may fall behind before it is told LAGGED
KEEPALIVE_ENV = "JOBRUNNER_SSE_KEEPALIVE"
DEFAULT_KEEPALIVE = 15.0  # seconds between keep-alives (proxies close idle streams)
QUEUE_CACHE = 100_000  # job ids whose queue is remembered (for ?queue= filters)
RETRY_AFTER_ERROR = 1.0  # seconds before the hub reads again after the store failed


class Marker(str):
    """What a subscription yields besides a batch of events."""


KEEPALIVE = Marker("keepalive")  # the keep-alive period passed: say something
LAGGED = Marker("lagged")  # batches were dropped: read the store from your last seq
CLOSED = Marker("closed")  # the server is stopping: end the stream


def keepalive_period() -> float:
    """JOBRUNNER_SSE_KEEPALIVE (seconds; tests shorten it), else 15."""
    text = os.environ.get(KEEPALIVE_ENV)
    try:
        value = float(text) if text else DEFAULT_KEEPALIVE
    except ValueError:
        value = DEFAULT_KEEPALIVE
    return value if value > 0 else DEFAULT_KEEPALIVE


class Subscription:
    """Batches of events committed after `start`, for the event loop that made it.
    `jobs`: only batches with an event of one of these jobs (the set may grow while it
    is used; None: every batch). `keepalive`: also KEEPALIVE each period (a stream)."""

    def __init__(self, hub: FeedHub, jobs: set[int] | None, keepalive: bool) -> None:
        self.hub = hub
        self.jobs = jobs
        self.keepalive = keepalive
        self.start = hub.delivered
        self._items: deque[list[Event] | Marker] = deque()
        self._ready = asyncio.Event()
        self._lagged = False

    def put(self, item: list[Event] | Marker) -> None:
        if isinstance(item, list) and len(self._items) >= MAX_PENDING:
            self._items.clear()  # a reader this far behind re-reads the store instead
            self._lagged = True
        self._items.append(item)
        self._ready.set()

    async def get(self, timeout: float | None = None) -> list[Event] | Marker | None:
        """The next batch (or marker); None when `timeout` seconds passed first."""
        if not self._items and not self._lagged:
            self._ready.clear()
            if timeout is None:
                await self._ready.wait()
            else:
                try:
                    await asyncio.wait_for(self._ready.wait(), timeout)
                except TimeoutError:
                    return None
        if self._lagged:
            self._lagged = False
            return LAGGED
        return self._items.popleft()

    def close(self) -> None:
        self.hub.subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FeedHub:
    """The one reader of the feed for a server. `open_store` opens a connection of its
    own (the hub's thread uses it alone)."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self.open_store = open_store
        self.subscribers: set[Subscription] = set()
        self.delivered = 0  # the last seq handed to subscribers (on the loop)
        self.keepalive = keepalive_period()
        self.queues: OrderedDict[int, str] = OrderedDict()  # job id -> queue
        self._stop = threading.Event()
        self.ready = False  # the feed's place is known: subscribers may come
        # held while a subscriber is added (reading where it starts) and while the thread,
        # with nobody subscribed, moves past events without reading them
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """On the event loop (the app's lifespan): read where the feed is, start the
        thread and the keep-alive timer. A database that cannot be reached now (gone
        since the server checked it) is the thread's to connect to, again every
        RETRY_AFTER_ERROR: the server stays up, and a live reader is told to try again
        until then (`subscribe`)."""
        self._loop = asyncio.get_running_loop()
        try:
            opened = self._open()
        except StoreUnavailable as exc:
            print(f"jobrunner serve: reading the event feed: {exc}", file=sys.stderr)
            opened = None
        self._thread = threading.Thread(
            target=self._run, args=(opened,), name="feed-hub", daemon=True
        )
        self._thread.start()
        self._tick = self._loop.call_later(self.keepalive, self._keepalive)

    def _open(self) -> tuple[Store, FeedWatch]:
        """The hub's store and feed watch, and where the feed is (then it is ready)."""
        store = self.open_store()
        try:
            watch = store.events_watch()  # before the read: no commit slips between them
            last = store.events_last_seq()
        except BaseException:
            store.close()
            raise
        with self._lock:
            self.delivered = max(self.delivered, last)
            self.ready = True
        return store, watch

    def stop(self) -> None:
        """End every subscription (CLOSED) and the thread (it notices within the watch's
        fallback period, about a second)."""
        self._stop.set()
        if self._tick is not None:
            self._tick.cancel()
        for sub in list(self.subscribers):
            sub.put(CLOSED)
        if self._thread is not None:
            self._thread.join(timeout=3)

    def subscribe(self, jobs: set[int] | None = None, keepalive: bool = False) -> Subscription:
        with self._lock:
            if not self.ready:
                raise StoreUnavailable("the event feed: the database cannot be reached; try again")
            sub = Subscription(self, jobs, keepalive)
            self.subscribers.add(sub)
        return sub

    # -- the thread ---------------------------------------------------------------------

    def _run(self, opened: tuple[Store, FeedWatch] | None) -> None:
        while opened is None:  # the database was away at the start: connect when it is back
            if self._stop.wait(RETRY_AFTER_ERROR):
                return
            try:
                opened = self._open()
            except StoreUnavailable:
                continue
            print("jobrunner serve: reading the event feed again", file=sys.stderr)
        store, watch = opened
        seq = self.delivered
        failed = False
        try:
            while not self._stop.is_set():
                try:
                    if self._skip_unwatched(store):
                        seq = max(seq, self.delivered)
                        failed = False
                        watch.wait(None)
                        continue
                    batch = store.events_after(seq, None, BATCH)
                except Exception as exc:  # the database went away: say so once, retry
                    if not failed:
                        print(f"jobrunner serve: reading the event feed: {exc}", file=sys.stderr)
                    failed = True
                    self._stop.wait(RETRY_AFTER_ERROR)
                    continue
                failed = False
                if batch:
                    seq = batch[-1].seq
                    if not self._hand_over(batch):
                        return
                    continue
                watch.wait(None)
        finally:
            with contextlib.suppress(Exception):
                watch.close()
            with contextlib.suppress(Exception):
                store.close()

    def _skip_unwatched(self, store: Store) -> bool:
        """With nobody subscribed, move past what was committed without reading it (a
        busy server commits thousands of events a second that nobody would read): only
        the newest seq is read, and a subscriber made later starts after it. Under the
        lock, so that none is added between the look and the move."""
        with self._lock:
            if self.subscribers:
                return False
            self.delivered = max(self.delivered, store.events_last_seq())
            return True

    def _hand_over(self, batch: list[Event]) -> bool:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._deliver, batch)
        except RuntimeError:  # the loop closed: the server is gone
            return False
        return True

    # -- on the loop --------------------------------------------------------------------

    def _deliver(self, batch: list[Event]) -> None:
        with self._lock:  # the thread may be moving it on too (_skip_unwatched)
            self.delivered = max(self.delivered, batch[-1].seq)
        for sub in list(self.subscribers):
            if sub.jobs is None or any(e.job_id in sub.jobs for e in batch):
                sub.put(batch)

    def _keepalive(self) -> None:
        for sub in list(self.subscribers):
            if sub.keepalive:
                sub.put(KEEPALIVE)
        assert self._loop is not None
        self._tick = self._loop.call_later(self.keepalive, self._keepalive)

    def remember_queues(self, pairs: Iterable[tuple[int, str]]) -> None:
        for job_id, queue in pairs:
            self.queues[job_id] = queue
            self.queues.move_to_end(job_id)
        while len(self.queues) > QUEUE_CACHE:
            self.queues.popitem(last=False)


async def next_commit(hub: FeedHub, timeout: float | None) -> bool:
    """For a reader that follows something else as well (a job's output): wait until the
    hub hands out new events, or `timeout` passes. True when events came."""
    with hub.subscribe() as sub:
        while True:
            item = await sub.get(timeout)
            if item is None:
                return False
            if item is not KEEPALIVE:
                return True
