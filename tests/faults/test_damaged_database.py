"""A jobrunner database with a damaged page in the middle (not the header, so it opens).

What a user relies on: a command that reads or writes the damaged page says so in one line
and exits 3, without a traceback and without changing the file; `jobrunner check` finds
the damage on demand; a daemon that comes upon it stops claiming, says so in one line, lets
its running jobs end and exits 3 (for its supervisor to restart it once the file is fixed).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import apsw
import pytest

from jobrunner.client import Client
from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import ledger

pytestmark = pytest.mark.sqlite_only("damage is done to the SQLite file's pages")

EXIT_STORE = 3  # docs/jobs.md: 3 the database stayed locked, failed or is damaged


def marker(n: int) -> str:
    return f"job-{n:05d}"


def quick(n: int) -> tuple[str, list[object]]:
    """A quick job whose args (about 200 bytes) carry its marker."""
    return ("jtasks:record", [f"{marker(n)}-{'x' * 200}"])


def make_database(db: Path, tasks: list[tuple[str, list[object]]]) -> None:
    """One job per (task, args), ids 1..n, and every page written into the main file (the
    last close checkpoints the WAL and removes it)."""
    client = Client(str(db))
    client.insert([client.prepare(task, args, check=False) for task, args in tasks])
    client.close()
    assert not Path(f"{db}-wal").exists()


def damage_page_holding(db: Path, text: str, *, cells: bool = False) -> int:
    """Damage the page that holds `text` (a job's args, stored once) and return its
    number: its b-tree header zeroed (SQLite reports the page malformed whenever it reads
    it), or with `cells` its cell pointers sent out of the page."""
    data = db.read_bytes()
    at = data.index(text.encode())
    assert data.find(text.encode(), at + 1) == -1
    page_size = int.from_bytes(data[16:18], "big")
    page = at // page_size
    assert page > 0, "the first page (the header and schema) stays whole"
    with open(db, "r+b") as f:
        if cells:
            f.seek(page * page_size + 8)
            f.write(b"\xff" * 24)
        else:
            f.seek(page * page_size)
            f.write(b"\x00" * 12)  # page type 0: not a b-tree page
    return page + 1


def _root_page(db: Path, table: str) -> int:
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        query = "SELECT rootpage FROM sqlite_master WHERE name = ?"
        return int(conn.execute(query, (table,)).fetchall()[0][0])
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


JOBS = 300  # a few dozen pages of jobs; the last one's page is damaged

# Every command that reads or writes the last job's page: `list` reads the newest first,
# a submit appends beside the newest. (The overview, `status` and `top`, reads the kept
# counts and the newest failures, not every job: damage in a page of waiting jobs is
# not in its way, and `jobrunner check` finds it, below.)
COMMANDS = {
    "status-id": ["status", str(JOBS)],
    "list": ["list"],
    "list-json": ["list", "--json"],
    # (`dlq list` reads dead jobs only, from their index: with none, it never meets the damage)
    "list-states": ["list", "--state", "dead,queued"],
    "dlq-show": ["dlq", "show", str(JOBS)],
    "dlq-retry": ["dlq", "retry", str(JOBS)],
    "submit": ["submit", "--no-check", "jtasks:record"],
    "submit-file": ["submit", "--file", "-"],
    "cancel": ["cancel", str(JOBS)],
    "wait": ["wait", str(JOBS), "--timeout", "1s"],
    "logs": ["logs", str(JOBS)],
    "backup": ["backup", "copy.db"],
}


@pytest.fixture
def damaged_db(workdir: Path, db: Path, tasks: Path) -> Path:
    make_database(db, [quick(n) for n in range(1, JOBS + 1)])
    damage_page_holding(db, marker(JOBS))
    return db


@pytest.mark.parametrize("argv", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_command_meeting_the_damage_says_so_in_one_line_and_changes_nothing(
    workdir: Path, damaged_db: Path, argv: list[str]
) -> None:
    before = digest(damaged_db)
    res = cli(workdir, damaged_db, *argv, input='{"task": "jtasks:record"}\n')
    assert res.code == EXIT_STORE, (res.code, res.out, res.err)
    assert res.out == ""
    assert res.err.count("\n") == 1 and "Traceback" not in res.err, res.err
    assert "jobs.db" in res.err and "damaged" in res.err and "jobrunner check" in res.err
    assert digest(damaged_db) == before
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith("jobs.db")) == ["jobs.db"]
    assert not (workdir / "copy.db").exists()


def test_check_finds_the_damage_and_passes_a_sound_database(
    workdir: Path, db: Path, tasks: Path
) -> None:
    make_database(db, [quick(n) for n in range(1, JOBS + 1)])
    res = cli(workdir, db, "check")
    assert (res.code, res.out, res.err) == (0, "ok\n", "")
    res = cli(workdir, db, "check", "--json")
    assert res.code == 0 and res.json() == {"database": str(db), "ok": True, "problems": []}

    root = _root_page(db, "jobs")  # 2, or 3 behind auto-vacuum's pointer map
    page = damage_page_holding(db, marker(JOBS // 2), cells=True)
    before = digest(db)
    # SQLite names the page, or (when its own check stops on the page, which depends on
    # where the rows' cells lie) the check names the table, table by table
    where = (f"Tree {root} page {page} cell 0: Offset 65535", "table jobs or one of its indexes")
    res = cli(workdir, db, "check")
    assert res.code == EXIT_STORE, (res.code, res.out, res.err)
    assert any(w in res.out for w in where), res.out
    assert res.err.count("\n") == 1 and "damaged" in res.err and "Traceback" not in res.err
    res = cli(workdir, db, "check", "--json")
    assert res.code == EXIT_STORE
    report = json.loads(res.out)
    assert report["ok"] is False and any(w in p for w in where for p in report["problems"])
    assert digest(db) == before


def test_check_names_the_table_when_sqlite_cannot_read_a_page_at_all(
    workdir: Path, db: Path, tasks: Path
) -> None:
    """A page whose header is gone stops PRAGMA integrity_check itself (apsw raises):
    the check still names the damaged table, and the sound ones pass."""
    make_database(db, [quick(n) for n in range(1, JOBS + 1)])
    damage_page_holding(db, marker(JOBS // 2))
    res = cli(workdir, db, "check")
    assert res.code == EXIT_STORE, (res.code, res.out, res.err)
    assert res.out == "table jobs or one of its indexes: database disk image is malformed\n"
    assert res.err.count("\n") == 1 and "Traceback" not in res.err


def test_the_daemon_stops_claiming_lets_running_jobs_end_and_exits_3(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """Job 1 runs until the file `long.go` appears; jobs 2.. are quick. The page holding
    job 60 is damaged: the claim that reaches it fails. The daemon must say so once,
    claim nothing more, let job 1 end (its result recorded: its page is sound) and exit 3."""
    damaged = 60
    make_database(db, [("jtasks:ticker", ["long", 2])] + [quick(n) for n in range(2, 121)])
    damage_page_holding(db, marker(damaged))
    daemon = Daemon(workdir, db, "--workers", "2")
    daemons.append(daemon)
    wait_for(lambda: "damaged" in daemon.log(), timeout=30, what="the damage logged")
    assert daemon.proc.poll() is None, "it waits for the running job"
    res = cli(workdir, db, "status", "1", "--json")
    assert res.code == 0 and res.json()["state"] == "running", res
    ran = {e.job_id for e in ledger(workdir)}
    assert damaged not in ran
    claims = daemon.log().count(" claim ")

    (workdir / "long.go").touch()
    assert daemon.wait(timeout=30) == EXIT_STORE
    log = daemon.log()
    # Said once. (A quick job's result may meet the damage too, when its write has to
    # rebalance the damaged page: then that result waits, unwritten, and says so; every
    # result on a sound page is still recorded, each alone.)
    assert log.count("stopping (exit 3)") == 1, log
    assert "Traceback" not in log and "shutdown grace over" not in log, log
    assert log.count(" claim ") == claims, "claimed after the damage was found"
    assert {e.job_id for e in ledger(workdir)} == ran
    res = cli(workdir, db, "status", "1", "--json")
    assert res.code == 0, res.err
    assert (res.json()["state"], res.json()["result"]) == ("succeeded", 2)


def test_the_daemon_refuses_a_database_damaged_where_it_starts_reading(
    workdir: Path, db: Path, tasks: Path
) -> None:
    """The damaged page holds the only job, so the first claim meets it: exit 3 at once,
    one line, and no job run."""
    make_database(db, [quick(1)])
    damage_page_holding(db, marker(1))
    res = cli(workdir, db, "daemon", "--workers", "1", timeout=60)
    assert res.code == EXIT_STORE, res.err
    assert res.err.count("damaged") == 1 and "Traceback" not in res.err, res.err
    assert ledger(workdir) == []
    assert os.path.exists(db)
