"""What the app holds: the config, the database's path, the token, and one store per
worker thread for the blocking store calls (apsw releases the GIL while SQLite works).

Endpoints are async; every store call goes through `read` or `write`, which run it in
a thread with that thread's own connection (a connection is never shared between
threads that use it at once)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

from jobrunner.client import Client
from jobrunner.config import Config
from jobrunner.http.hub import FeedHub
from jobrunner.store import open_store
from jobrunner.store.base import Store

T = TypeVar("T")


class ServerState:
    def __init__(self, config: Config, db_path: str, token: str | None) -> None:
        self.config = config
        self.db_path = db_path
        self.token = token
        self.client = Client(db_path, config)  # prepare() only: checks and defaults
        self._local = threading.local()
        self._opened: list[Store] = []
        self._lock = threading.Lock()
        from jobrunner.http.commit import GroupCommit

        self.group_commit = GroupCommit(self)  # POST /jobs: concurrent submits, one commit
        # the one reader of the event feed (started and stopped by the app's lifespan)
        self.hub = FeedHub(
            lambda: open_store(
                db_path,
                create=False,
                synchronous=config.synchronous,
                listen=config.postgres.listen,
            )
        )

    def store(self) -> Store:
        """This thread's store (opened on first use)."""
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = open_store(
                self.db_path,
                create=False,
                synchronous=self.config.synchronous,
                listen=self.config.postgres.listen,
            )
            self._local.store = store
            with self._lock:
                self._opened.append(store)
        return store

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(store, *args)` in a worker thread."""
        return await anyio.to_thread.run_sync(lambda: fn(self.store(), *args))

    def read_now(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(store, *args)` on the calling thread (the event loop's): for a read of one
        row by its key, tens of microseconds, less than the hop to a worker thread would
        cost. A WAL reader never waits for writers, so the loop is not held behind them."""
        return fn(self.store(), *args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(store, *args)` in a worker thread; a transaction of its own."""
        return await anyio.to_thread.run_sync(lambda: fn(self.store(), *args))

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for store in opened:
            store.close()


def server_of(conn: Any) -> ServerState:
    """The state of the app a request (or WebSocket) reached (app.py sets it)."""
    state: ServerState = conn.app.state.server
    return state
