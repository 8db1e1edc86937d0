"""Wake-ups on PostgreSQL: a submit NOTIFYs in its own transaction, at most once per
queue per WAKE_WINDOW from one submitter; a daemon woken so claims at once and again
WAKE_TRAIL later. A fast submitter's jobs all start at once, none waits for the
daemon's poll. Real daemon, real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner.client import Client
from jobrunner.store.pg.store import PostgresStore
from tests.helpers import Daemon, wait_for
from tests.integration.conftest import TASKS_SOURCE, ledger, write_module
from tests.store.pg_support import fresh_database


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # type: ignore[override]
    monkeypatch.setenv("JOBRUNNER_PG_LOGS", str(tmp_path / "pg-logs"))
    with fresh_database() as url:
        yield url


def test_a_burst_of_submits_from_one_process_all_start_without_waiting_for_a_poll(
    workdir: Path, db: str, daemons: list[Daemon]
) -> None:
    # a poll a minute away: a job that the wake-ups missed would wait for it
    (workdir / "jobrunner.toml").write_text('[daemon]\npoll_interval = "60s"\n')
    write_module(workdir, "jtasks", TASKS_SOURCE)
    daemons.append(Daemon(workdir, db, "--workers", "2"))  # type: ignore[arg-type]
    client = Client(db)
    store = client.store
    assert isinstance(store, PostgresStore)
    try:
        client.submit("jtasks:record", args=["first"], check=False)
        wait_for(lambda: len(ledger(workdir)) == 1, timeout=20, what="the first job")
        # back-to-back submits until one sends no NOTIFY (its queue was woken for less
        # than WAKE_WINDOW ago): the burst ends on a job only a trailing claim finds
        sent, tags = 0, []
        for i in range(500):
            before = store.wakes.sent.get("default")
            client.submit("jtasks:record", args=[f"b{i}"], check=False)
            tags.append(f"b{i}")
            if store.wakes.sent.get("default") == before:
                break
            sent += 1
        ended = time.monotonic()
    finally:
        client.close()
    if len(tags) == sent:  # each submit took longer than the window: nothing to test
        pytest.skip("no submit began within another's WAKE_WINDOW (a loaded machine)")
    wait_for(
        lambda: {e.tag for e in ledger(workdir)} >= set(tags),
        timeout=20,
        what=f"all {len(tags)} jobs of the burst started",
    )
    assert time.monotonic() - ended < 10  # not the 60 s poll
