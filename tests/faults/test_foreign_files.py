"""Files that are not (usable) jobrunner databases: a clear refusal, and nothing touched.

tests/cli/test_databases.py runs every command against random bytes and another
application's SQLite file, tests/store/test_sqlite.py the store against those and a newer
schema. Here: the daemon against all of them (exit 2, one line, the file byte-identical
with the same mtime, no -wal/-shm left beside it), and the odder files against a reader
(`status`) and a writer (`submit`): a truncated copy of a real database, another
application's WAL-mode database with its -wal and -shm still beside it, garbage sidecars
beside a file that is not SQLite, a foreign application id, a newer schema; an empty file
and a blank SQLite file against readers, writers and the daemon; and a FIFO, which must
be refused without being read (that would block).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import apsw
import pytest

from jobrunner.client import Client
from jobrunner.errors import NotADatabase
from jobrunner.store import open_store
from jobrunner.store.sqlite_files import check_foreign_file
from jobrunner.store.sqlite_sql import APPLICATION_ID, SCHEMA_VERSION
from tests.helpers import cli

pytestmark = pytest.mark.sqlite_only(
    "files that are not a jobrunner database, where one is expected"
)

Snapshot = dict[str, tuple[bytes, int]]


def snapshot(folder: Path) -> Snapshot:
    """Every file in the folder: its bytes and mtime."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def not_sqlite(path: Path) -> None:
    path.write_bytes(b"my diary\n" * 1000)


def other_app(path: Path) -> None:
    con = apsw.Connection(str(path))
    con.execute("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me')")
    con.close()


def other_app_with_id(path: Path) -> None:
    con = apsw.Connection(str(path))
    con.execute("PRAGMA application_id = 1234; CREATE TABLE notes (body TEXT)")
    con.close()


def newer_schema(path: Path) -> None:
    con = apsw.Connection(str(path))
    con.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, from_the_future TEXT)")
    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()


def real_database(path: Path, jobs: int = 200) -> None:
    client = Client(str(path))
    client.insert([client.prepare("jtasks:record", ["x" * 200], check=False)] * jobs)
    client.close()


def truncated(path: Path) -> None:
    """The first 4 KB of a real jobrunner database (a cut-off copy or download)."""
    full = path.with_name("full.db")
    real_database(full)
    assert full.stat().st_size > 16384
    path.write_bytes(full.read_bytes()[:4096])
    for p in full.parent.glob("full.db*"):
        p.unlink()


def other_app_wal_leftovers(path: Path) -> None:
    """Another application's WAL-mode database, its last commit still only in the -wal
    (as a crash or a copy of its live files leaves it), with the -shm beside."""
    src = path.with_name("src.db")
    con = apsw.Connection(str(src))
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA wal_autocheckpoint = 0")
    con.execute("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('only in the wal')")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").write_bytes(Path(f"{src}{suffix}").read_bytes())
    con.close()
    src.unlink()


def not_sqlite_with_sidecars(path: Path) -> None:
    not_sqlite(path)
    Path(f"{path}-wal").write_bytes(os.urandom(4096))
    Path(f"{path}-shm").write_bytes(os.urandom(32768))


FOREIGN: dict[str, Callable[[Path], None]] = {
    "not-sqlite": not_sqlite,
    "other-app": other_app,
    "other-app-with-id": other_app_with_id,
    "newer-schema": newer_schema,
    "truncated": truncated,
    "other-app-wal-leftovers": other_app_wal_leftovers,
    "not-sqlite-with-sidecars": not_sqlite_with_sidecars,
}
# what the one-line error must say, besides the file's name
SAYS = {
    "not-sqlite": "not an SQLite file",
    "other-app": "another application",
    "other-app-with-id": "another application",
    "newer-schema": "newer",
    "truncated": "damaged",
    "other-app-wal-leftovers": "another application",
    "not-sqlite-with-sidecars": "not an SQLite file",
}
# a file that is not a jobrunner database is bad input (2); a damaged one a failed database (3)
EXIT = {"truncated": 3}


def assert_untouched(folder: Path, before: Snapshot, kind: str) -> None:
    after = snapshot(folder)
    if kind == "other-app-wal-leftovers":
        # SQLite rebuilds the -shm (a shared-memory index, no data) whenever it reads a
        # WAL-mode file; the database and its -wal must stay exactly as they were.
        assert set(after) == set(before)
        after.pop("foreign.db-shm")
        before = {k: v for k, v in before.items() if k != "foreign.db-shm"}
    assert after.keys() == before.keys(), "files appeared or vanished"
    for name in before:
        assert after[name][0] == before[name][0], f"{name} changed"
        assert after[name][1] == before[name][1], f"{name}: mtime changed"


def one_line_error(code: int, out: str, err: str, *words: str, want: int = 2) -> None:
    assert code == want, (code, out, err)
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


@pytest.fixture
def foreign_dir(workdir: Path) -> Path:
    folder = workdir / "foreign"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("kind", FOREIGN)
def test_daemon_refuses_a_foreign_file_and_leaves_it_untouched(
    workdir: Path, db: Path, foreign_dir: Path, kind: str
) -> None:
    path = foreign_dir / "foreign.db"
    FOREIGN[kind](path)
    before = snapshot(foreign_dir)
    res = cli(workdir, db, "--db", str(path), "daemon", "--workers", "1", timeout=30)
    one_line_error(res.code, res.out, res.err, "foreign.db", SAYS[kind], want=EXIT.get(kind, 2))
    assert_untouched(foreign_dir, before, kind)


