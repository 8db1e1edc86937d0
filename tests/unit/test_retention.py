"""Retention: the [retention] table, and the daemon's retention and WAL-checkpoint
services driven by a fake clock against a real database file and real log files."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from jobrunner.clock import FakeClock
from jobrunner.config import (
    DEFAULT_RETAIN_DEAD,
    DEFAULT_RETAIN_SUCCEEDED,
    WAL_WARN_BYTES,
    Config,
    RetentionConfig,
    load_config,
)
from jobrunner.daemon.services import (
    CHECKPOINT_EVERY,
    PRUNE_BACKLOG_PAUSE,
    PRUNE_BATCH,
    PRUNE_EVERY,
    PRUNE_MAX_BATCHES,
    Services,
)
from jobrunner.errors import ConfigError
from jobrunner.lifecycle import Outcome, State
from jobrunner.models import AttemptEnd, ClaimRequest, DaemonInfo, JobInsert
from jobrunner.store import open_store
from jobrunner.store.sqlite import SQLiteStore

DAY = 86400.0


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "jobrunner.toml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def config_error(path: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- the [retention] table ---------------------------------------------------------------------


def test_defaults_keep_succeeded_a_week_and_dead_a_month(tmp_path: Path) -> None:
    assert load_config(None).retention == RetentionConfig(7 * DAY, 30 * DAY)
    assert DEFAULT_RETAIN_SUCCEEDED == 7 * DAY and DEFAULT_RETAIN_DEAD == 30 * DAY
    assert load_config(write(tmp_path, "[retention]\n")).retention == RetentionConfig()


def test_durations_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [retention]
        succeeded = "12h"
        dead = 3600
        """,
    )
    assert load_config(path).retention == RetentionConfig(succeeded=12 * 3600.0, dead=3600.0)


def test_one_key_alone_keeps_the_other_default(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[retention]\nsucceeded = "1s"\n'))
    assert cfg.retention == RetentionConfig(succeeded=1.0, dead=DEFAULT_RETAIN_DEAD)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            '[daemon]\nworkers = 2\n\n[retention]\nsucceeded = "a week"\n',
            [":5:", "retention.succeeded", "not a duration"],
        ),
        ('[retention]\ndead = "-3d"\n', [":2:", "retention.dead"]),
        ('[retention]\nsucceeded = "0s"\n', [":2:", "retention.succeeded", "at least 1s"]),
        ('[retention]\ndead = "500ms"\n', [":2:", "retention.dead", "at least 1s"]),
        ("[retention]\ndead = true\n", [":2:", "retention.dead"]),
        (
            '[retention]\nsucceded = "1d"\n',
            [":2:", "retention.succeded", "unknown key", "did you mean 'succeeded'"],
        ),
        (
            '[retention]\ncancelled = "1d"\n',
            [":2:", "unknown key", "allowed: dead, events, succeeded"],
        ),
        ('retention = "7d"\n', [":1:", "retention", "expected a table"]),
    ],
)
def test_bad_retention_names_file_and_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write(tmp_path, text)
    message = config_error(path)
    assert message.startswith(path + ":")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# -- the services, with a fake clock -------------------------------------------------------------


