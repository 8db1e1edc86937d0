"""The SQLite store and its file: damage found anywhere is DatabaseCorrupt, and a store
whose path stopped naming its file says so and, closing, leaves the path clean without
touching a new database there. Real files, real SQLite."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import FunctionType

import apsw
import pytest

from jobrunner.errors import DatabaseCorrupt, StoreUnavailable
from jobrunner.models import JobInsert
from jobrunner.store import open_store
from jobrunner.store.base import Store
from jobrunner.store.sqlite import SQLiteStore

NOW = 1_800_000_000.0


def insert(store: Store, n: int = 1) -> None:
    store.job_insert_many([JobInsert(task="a.b:c", args=["x" * 200])] * n, NOW)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_every_public_store_method_maps_damage_to_one_error() -> None:
    """One mechanism: a method added later cannot forget it."""
    public = [
        name
        for cls in SQLiteStore.__mro__  # with the classes it is made of (sqlite_claims.py)
        for name, member in vars(cls).items()
        if not name.startswith("_") and isinstance(member, FunctionType)
    ]
    assert len(public) > 30
    assert [n for n in public if not hasattr(getattr(SQLiteStore, n), "__wrapped__")] == []
    assert issubclass(DatabaseCorrupt, StoreUnavailable) and DatabaseCorrupt().exit_code == 3


def test_a_read_meeting_a_damaged_page_is_database_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = open_store(str(path))
    insert(store, 300)
    store.close()
    conn = apsw.Connection(str(path))
    (root,) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'jobs'").fetchone()
    conn.close()
    page_size = int.from_bytes(path.read_bytes()[16:18], "big")
    with open(path, "r+b") as f:  # the jobs table's root page: its header
        f.seek((root - 1) * page_size)
        f.write(b"\x00" * 12)
    store = open_store(str(path), create=False)
    with pytest.raises(DatabaseCorrupt, match="jobs.db: the database file is damaged"):
        store.job_list()
    with pytest.raises(DatabaseCorrupt):
        insert(store)
    assert store.daemon_list() == []  # what is sound still reads
    store.close()


def test_deleted_and_replaced_are_told_apart(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = open_store(str(path))
    assert store.maintenance().moved() is None
    os.rename(path, tmp_path / "elsewhere.db")
    assert store.maintenance().moved() == "deleted"
    open_store(str(path)).close()
    assert store.maintenance().moved() == "replaced by another file"
    store.close()


def test_a_folder_made_again_keeps_its_new_database_and_wal(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    folder.mkdir()
    path = folder / "jobs.db"
    old = open_store(str(path))
    insert(old)
    shutil.rmtree(folder)
    folder.mkdir()
    new = open_store(str(path))
    insert(new, 2)  # committed, still only in the new file's WAL
    insert(old)
    old.close()
    assert files(folder) == ["jobs.db", "jobs.db-shm", "jobs.db-wal"]
    other = open_store(str(path), create=False)
    assert len(other.job_list()) == 2 and other.maintenance().check() == []
    other.close()
    new.close()


def test_a_copy_moved_over_it_is_not_damaged_by_the_old_wal(tmp_path: Path) -> None:
    """The old connection's -wal and -shm stay at the path (SQLite checkpoints nothing
    on closing a moved file); the next opener would replay that WAL into the copy."""
    path = tmp_path / "jobs.db"
    old = open_store(str(path))
    insert(old)
    old.maintenance().backup(str(tmp_path / "copy.db"))
    insert(old, 3)
    os.replace(tmp_path / "copy.db", path)
    insert(old)
    old.close()
    assert files(tmp_path) == ["jobs.db"]
    restored = open_store(str(path), create=False)
    assert len(restored.job_list()) == 1 and restored.maintenance().check() == []
    restored.close()


def test_a_database_renamed_while_open_keeps_its_last_transactions(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = open_store(str(path))
    store.db.execute("PRAGMA wal_autocheckpoint = 0")  # type: ignore[attr-defined]
    insert(store, 2)  # only in the WAL
    os.rename(path, tmp_path / "renamed.db")
    store.close()
    assert files(tmp_path) == ["renamed.db"]
    renamed = open_store(str(tmp_path / "renamed.db"), create=False)
    assert len(renamed.job_list()) == 2 and renamed.maintenance().check() == []
    renamed.close()
