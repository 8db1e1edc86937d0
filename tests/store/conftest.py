"""Fixtures for the store conformance suite: one `store` per backend.

To add a backend (PostgreSQL), add its name to BACKENDS and a branch to `_location`
that returns a fresh, empty database for the test; every test in test_conformance.py
then runs against it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobrunner.lifecycle import State, can_move
from jobrunner.store import open_store
from jobrunner.store.base import Store
from tests.store.pg_support import fresh_database

BACKENDS = ["sqlite", "postgresql"]


@contextlib.contextmanager
def _location(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield str(tmp_path / "jobs.db")
    elif backend == "postgresql":
        with fresh_database() as url:
            yield url
    else:
        raise AssertionError(f"no test location for backend {backend!r}")


@pytest.fixture(params=BACKENDS)
def connect(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], Store]]:
    """Open another connection to the same (initially empty) database; all closed after.

    After each test, every transition the store made (its event feed, job by job) must
    be one lifecycle.TRANSITIONS allows: the table is the truth, not a copy of it."""
    monkeypatch.setenv("JOBRUNNER_PG_LOGS", str(tmp_path / "pg-logs"))
    with _location(request.param, tmp_path) as location:
        opened: list[Store] = []

        def _connect() -> Store:
            store = open_store(location)
            opened.append(store)
            return store

        yield _connect
        try:
            if opened:
                assert_every_transition_allowed(opened[0])
        finally:
            for store in opened:
                store.close()


def assert_every_transition_allowed(store: Store) -> None:
    state: dict[int, State] = {}
    seq = 0
    while batch := store.events_after(seq, None, 1000):
        for event in batch:
            before = state.get(event.job_id)
            if before is not None and event.state is not before:
                assert can_move(before, event.state), f"{before} -> {event}"
            state[event.job_id] = event.state
        seq = batch[-1].seq


@pytest.fixture
def store(connect: Callable[[], Store]) -> Store:
    return connect()
