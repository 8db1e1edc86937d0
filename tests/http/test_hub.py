"""The feed hub when the database is away as the server starts (it went between the
server's check and the app's start): the server does not die; a live reader is told to
try again; once the database can be reached the hub connects and hands out what is
committed from then on. A real SQLite store, reached on the third try."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from jobrunner.errors import StoreUnavailable
from jobrunner.http.hub import KEEPALIVE, FeedHub
from jobrunner.models import JobInsert
from jobrunner.store import open_store
from jobrunner.store.base import Store


def test_a_database_away_at_the_start_is_connected_to_later(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    open_store(path).close()
    tries: list[float] = []

    def flaky() -> Store:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise StoreUnavailable(f"{path}: cannot reach the database; try again")
        return open_store(path, create=False)

    async def scenario() -> list[str]:
        hub = FeedHub(flaky)
        hub.start()  # does not raise
        try:
            with pytest.raises(StoreUnavailable, match="try again"):
                hub.subscribe()
            deadline = time.monotonic() + 20
            while not hub.ready:
                assert time.monotonic() < deadline, "the hub never connected"
                await asyncio.sleep(0.05)
            with hub.subscribe() as sub:
                writer = open_store(path)
                writer.job_insert_many([JobInsert(task="a:b")], time.time())
                writer.close()
                while True:
                    item = await asyncio.wait_for(sub.get(), 20)
                    if item is not KEEPALIVE:
                        assert isinstance(item, list)
                        return [e.type for e in item]
        finally:
            hub.stop()

    assert asyncio.run(scenario()) == ["job.queued"]
    assert len(tries) == 3