class World:
    """A real database, its log folder, and the daemon's services on a fake clock."""

    def __init__(self, tmp_path: Path, retention: RetentionConfig) -> None:
        self.clock = FakeClock()
        self.store = open_store(str(tmp_path / "jobs.db"))
        assert isinstance(self.store, SQLiteStore)
        self.log_dir = tmp_path / "jobs.db.logs"
        self.log_dir.mkdir()
        self.config = Config(retention=retention)
        now = self.clock.now()
        info = DaemonInfo("host:1:abc", "host", 1, now, now, now + 30, 2, None)
        self.services = Services(self.config, self.store, self.clock, info, str(self.log_dir))
        self.services.register()

    def ended(self, state: State, ago: float, count: int = 1) -> list[int]:
        """`count` jobs that ended in `state` `ago` seconds before now, each with a log."""
        now = self.clock.now()
        template = JobInsert(task="app.tasks:work", retries=0)
        ids = self.store.job_insert_calls(
            template, [f"[{i}]" for i in range(count)], now - ago - 10
        )
        if state is State.CANCELLED:
            for job_id in ids:
                self.store.job_cancel(job_id, now - ago)
        else:
            jobs = self.store.job_claim(ClaimRequest("other", now - ago - 5, count))
            outcome = Outcome.SUCCEEDED if state is State.SUCCEEDED else Outcome.FAILED
            ends = [
                AttemptEnd(j.id, 1, outcome, state, started_at=now - ago - 5, finished_at=now - ago)
                for j in jobs
            ]
            assert self.store.job_end_many("other", ends) == [True] * count
        for job_id in ids:
            (self.log_dir / f"{job_id}.log").write_text(f"output of {job_id}\n")
        return ids

    def left(self) -> set[int]:
        return {j.id for j in self.store.job_list(limit=100_000)}

    def logs(self) -> set[int]:
        return {int(p.stem) for p in self.log_dir.iterdir()}

    def run(self, stopping: bool = False) -> None:
        self.services.run_due(self.clock.monotonic(), stopping)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path, RetentionConfig())
    yield w
    w.store.close()


