"""Hosts whose clocks disagree share one PostgreSQL database: every time they store and
compare is the database's (invariant 12). A process here gets a host clock ten minutes
fast from libfaketime (LD_PRELOAD; its monotonic clock left true), as a host with a
broken NTP would have."""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.helpers import Daemon, env_for, wait_for
from tests.integration.conftest import job, submit, write_config, write_module
from tests.store.pg_support import fresh_database

SKEW = 600.0
FAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))

TASKS = """
def hello():
    return "hello"
"""


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # type: ignore[override]
    """This module's database is PostgreSQL: the shared fixtures (daemons, sweeping
    leftovers) take its URL where they take a file's path."""
    monkeypatch.setenv("JOBRUNNER_PG_LOGS", str(tmp_path / "pg-logs"))
    with fresh_database() as url:
        yield url


@pytest.fixture
def skewed() -> dict[str, str]:
    """Environment entries that set a process's host clock SKEW seconds fast."""
    if not FAKETIME:
        why = "libfaketime is not installed (Debian: apt-get install faketime)"
        if os.environ.get("CI") == "true":
            pytest.fail(why + "; .ci/run installs it", pytrace=False)
        pytest.skip(why)
    return {
        "LD_PRELOAD": FAKETIME[0],
        "FAKETIME": f"+{SKEW:.0f}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


@pytest.fixture
def setup(workdir: Path) -> None:
    write_config(workdir, lease='"2s"')
    write_module(workdir, "jtasks", TASKS)


def _env(workdir: Path, db: str, extra: dict[str, str]) -> dict[str, str]:
    return {**env_for(workdir, db), **extra}  # type: ignore[arg-type]


def test_the_skew_is_real(workdir: Path, skewed: dict[str, str]) -> None:
    """The premise: a process under libfaketime reads a clock SKEW seconds fast."""
    import subprocess
    import sys

    told = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env={**os.environ, **skewed},
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(told.stdout) - time.time() == pytest.approx(SKEW, abs=5)


def test_a_daemon_with_a_fast_clock_runs_a_delayed_job_on_time(
    workdir: Path, db: str, setup: None, skewed: dict[str, str], daemons: list[Daemon]
) -> None:
    """By its own clock the job is ten minutes overdue; by the database's it is not due
    for 3 s. It starts at its time, and its recorded times agree with the database's."""
    daemons.append(Daemon(workdir, db, "--workers", "1", env=_env(workdir, db, skewed)))
    sent = time.monotonic()
    job_id = submit(workdir, db, "jtasks:hello", "--delay", "3s")  # type: ignore[arg-type]
    record = wait_for(
        lambda: (r := job(workdir, db, job_id))["state"] == "succeeded" and r,  # type: ignore[arg-type]
        timeout=60,
        what="the delayed job",
    )
    assert time.monotonic() - sent >= 2.9  # not at once
    started = _epoch(record["started_at"])
    created = _epoch(record["created_at"])
    assert 2.9 <= started - created < 60  # by the database's clock, not ten minutes off


def test_a_submitter_with_a_fast_clock_delays_by_the_database_clock(
    workdir: Path, db: str, setup: None, skewed: dict[str, str], daemons: list[Daemon]
) -> None:
    """A web server on a host ten minutes fast submits with a 2 s delay: the job runs in
    about 2 s, not in ten minutes."""
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    from tests.helpers import cli

    res = cli(workdir, db, "submit", "jtasks:hello", "--delay", "2s", env=_env(workdir, db, skewed))  # type: ignore[arg-type]
    assert res.code == 0, res.err
    job_id = int(res.out)
    record = wait_for(
        lambda: (r := job(workdir, db, job_id))["state"] == "succeeded" and r,  # type: ignore[arg-type]
        timeout=60,
        what="the job a fast host delayed by 2 s",
    )
    assert 1.9 <= _epoch(record["run_at"]) - _epoch(record["created_at"]) < 3


def test_a_daemon_with_a_fast_clock_does_not_take_a_live_leaders_lease(
    workdir: Path, db: str, setup: None, skewed: dict[str, str], daemons: list[Daemon]
) -> None:
    """By its clock the leader's lease ran out ten minutes ago; by the database's it is
    renewed every heartbeat. The first daemon leads throughout; the second takes over
    only when the first stops."""
    first = Daemon(workdir, db, "--workers", "1")
    daemons.append(first)
    leader = wait_for(lambda: _leader(db), timeout=30, what="a leader")
    daemons.append(Daemon(workdir, db, "--workers", "1", env=_env(workdir, db, skewed)))
    wait_for(lambda: len(_daemon_ids(db)) == 2, timeout=30, what="both daemons registered")
    deadline = time.monotonic() + 5  # two and a half leases: heartbeats, renewals
    while time.monotonic() < deadline:
        assert _leader(db) == leader
        time.sleep(0.1)
    first.stop()
    wait_for(
        lambda: _leader(db) not in (None, leader), timeout=30, what="the fast host to take over"
    )


def _leader(db: str) -> str | None:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT owner FROM leases WHERE name = 'leader'").fetchone()
    return None if row is None else str(row[0])


def _daemon_ids(db: str) -> list[str]:
    with psycopg.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM daemons").fetchall()]


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