@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "other-app-wal-leftovers",
        "not-sqlite-with-sidecars",
        "other-app-with-id",
        "newer-schema",
    ],
)
@pytest.mark.parametrize("argv", [["status"], ["submit", "--no-check", "jtasks:record"]])
def test_reader_and_writer_refuse_the_odder_files(
    workdir: Path, db: Path, foreign_dir: Path, kind: str, argv: list[str]
) -> None:
    path = foreign_dir / "foreign.db"
    FOREIGN[kind](path)
    before = snapshot(foreign_dir)
    res = cli(workdir, db, "--db", str(path), *argv)
    one_line_error(res.code, res.out, res.err, "foreign.db", SAYS[kind], want=EXIT.get(kind, 2))
    assert_untouched(foreign_dir, before, kind)


def test_other_apps_wal_data_is_still_there_after_the_refusal(foreign_dir: Path) -> None:
    path = foreign_dir / "foreign.db"
    other_app_wal_leftovers(path)
    for create in (False, True):
        with pytest.raises(NotADatabase, match="another application"):
            open_store(str(path), create=create)
    con = apsw.Connection(str(path))
    assert con.execute("SELECT body FROM notes").fetchall() == [("only in the wal",)]
    con.close()


def empty_file(path: Path) -> None:
    path.write_bytes(b"")


def blank_sqlite(path: Path) -> None:
    """A valid SQLite file with nothing in it: no tables, no application id."""
    apsw.Connection(str(path)).execute("PRAGMA page_size = 4096; VACUUM").close()


@pytest.mark.parametrize("make", [empty_file, blank_sqlite], ids=["empty-file", "blank-sqlite"])
@pytest.mark.parametrize(
    "argv",
    [["status"], ["list"], ["dlq", "list"], ["submit", "--no-check", "jtasks:record"], ["daemon"]],
    ids=lambda a: "-".join(a[:2]),
)
def test_an_empty_file_is_refused_by_readers_and_writers(
    workdir: Path, db: Path, foreign_dir: Path, make: Callable[[Path], None], argv: list[str]
) -> None:
    """SQLite takes an empty file for an empty database. jobrunner never leaves one (it
    builds a new database under another name and links it into place), so an empty
    file is someone else's: refused, and still empty afterwards."""
    path = foreign_dir / "foreign.db"
    make(path)
    before = snapshot(foreign_dir)
    res = cli(workdir, db, "--db", str(path), *argv, timeout=30)
    one_line_error(res.code, res.out, res.err, "foreign.db", "empty")
    assert_untouched(foreign_dir, before, "empty")


def test_a_new_database_appears_whole_and_private(workdir: Path, db: Path, tasks: Path) -> None:
    """No empty or half-made file is ever at the database's path: the first submit builds
    it under a temporary name (mode 0600) and links it into place, leaving nothing else."""
    res = cli(workdir, db, "submit", "--no-check", "jtasks:record")
    assert res.code == 0, res.err
    assert db.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in workdir.iterdir() if ".new" in p.name] == []
    with open(db, "rb") as f:
        header = f.read(100)
    assert int.from_bytes(header[68:72], "big") == APPLICATION_ID  # complete in the file itself


@pytest.mark.parametrize(
    "argv", [["status"], ["submit", "--no-check", "jtasks:record"], ["daemon"]]
)
def test_a_fifo_is_refused_at_once_not_read(
    workdir: Path, db: Path, foreign_dir: Path, argv: list[str]
) -> None:
    """Reading the header of a FIFO nobody writes to would block forever."""
    fifo = foreign_dir / "foreign.db"
    os.mkfifo(fifo)
    res = cli(workdir, db, "--db", str(fifo), *argv, timeout=20)
    one_line_error(res.code, res.out, res.err, "foreign.db", "not a regular file")
    assert [p.name for p in foreign_dir.iterdir()] == ["foreign.db"]


WRITER = """
import sys, time
from jobrunner.models import JobInsert
from jobrunner.store import open_store
store = open_store(sys.argv[1])
stop = time.monotonic() + float(sys.argv[2])
while time.monotonic() < stop:
    store.job_insert_many([JobInsert(task="a.b:c", args=["x" * 200]) for _ in range(50)], 0.0)
store.close()
"""


def test_a_database_being_checkpointed_is_never_taken_for_a_truncated_one(
    tmp_path: Path,
) -> None:
    """While a checkpoint copies the WAL in, the file's header can already count pages
    the file does not have yet; an open at that moment once refused a live database
    as damaged (seen in CI: a concurrent submitter failed with exit 2)."""
    path = tmp_path / "jobs.db"
    open_store(str(path)).close()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), "2.5"], env=env_for_repo())
        for _ in range(2)
    ]
    refused: list[str] = []
    opens = 0
    try:
        while any(w.poll() is None for w in writers) and len(refused) < 3:
            try:
                check_foreign_file(str(path))
            except NotADatabase as exc:
                refused.append(str(exc))
            opens += 1
    finally:
        for w in writers:
            w.wait(timeout=30)
    assert [w.returncode for w in writers] == [0, 0]
    assert opens > 1000 and path.stat().st_size > 4 << 20  # checkpoints did happen
    assert refused == []


def env_for_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env
