"""Data that once took the queue down: JSON nested too deep, text that is not valid
Unicode, a result of a class defined inside the task. One row or one job must never
stop a daemon or a command; its neighbours go on."""

from __future__ import annotations

import json
from pathlib import Path

import apsw
import pytest

from jobrunner.jsonutil import MAX_DEPTH
from tests.helpers import PYTHON, Daemon, cli, env_for
from tests.integration.conftest import job, submit, wait_counts, write_config, write_module

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends

POISON_TASKS = """
import os

import jobrunner


def ok(x=None):
    return x


def bad_name():
    return os.fsdecode(b"report-\\xff.csv")  # a real non-UTF-8 file name


def bad_error():
    raise ValueError("cannot open " + os.fsdecode(b"report-\\xff.csv"))


def bad_progress():
    jobrunner.progress(0.5, "reading " + os.fsdecode(b"report-\\xff.csv"))
    return "done"


def bad_key():
    return {os.fsdecode(b"\\xfe"): [os.fsdecode(b"\\xff"), "\\ud800"]}


def local_class():
    class Local(dict):  # pickling an instance fails; its JSON is plain
        pass

    return Local(a=1)
"""


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def poison(workdir: Path) -> Path:
    write_config(workdir, workers="1")
    return write_module(workdir, "poison", POISON_TASKS)


def _nothing_written(workdir: Path, db: Path) -> None:
    if db.exists():
        listed = cli(workdir, db, "list", "--json")
        assert listed.code == 0, listed.err
        assert listed.json() == []


