"""Stopping a daemon: SIGTERM drains; a second SIGINT kills jobs and hands them back."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import (
    alive,
    counts,
    job,
    ledger,
    submit_file,
    wait_counts,
    write_config,
)

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends


def _started(workdir: Path) -> set[int]:
    return {e.job_id for e in ledger(workdir) if e.event == "start"}


def test_sigterm_drains_running_jobs_and_leaves_the_rest_queued(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, shutdown_grace='"30s"')
    ids = submit_file(
        workdir, db, [{"task": "jtasks:slow", "args": [f"s{i}", 1.5]} for i in range(6)]
    )
    d = Daemon(workdir, db, "--workers", "2")
    daemons.append(d)
    wait_for(lambda: len(_started(workdir)) >= 2, timeout=20, what="two jobs to start")
    workers = d.worker_pids()

    d.signal(signal.SIGTERM)
    assert d.wait(30) == 0, d.log()
    assert not any(alive(p) for p in workers)

    started = _started(workdir)
    ended = {e.job_id for e in ledger(workdir) if e.event == "end"}
    assert started == ended  # every job that started was allowed to finish
    assert len(started) >= 2
    for job_id in ids:
        record = job(workdir, db, job_id)
        if job_id in started:
            assert record["state"] == "succeeded", record
        else:  # claimed-but-unstarted or never claimed: back in the queue, untouched
            assert record["state"] == "queued", record
            assert record["attempt_history"] == []
            assert record["owner"] is None
    final = counts(workdir, db)
    assert final["running"] == 0
    assert final["queued"] == len(ids) - len(started)
    assert cli(workdir, db, "status", "--json").json()["daemons"] == []


def test_second_sigint_kills_jobs_and_requeues_them(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    ids = submit_file(
        workdir, db, [{"task": "jtasks:until_released", "args": [f"u{i}"]} for i in range(3)]
    )
    first = Daemon(workdir, db, "--workers", "2")
    daemons.append(first)
    wait_for(lambda: len(_started(workdir)) >= 2, timeout=20, what="two jobs to start")
    killed = _started(workdir)
    workers = first.worker_pids()

    first.signal(signal.SIGINT)
    wait_for(lambda: "draining" in first.log(), timeout=10, what="the daemon to begin draining")
    first.signal(signal.SIGINT)
    assert first.wait(20) == 130, first.log()
    wait_for(lambda: not any(alive(p) for p in workers), timeout=10, what="workers gone")

    assert counts(workdir, db)["running"] == 0
    for job_id in ids:
        record = job(workdir, db, job_id)
        assert record["state"] == "queued", record
        outcomes = [a["outcome"] for a in record["attempt_history"]]
        assert outcomes == (["interrupted"] if job_id in killed else []), record
    assert not any(e.event == "end" for e in ledger(workdir))

    (workdir / "release").touch()
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    wait_counts(workdir, db, timeout=30, succeeded=len(ids))
    for job_id in killed:
        record = job(workdir, db, job_id)
        assert [a["outcome"] for a in record["attempt_history"]] == ["interrupted", "succeeded"]
