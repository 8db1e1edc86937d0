"""Space deleted jobs leave behind goes back to the file system: `jobrunner vacuum` for a
file made before, incremental auto-vacuum (what the daemon's retention calls) for new ones."""

from __future__ import annotations

import os
from pathlib import Path

import apsw
import pytest

from jobrunner.models import JobInsert
from jobrunner.store import open_store
from tests.helpers import cli

pytestmark = pytest.mark.sqlite_only("a file's free pages; PostgreSQL's autovacuum has its own")

JOBS = 4000
ARG = "x" * 4000  # about 16 MB of arguments in all


def _fill_and_delete(db: Path, workdir: Path) -> int:
    """JOBS queued jobs with big arguments, then cancelled and pruned; the file's size."""
    store = open_store(str(db))
    store.job_insert_many([JobInsert(task="m:f", args=[ARG, n]) for n in range(JOBS)], 0.0)
    store.close()
    assert cli(workdir, db, "cancel", "--queue", "default", "--yes").code == 0
    res = cli(workdir, db, "prune", "--older-than", "0s", "--state", "cancelled", "--yes")
    assert res.code == 0, res.err
    return _size(db)


def _size(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _auto_vacuum(db: Path) -> int:
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return int(conn.execute("PRAGMA auto_vacuum").fetchall()[0][0])
    finally:
        conn.close()


def test_vacuum_gives_an_old_files_deleted_space_back(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    open_store(str(db)).close()
    conn = apsw.Connection(str(db))  # as a file made before auto-vacuum was on
    conn.execute("PRAGMA auto_vacuum = NONE; VACUUM")
    conn.close()
    assert _auto_vacuum(db) == 0
    store = open_store(str(db))
    kept = store.job_insert_many([JobInsert(task="m:kept", queue="kept")], 0.0)[0].id
    store.close()
    full = _fill_and_delete(db, tmp_path)
    assert full > 16 << 20  # deleting left the file as large as ever

    res = cli(tmp_path, db, "vacuum")

    assert res.code == 0, res.err
    assert res.out.startswith(f"vacuumed {db}: ") and "given back" in res.out
    assert _size(db) < full / 8
    assert _auto_vacuum(db) == 2  # incremental from now on
    assert cli(tmp_path, db, "check").out.strip() == "ok"
    assert cli(tmp_path, db, "status", str(kept), "--json").json()["task"] == "m:kept"


def test_a_new_files_freed_pages_go_back_as_retention_releases_them(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    open_store(str(db)).close()
    assert _auto_vacuum(db) == 2
    full = _fill_and_delete(db, tmp_path)

    store = open_store(str(db), writer=True)
    maintenance = store.maintenance()
    assert maintenance is not None
    free = maintenance.release_free_pages(1 << 20)  # what the daemon's retention calls
    maintenance.checkpoint()
    store.close()

    assert free > 3000  # pages of 4 KiB
    assert _size(db) < full / 8
    assert cli(tmp_path, db, "check").out.strip() == "ok"


def test_vacuum_of_a_missing_database_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    res = cli(tmp_path, db, "vacuum")
    assert res.code == 2
    assert "no jobrunner database here" in res.err
    assert not os.path.exists(db)