def test_prunes_at_start_by_state_and_age_with_the_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    old_ok = world.ended(State.SUCCEEDED, 8 * DAY, 3)
    fresh_ok = world.ended(State.SUCCEEDED, 6 * DAY)
    old_dead = world.ended(State.DEAD, 31 * DAY)
    fresh_dead = world.ended(State.DEAD, 8 * DAY)  # past the succeeded age, not the dead one
    old_cancelled = world.ended(State.CANCELLED, 31 * DAY)
    fresh_cancelled = world.ended(State.CANCELLED, 20 * DAY)
    (waiting,) = world.store.job_insert_many([JobInsert(task="a:b")], world.clock.now() - 60 * DAY)
    with caplog.at_level(logging.INFO, logger="jobrunner.daemon"):
        world.run()
    kept = {*fresh_ok, *fresh_dead, *fresh_cancelled, waiting.id}
    assert world.left() == kept
    assert world.logs() == kept - {waiting.id}
    assert not {*old_ok, *old_dead, *old_cancelled} & world.logs()
    lines = [r.getMessage() for r in caplog.records if "retention" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "deleted 5 ended job(s)" in lines[0]
    assert "3 succeeded" in lines[0] and "1 dead" in lines[0] and "1 cancelled" in lines[0]


def test_runs_again_after_its_period_and_logs_only_when_it_deleted(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.run()
    assert world.services.next_prune == world.clock.monotonic() + PRUNE_EVERY
    job = world.ended(State.SUCCEEDED, 7 * DAY - 30)  # old enough in 30 s
    with caplog.at_level(logging.INFO, logger="jobrunner.daemon"):
        world.clock.advance(PRUNE_EVERY - 1)
        world.run()
        assert world.left() == set(job)  # not due yet
        world.clock.advance(1)
        world.run()
        assert world.left() == set()
    assert sum("retention" in r.getMessage() for r in caplog.records) == 1


def test_a_backlog_goes_in_bounded_runs(world: World) -> None:
    per_run = PRUNE_BATCH * PRUNE_MAX_BATCHES
    world.ended(State.SUCCEEDED, 10 * DAY, per_run + 7)
    fresh = world.ended(State.SUCCEEDED, 1.0)
    world.run()
    assert len(world.left()) == 7 + 1  # one run deletes at most per_run
    assert world.services.next_prune == world.clock.monotonic() + PRUNE_BACKLOG_PAUSE
    world.clock.advance(PRUNE_BACKLOG_PAUSE)
    world.run()
    assert world.left() == set(fresh)
    assert world.logs() == set(fresh)
    assert world.services.next_prune == world.clock.monotonic() + PRUNE_EVERY


def test_the_event_feed_is_pruned_by_its_own_retention(tmp_path: Path) -> None:
    """Events outlive the jobs they tell of only as long as `[retention] events` says,
    and go in bounded batches, oldest first."""
    w = World(tmp_path, RetentionConfig(succeeded=DAY, dead=DAY, events=2 * DAY))
    try:
        old = w.ended(State.SUCCEEDED, 3 * DAY, 2)  # their events are 3 days old
        recent = w.ended(State.SUCCEEDED, 1.0)
        assert {e.job_id for e in w.store.events_after(0, None, 100)} == {*old, *recent}
        w.run()
        assert {e.job_id for e in w.store.events_after(0, None, 100)} == set(recent)
        assert w.left() == set(recent)
    finally:
        w.store.close()


def test_short_retention_runs_more_often(tmp_path: Path) -> None:
    w = World(tmp_path, RetentionConfig(succeeded=1.0, dead=DAY))
    try:
        assert w.services.prune_every() == 0.5
        w.run()
        job = w.ended(State.SUCCEEDED, 0.0)
        w.clock.advance(0.5)
        w.run()
        assert w.left() == set(job)  # half a second old
        w.clock.advance(0.5)
        w.run()
        assert w.left() == set(job)  # exactly 1 s old: kept
        w.clock.advance(0.5)
        w.run()
        assert w.left() == set()
    finally:
        w.store.close()


def test_nothing_is_pruned_while_stopping(world: World) -> None:
    old = world.ended(State.SUCCEEDED, 10 * DAY)
    world.run(stopping=True)
    assert world.left() == set(old)
    deadline = world.services.deadline(world.clock.monotonic(), True)
    assert deadline > world.clock.monotonic()  # a stopping daemon is not woken for it
    world.run()
    assert world.left() == set()


def test_a_reload_changes_retention_at_once(world: World, tmp_path: Path) -> None:
    world.run()
    job = world.ended(State.SUCCEEDED, 3 * DAY)
    path = write(tmp_path, '[retention]\nsucceeded = "2d"\n')
    world.services.config = load_config(path)  # as _reload installs it
    world.clock.advance(PRUNE_EVERY)
    world.run()
    assert world.left() == set()
    assert job


def test_checkpoint_service_truncates_the_wal_after_a_burst(world: World) -> None:
    world.run()
    world.store.job_insert_calls(JobInsert(task="a:b"), [f'["{"x" * 500}"]'] * 2000, 0.0)
    assert world.store.maintenance().wal_bytes() > 500_000
    world.clock.advance(CHECKPOINT_EVERY - 1)
    world.run()
    assert world.store.maintenance().wal_bytes() > 500_000  # not due yet
    world.clock.advance(1)
    world.run()
    assert world.store.maintenance().wal_bytes() == 0
    assert len(world.left()) == 2000


def test_checkpoint_held_back_by_a_reader_warns_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    assert world.services.wal_warn_bytes == WAL_WARN_BYTES == 64 << 20
    world.services.wal_warn_bytes = 100_000  # a 64 MiB WAL is slow to write in a test
    reader = apsw.Connection(world.store.path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM jobs").fetchall()
    try:
        with caplog.at_level(logging.WARNING, logger="jobrunner.daemon"):
            for _ in range(3):
                world.store.job_insert_calls(JobInsert(task="a:b"), [f'["{"x" * 500}"]'] * 500, 0.0)
                world.clock.advance(CHECKPOINT_EVERY)
                world.run()
        assert world.store.maintenance().wal_bytes() > 100_000
        warnings = [r.getMessage() for r in caplog.records if "write-ahead log" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "reader" in warnings[0] and world.store.path in warnings[0]
    finally:
        reader.execute("COMMIT")
        reader.close()
    world.clock.advance(CHECKPOINT_EVERY)
    world.run()
    assert world.store.maintenance().wal_bytes() == 0
    assert world.services.wal_warned is False