@pytest.mark.sqlite_only("checks that no database file was created")
def test_args_nested_too_deep_are_refused_on_every_way_in(
    workdir: Path, db: Path, poison: Path
) -> None:
    deep = nested(MAX_DEPTH)  # one more level inside an array or an object: too deep
    for argv in (
        ("submit", "poison:ok", "--args", f"[{deep}]"),
        ("submit", "poison:ok", "--kwargs", json.dumps({"a": json.loads(deep)})),
        ("submit", "--cmd", "--args", f"[{deep}]", "--", "true"),
    ):
        res = cli(workdir, db, *argv)
        assert res.code == 2, (argv, res.code, res.err)
        assert res.err.count("\n") == 1, res.err
        assert f"levels deep; at most {MAX_DEPTH} are allowed" in res.err, res.err
    lines = workdir / "jobs.jsonl"
    lines.write_text(
        json.dumps({"task": "poison:ok", "args": ["fine"]})
        + "\n"
        + json.dumps({"task": "poison:ok", "args": json.loads(f"[{deep}]")})
        + "\n"
    )
    res = cli(workdir, db, "submit", "--file", str(lines))
    assert res.code == 2 and "jobs.jsonl:2:" in res.err and "levels deep" in res.err, res.err
    _nothing_written(workdir, db)

    # The Python API refuses them too, single or in bulk.
    code = (
        "import json\n"
        "from jobrunner import Client\n"
        "from jobrunner.errors import UsageError\n"
        f"deep = json.loads({deep!r})\n"
        "c = Client()\n"
        "for call in (lambda: c.submit('poison:ok', [deep]),\n"
        "             lambda: c.submit_many('poison:ok', [['fine'], [deep]])):\n"
        "    try:\n"
        "        call()\n"
        "    except UsageError as exc:\n"
        "        print('refused:', exc)\n"
    )
    import subprocess

    out = subprocess.run(
        [PYTHON, "-c", code], cwd=workdir, env=env_for(workdir, db), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("refused: args: nested") == 2, out.stdout
    _nothing_written(workdir, db)

    # As deep as allowed is fine.
    res = cli(workdir, db, "submit", "poison:ok", "--args", f"[{nested(MAX_DEPTH - 1)}]")
    assert res.code == 0, res.err
    res = cli(workdir, db, "submit", "poison:ok", "--args", f"[{nested(MAX_DEPTH)}]")
    assert res.code == 2, res.err
    res = cli(workdir, db, "submit", "poison:ok", "--args", f"[{nested(MAX_DEPTH - 1)}]")
    assert res.code == 0, res.err


def _plant_unreadable_jobs(db: Path, rows: list[tuple[str, str, float]]) -> list[int]:
    """Rows an older jobrunner (or a hand edit) could have stored: (state, args, run_at)."""
    conn = apsw.Connection(str(db))
    ids = []
    for state, args, run_at in rows:
        conn.execute(
            "INSERT INTO jobs (state, task, args, kwargs, queue, priority, max_attempts, "
            "retries, backoff, created_at, run_at) "
            "VALUES (?, 'poison:ok', ?, '{}', 'default', 5, 4, 3, 0.1, 0, ?)",
            (state, args, run_at),
        )
        ids.append(conn.last_insert_rowid())
    conn.close()
    return ids


@pytest.mark.sqlite_only("writes a damaged row into the file with apsw")
def test_a_stored_row_that_cannot_be_read_fails_alone(
    workdir: Path, db: Path, poison: Path, daemons: list[Daemon]
) -> None:
    """A row nested thousands deep (no reader can decode it): every command still works
    on it, and the daemon fails that job once, for good, and runs its neighbours."""
    before = submit(workdir, db, "poison:ok", "--args", '["before"]')
    bad, later_bad = _plant_unreadable_jobs(
        db, [("queued", f"[{nested(5000)}]", 0.0), ("scheduled", "not json", 4e9)]
    )
    after = submit(workdir, db, "poison:ok", "--args", '["after"]')

    listed = cli(workdir, db, "list", "--json")
    assert listed.code == 0, listed.err
    assert {j["id"] for j in listed.json()} == {before, bad, later_bad, after}
    shown = cli(workdir, db, "status", str(bad))
    assert shown.code == 0 and "nested too deep" in shown.out, shown.out + shown.err
    record = job(workdir, db, later_bad)
    assert record["args"] == [] and "args: " in record["damage"]
    cancelled = cli(workdir, db, "cancel", str(later_bad))
    assert cancelled.code == 0, cancelled.err

    daemon = Daemon(workdir, db)
    daemons.append(daemon)
    wait_counts(workdir, db, 30, succeeded=2, dead=1, cancelled=1)
    dead = job(workdir, db, bad)
    assert dead["error"].startswith("cannot run: args: nested too deep"), dead["error"]
    assert [a["outcome"] for a in dead["attempt_history"]] == ["failed"]  # not retried
    assert job(workdir, db, before)["result"] == "before"
    assert job(workdir, db, after)["result"] == "after"
    assert daemon.proc.poll() is None, daemon.log()
    assert "RecursionError" not in daemon.log()


def test_text_a_job_makes_that_is_not_unicode_never_stops_the_daemon(
    workdir: Path, db: Path, poison: Path, daemons: list[Daemon]
) -> None:
    """Lone surrogates (os.fsdecode of a non-UTF-8 name) in a result, an error or a
    progress message are stored escaped; the jobs in flight beside them are unharmed."""
    ids = {
        name: submit(workdir, db, f"poison:{name}", "--retries", "0")
        for name in ("bad_name", "bad_error", "bad_progress", "bad_key")
    }
    neighbours = [submit(workdir, db, "poison:ok", "--args", f"[{n}]") for n in range(20)]
    daemon = Daemon(workdir, db)
    daemons.append(daemon)
    wait_counts(workdir, db, 30, succeeded=23, dead=1)

    assert job(workdir, db, ids["bad_name"])["result"] == "report-\\xff.csv"
    assert job(workdir, db, ids["bad_key"])["result"] == {"\\xfe": ["\\xff", "\\ud800"]}
    failed = job(workdir, db, ids["bad_error"])
    assert failed["error"] == "ValueError: cannot open report-\\xff.csv"
    assert "report-\\xff.csv" in failed["attempt_history"][0]["traceback"]
    assert job(workdir, db, ids["bad_progress"])["result"] == "done"
    for n, job_id in enumerate(neighbours):
        record = job(workdir, db, job_id)
        assert (record["result"], record["attempts"]) == (n, 1)
    assert daemon.proc.poll() is None, daemon.log()
    assert "UnicodeEncodeError" not in daemon.log()
    res = cli(workdir, db, "wait", str(ids["bad_name"]))
    assert res.code == 0 and json.loads(res.out) == "report-\\xff.csv"


def test_a_result_of_a_class_defined_in_the_task_is_its_json(
    workdir: Path, db: Path, poison: Path, daemons: list[Daemon]
) -> None:
    local = submit(workdir, db, "poison:local_class", "--retries", "2")
    after = submit(workdir, db, "poison:ok", "--args", '["after"]')
    daemon = Daemon(workdir, db)
    daemons.append(daemon)
    wait_counts(workdir, db, 30, succeeded=2)
    record = job(workdir, db, local)
    assert record["result"] == {"a": 1}
    assert [a["outcome"] for a in record["attempt_history"]] == ["succeeded"]
    assert job(workdir, db, after)["result"] == "after"
    assert "pickle" not in daemon.log()
    assert daemon.proc.poll() is None, daemon.log()
