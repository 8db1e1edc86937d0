"""Helpers shared by the CLI tests: task modules, one-line errors, job counts."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from tests.helpers import CliResult, cli

TASKS_PY = """\
import sys


def ok(x=1):
    return {"x": x}


def quiet():
    return None


def fail():
    raise ValueError("boom")


def say(text):
    print("out:" + text)
    print("err:" + text, file=sys.stderr)
    return text
"""

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

RECORD_KEYS = {
    "id",
    "state",
    "task",
    "command",
    "args",
    "kwargs",
    "queue",
    "priority",
    "attempts",
    "max_attempts",
    "result",
    "error",
    "created_at",
    "run_at",
    "started_at",
    "finished_at",
    "key",
    "schedule",
    "scheduled_for",
}
TIME_KEYS = ("created_at", "run_at", "started_at", "finished_at", "scheduled_for")
STATES = {
    "blocked",
    "scheduled",
    "queued",
    "running",
    "retrying",
    "succeeded",
    "dead",
    "cancelled",
}


def write_tasks(workdir: Path) -> None:
    (workdir / "tasks.py").write_text(TASKS_PY)


def parse_iso(text: str) -> dt.datetime:
    assert ISO_UTC.match(text), f"not ISO 8601 UTC with Z: {text!r}"
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_one_line_error(res: CliResult, *fragments: str, code: int = 2) -> None:
    """Exit `code`, nothing on stdout, exactly one line on stderr naming `fragments`."""
    assert res.code == code, f"exit {res.code}, wanted {code}; stderr: {res.err!r}"
    assert res.out == "", f"stdout should be empty: {res.out!r}"
    assert res.err.endswith("\n") and res.err.count("\n") == 1, (
        f"stderr should be exactly one line: {res.err!r}"
    )
    assert "Traceback" not in res.err
    for fragment in fragments:
        assert fragment in res.err, f"{fragment!r} not in {res.err!r}"


def submit(workdir: Path, db: Path, *args: str) -> int:
    res = cli(workdir, db, "submit", *args)
    assert res.code == 0, res.err
    return int(res.out)


def record(workdir: Path, db: Path, job_id: int) -> dict[str, Any]:
    res = cli(workdir, db, "status", str(job_id), "--json")
    assert res.code == 0, res.err
    return res.json()


def records(workdir: Path, db: Path, *args: str) -> list[dict[str, Any]]:
    res = cli(workdir, db, "list", "--json", "--limit", "1000", *args)
    assert res.code == 0, res.err
    return res.json()


def is_url(db: Path | str) -> bool:
    """A PostgreSQL database (JOBRUNNER_TEST_BACKEND=postgresql), not a file."""
    return str(db).startswith("postgresql://")


def job_count(db: Path) -> int:
    """How many jobs the database holds (read directly: cheaper than a subprocess)."""
    if is_url(db):
        import psycopg

        with psycopg.connect(str(db)) as conn:
            return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
    import apsw

    con = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return con.execute("SELECT count(*) FROM jobs").fetchall()[0][0]
    finally:
        con.close()


def db_files(db: Path) -> list[str]:
    """The database file and everything jobrunner keeps beside it; on PostgreSQL, the
    tables in the database (none until jobrunner made its schema)."""
    if is_url(db):
        import psycopg

        with psycopg.connect(str(db)) as conn:
            rows = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall()
        return sorted(r[0] for r in rows)
    return sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name))


def backdate(db: Path, job_id: int, seconds: float) -> None:
    """Move a job's times `seconds` into the past, as if it had ended long ago."""
    sql = (
        "UPDATE jobs SET created_at = created_at - {s}, run_at = run_at - {s}, "
        "started_at = started_at - {s}, finished_at = finished_at - {s} WHERE id = {i}"
    )
    if is_url(db):
        import psycopg

        with psycopg.connect(str(db)) as conn:
            cur = conn.execute(sql.format(s="%(s)s", i="%(i)s"), {"s": seconds, "i": job_id})
            assert cur.rowcount == 1
        return
    import apsw

    con = apsw.Connection(str(db))
    try:
        con.setbusytimeout(10_000)
        con.execute(sql.format(s="?1", i="?2"), (seconds, job_id))
        assert con.changes() == 1
    finally:
        con.close()


def log_path(db: Path, job_id: int) -> Path:
    return Path(str(db.resolve()) + ".logs") / f"{job_id}.log"
