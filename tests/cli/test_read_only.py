"""A database on a read-only file system (a backup on a read-only mount, say): the
commands that read it work and create nothing there; those that would write fail with one
line naming the path, exit 3. Tests run as root, which permissions do not stop: a tmpfs
remounted read-only does (the test skips where mounting is not allowed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from tests.cli.support import assert_one_line_error
from tests.faults.mounts import tmpfs
from tests.helpers import cli

pytestmark = [
    pytest.mark.usefixtures("tasks"),
    pytest.mark.sqlite_only("a database file that cannot be written, its -wal and -shm"),
]


@pytest.fixture
def mount(workdir: Path) -> Iterator[Path]:
    with tmpfs(workdir / "mnt", "size=8m,mode=0755") as where:
        yield where


def read_only(where: Path) -> None:
    res = subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot remount read-only: {res.stderr.decode().strip()}")


def listing(where: Path) -> list[str]:
    return sorted(str(p.relative_to(where)) for p in where.rglob("*"))


def test_readers_work_and_writers_fail_on_a_read_only_mount(
    workdir: Path, db: Path, mount: Path
) -> None:
    ro_db = mount / "jobs.db"
    assert cli(workdir, ro_db, "submit", "tasks:ok").code == 0
    assert cli(workdir, ro_db, "submit", "--cmd", "--", "echo", "hi").code == 0
    # as a daemon leaves them: the job's output file, the wake folder; the WAL folded in
    (mount / "jobs.db.logs").mkdir()
    (mount / "jobs.db.logs" / "2.log").write_text("hi\n")
    (mount / "jobs.db.wake").mkdir()
    assert not (mount / "jobs.db-wal").exists()
    read_only(mount)
    before = listing(mount)

    res = cli(workdir, ro_db, "list", "--json")
    assert res.code == 0, res.err
    assert [j["id"] for j in res.json()] == [2, 1]
    res = cli(workdir, ro_db, "status", "1", "--json")
    assert res.code == 0 and res.json()["state"] == "queued", res.err
    res = cli(workdir, ro_db, "logs", "2")
    assert (res.code, res.out) == (0, "hi\n"), res.err
    res = cli(workdir, ro_db, "events", "--json")
    assert res.code == 0 and res.out.count("\n") == 2, res.err
    assert cli(workdir, ro_db, "check").code == 0

    for argv in (["submit", "tasks:ok"], ["cancel", "1"], ["daemon"]):
        res = cli(workdir, ro_db, *argv)
        assert res.code == 3, (argv, res)
        assert_one_line_error(res, str(ro_db), "cannot write the database", "read-only", code=3)
    assert listing(mount) == before


def test_nothing_can_be_created_in_a_read_only_folder(workdir: Path, db: Path, mount: Path) -> None:
    read_only(mount)
    ro_db = mount / "jobs.db"
    for argv in (["submit", "tasks:ok"], ["daemon"]):
        res = cli(workdir, ro_db, *argv)
        assert res.code == 3, (argv, res)
        assert_one_line_error(res, str(ro_db), "cannot create the database", "Read-only", code=3)
    assert listing(mount) == []


def test_a_copy_with_its_wal_is_read_with_its_shm_and_refused_without(
    workdir: Path, db: Path, mount: Path
) -> None:
    """A copy of a database in use (its -wal holds the last transactions): read whole
    while its -shm is there; without one (which a read-only folder cannot get) it is
    refused, not read without those transactions."""
    assert cli(workdir, db, "submit", "tasks:ok").code == 0
    holder = apsw.Connection(str(db))  # keeps the -wal from being folded in at close
    holder.execute("SELECT count(*) FROM jobs").fetchall()
    assert cli(workdir, db, "submit", "tasks:ok").code == 0
    assert os.path.getsize(f"{db}-wal") > 0
    for suffix in ("", "-wal", "-shm"):
        shutil.copy(f"{db}{suffix}", mount / f"jobs.db{suffix}")
    holder.close()
    (mount / "bare").mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(mount / f"jobs.db{suffix}", mount / "bare" / f"jobs.db{suffix}")
    read_only(mount)

    res = cli(workdir, mount / "jobs.db", "list", "--json")
    assert res.code == 0, res.err
    assert [j["id"] for j in res.json()] == [2, 1]
    res = cli(workdir, mount / "bare" / "jobs.db", "list")
    assert res.code == 3
    assert_one_line_error(res, "jobs.db", "-wal holds transactions", "-shm", code=3)
