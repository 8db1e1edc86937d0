"""The database reached through a symbolic link (`link.db -> real/jobs.db`).

The first use through the link creates the database at the link's target and keeps the
link; a link into a folder that does not exist is one clear line (exit 2), nothing made.
Either name then reaches the same database, the same job logs and the same daemon's
wake-ups (both are placed by the database's real path).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.support import assert_one_line_error
from tests.helpers import Daemon, cli, wait_for

pytestmark = pytest.mark.usefixtures("tasks")


@pytest.fixture
def link(workdir: Path) -> Path:
    (workdir / "real").mkdir()
    link = workdir / "link.db"
    link.symlink_to("real/jobs.db")  # relative, as `ln -s` makes it
    return link


def test_the_first_submit_through_a_link_creates_the_database_at_its_target(
    workdir: Path, db: Path, link: Path
) -> None:
    res = cli(workdir, db, "--db", "link.db", "submit", "tasks:ok")
    assert (res.code, res.out, res.err) == (0, "1\n", "")
    real = workdir / "real" / "jobs.db"
    assert link.is_symlink() and os.readlink(link) == "real/jobs.db"
    assert real.is_file() and not real.is_symlink()
    assert real.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (workdir / "real").iterdir()) == ["jobs.db"]
    assert not [p for p in workdir.iterdir() if ".new" in p.name]
    res = cli(workdir, db, "--db", "real/jobs.db", "status", "1", "--json")
    assert res.code == 0 and res.json()["task"] == "tasks:ok", res.err


def test_a_link_into_a_missing_folder_is_one_line_and_creates_nothing(
    workdir: Path, db: Path
) -> None:
    (workdir / "dangling.db").symlink_to("nowhere/jobs.db")
    before = sorted(os.listdir(workdir))
    res = cli(workdir, db, "--db", "dangling.db", "submit", "tasks:ok")
    assert_one_line_error(res, "dangling.db", "nowhere", "does not exist")
    assert sorted(os.listdir(workdir)) == before


def test_a_daemon_through_the_link_serves_the_real_path(
    workdir: Path, db: Path, link: Path, daemons: list[Daemon]
) -> None:
    real = workdir / "real" / "jobs.db"
    daemon = Daemon(workdir, link, "--workers", "1")  # creates the database, through the link
    daemons.append(daemon)
    res = cli(workdir, db, "--db", str(real), "submit", "tasks:say", "--args", '["hi"]')
    assert res.code == 0, res.err
    res = cli(workdir, db, "--db", str(real), "wait", "1", "--timeout", "30s")
    assert (res.code, res.out) == (0, '"hi"\n'), res.err
    assert "claim count=1" in daemon.log()
    for name in (link, real):
        res = cli(workdir, db, "--db", str(name), "logs", "1")
        assert (res.code, res.out) == (0, "out:hi\nerr:hi\n"), (name, res.err)
    wait_for(lambda: (workdir / "real" / "jobs.db.logs").is_dir(), what="the logs folder")
    assert not (workdir / "link.db.logs").exists() and not (workdir / "link.db.wake").exists()
