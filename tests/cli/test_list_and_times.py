"""`list` (several states, a task, --all, what was left out, when and took), times in
human output (local as TZ says, or --utc) and in JSON (epoch fields, durations as numbers),
the 80x24 layout on a terminal, `submit --file --json`, and a schedule's job in `status`."""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from jobrunner.lifecycle import Outcome, State
from jobrunner.models import AttemptEnd, ClaimRequest, JobInsert
from jobrunner.store import open_store
from tests.cli.support import (
    RECORD_KEYS,
    TIME_KEYS,
    assert_one_line_error,
    parse_iso,
    record,
    records,
    submit,
)
from tests.helpers import PYTHON, cli, env_for

pytestmark = pytest.mark.usefixtures("tasks")

NAMED = '[tasks.hello]\nfunction = "tasks:ok"\n'
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def end_jobs(db: Path, count: int, took: float = 2.5, error: str | None = None) -> None:
    """Run the `count` best queued jobs to their end as a daemon would record it: each
    attempt took `took` seconds; with an `error` the jobs end dead."""
    store = open_store(str(db))
    try:
        now = dt.datetime.now(dt.UTC).timestamp()
        claimed = store.job_claim(ClaimRequest("test:1:aaaa", now, count))
        state, outcome = (
            (State.DEAD, Outcome.FAILED) if error else (State.SUCCEEDED, Outcome.SUCCEEDED)
        )
        ends = [
            AttemptEnd(
                j.id,
                j.attempts,
                outcome,
                state,
                result_json=None if error else "1",
                error=error,
                started_at=now - took,
                finished_at=now,
            )
            for j in claimed
        ]
        assert store.job_end_many("test:1:aaaa", ends) == [True] * count
    finally:
        store.close()


def claim_one(db: Path) -> None:
    store = open_store(str(db))
    try:
        now = dt.datetime.now(dt.UTC).timestamp()
        assert len(store.job_claim(ClaimRequest("test:1:aaaa", now, 1))) == 1
    finally:
        store.close()


def rows_by_id(out: str) -> dict[int, str]:
    return {int(ln.split()[0]): ln for ln in out.splitlines() if ln.strip()[:1].isdigit()}


# -- list -------------------------------------------------------------------------------


def test_list_says_when_jobs_were_left_out(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "submit", "--file", "-", input='{"task": "tasks:ok"}\n' * 3)
    ids = [int(i) for i in res.out.split()]
    res = cli(workdir, db, "list", "--limit", "2")
    assert res.code == 0, res.err
    assert list(rows_by_id(res.out)) == ids[:0:-1]
    assert (
        res.err == "jobrunner: the newest 2 jobs shown, more match; --limit N or --all for more\n"
    )
    res = cli(workdir, db, "list", "--json", "--limit", "2")
    assert [j["id"] for j in res.json()] == ids[:0:-1] and "more match" in res.err
    res = cli(workdir, db, "list", "--json", "--all")
    assert ([j["id"] for j in res.json()], res.err) == (ids[::-1], "")
    assert cli(workdir, db, "list", "--limit", "3").err == ""  # exactly as many as shown
    assert_one_line_error(cli(workdir, db, "list", "--all", "--limit", "2"), "--all")


def test_dlq_list_says_when_dead_jobs_were_left_out(workdir: Path, db: Path) -> None:
    store = open_store(str(db))
    ids = [r.id for r in store.job_insert_many([JobInsert(task="t:f", retries=0)] * 3, 1e9)]
    claimed = store.job_claim(ClaimRequest("d", 1e9, 3, None, {}))
    ends = [AttemptEnd(j.id, 1, Outcome.FAILED, State.DEAD, error="boom") for j in claimed]
    assert store.job_end_many("d", ends) == [True] * 3
    store.close()
    res = cli(workdir, db, "dlq", "list", "--json", "--limit", "2")
    assert [j["id"] for j in res.json()] == ids[:0:-1] and "more match" in res.err
    res = cli(workdir, db, "dlq", "list", "--json", "--all")
    assert ([j["id"] for j in res.json()], res.err) == (ids[::-1], "")


def test_list_takes_several_states_and_a_task(workdir: Path, db: Path) -> None:
    (workdir / "jobrunner.toml").write_text(NAMED)
    lines = [
        '{"task": "tasks:ok"}',
        '{"task": "tasks:ok", "delay": "1h"}',
        '{"task": "tasks:quiet"}',
        '{"task": "tasks:quiet"}',
        '{"task": "hello"}',
    ]
    res = cli(workdir, db, "submit", "--file", "-", input="\n".join(lines) + "\n")
    ok, later, quiet, gone, hello = (int(i) for i in res.out.split())
    assert cli(workdir, db, "cancel", str(gone)).code == 0

    def ids(*args: str) -> list[int]:
        return [j["id"] for j in records(workdir, db, *args)]

    assert ids("--state", "scheduled", "--state", "cancelled") == [gone, later]
    assert ids("--state", "scheduled,cancelled", "--state", "queued") == [
        hello,
        gone,
        quiet,
        later,
        ok,
    ]
    assert ids("--task", "tasks:quiet") == [gone, quiet]
    assert ids("--task", "tasks:quiet", "--state", "queued") == [quiet]
    assert ids("--task", "hello") == [hello]  # a [tasks.NAME]
    assert ids("--task", "tasks:nope") == []
    assert_one_line_error(cli(workdir, db, "list", "--state", "queued,nope"), "'nope'", "state")


def test_list_shows_when_jobs_run_and_how_long_they_took(workdir: Path, db: Path) -> None:
    done = submit(workdir, db, "tasks:ok", "--priority", "9")  # claimed first
    running = submit(workdir, db, "tasks:ok", "--priority", "5")
    later = submit(workdir, db, "tasks:ok", "--delay", "1h")
    waiting = submit(workdir, db, "tasks:ok")
    end_jobs(db, 1, took=2.5)
    claim_one(db)

    res = cli(workdir, db, "list")
    assert res.code == 0, res.err
    assert re.fullmatch(
        r"id\s+state\s+task\s+queue\s+prio\s+tries\s+when\s+took\s+.*", res.out.splitlines()[0]
    )
    rows = rows_by_id(res.out)
    assert re.search(r"scheduled .* in 59m\d\ds\s*$", rows[later]), rows[later]  # its run_at
    # (an age in ms on an idle machine; in seconds on a loaded one, and either is right)
    age = r"\d+(ms|(\.\d)?s)"
    assert re.search(rf"queued .* {age} ago\s*$", rows[waiting]), rows[waiting]  # submitted
    assert re.search(r"succeeded .* ago +2\.5s\s*$", rows[done]), rows[done]  # finished, took
    assert re.search(rf"running .* ago +{age}\s*$", rows[running]), rows[running]


# -- times --------------------------------------------------------------------------------


def test_human_times_are_local_as_tz_says_unless_utc(workdir: Path, db: Path) -> None:
    job_id = submit(workdir, db, "tasks:ok")
    env = env_for(workdir, db)
    env["TZ"] = "IST-5:30"  # POSIX form: +05:30 without a time zone database
    local = cli(workdir, db, "status", str(job_id), env=env)
    assert re.search(r"created\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+05:30 \(", local.out), local.out
    utc = cli(workdir, db, "status", str(job_id), "--utc", env=env)
    assert re.search(r"created\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(", utc.out), utc.out
    stamp = re.compile(r"\d\d:\d\d:\d\d")
    in_local = dt.datetime.strptime(stamp.findall(local.out)[0], "%H:%M:%S")
    in_utc = dt.datetime.strptime(stamp.findall(utc.out)[0], "%H:%M:%S")
    assert (in_local - in_utc) % dt.timedelta(days=1) == dt.timedelta(hours=5, minutes=30)
    assert record(workdir, db, job_id)["created_at"].endswith("Z")  # JSON: UTC, whatever TZ


def test_json_times_have_epoch_fields_and_durations_are_numbers(workdir: Path, db: Path) -> None:
    job_id = submit(workdir, db, "tasks:ok")
    end_jobs(db, 1, took=2.5)
    rec = record(workdir, db, job_id)
    assert set(rec) >= RECORD_KEYS
    for key in TIME_KEYS:
        if rec[key] is None:
            assert rec[f"{key}_epoch"] is None
        else:
            assert abs(parse_iso(rec[key]).timestamp() - rec[f"{key}_epoch"]) < 0.001, key
    assert rec["wall_seconds"] == 2.5 and rec["timeout"] is None
    (attempt,) = rec["attempt_history"]
    assert attempt["wall_seconds"] == 2.5
    assert attempt["finished_at_epoch"] - attempt["started_at_epoch"] == pytest.approx(2.5)
    (listed,) = records(workdir, db)
    assert listed["wall_seconds"] == 2.5 and listed["created_at_epoch"] == rec["created_at_epoch"]
    waiting = record(workdir, db, submit(workdir, db, "tasks:ok"))
    assert waiting["wall_seconds"] is None and waiting["finished_at_epoch"] is None


# -- 80 columns, and piped output ----------------------------------------------------------


def on_terminal(workdir: Path, db: Path, *args: str, cols: int = 80, rows: int = 24) -> str:
    """`jobrunner ARGS` with stdout on a pseudo-terminal of cols x rows; its text, plain."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = env_for(workdir, db)
    for name in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE"):
        env.pop(name, None)
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [PYTHON, "-m", "jobrunner", *args],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def test_list_and_status_fit_80_columns_on_a_terminal(workdir: Path, db: Path) -> None:
    long_task = "tasks:ok"
    for queue in ("default", "reports-for-the-finance-team"):
        submit(workdir, db, long_task, "--queue", queue)
    submit(workdir, db, "tasks:ok", "--delay", "1h")
    submit(workdir, db, "--cmd", "--", "sh", "-c", "echo a long command line that goes on " * 3)
    end_jobs(db, 1, error="ValueError: " + "something went wrong " * 10)
    end_jobs(db, 1)
    for args in (("list",), ("status",)):
        out = on_terminal(workdir, db, *args)
        lines = out.splitlines()
        assert lines and all(len(line) <= 80 for line in lines), out
        for state in ("scheduled", "succeeded", "dead"):  # never cut, nor wrapped
            assert re.search(rf"\b{state}\b", out), (state, out)
        assert "…" in out  # what does not fit is cut, on one line
    listed = cli(workdir, db, "list").out  # piped: whole and unpadded
    assert "something went wrong " * 9 in listed and "reports-for-the-finance-team" in listed
    assert all(line == line.rstrip() for line in listed.splitlines())


def test_top_fits_80_by_24_and_keeps_every_section(workdir: Path, db: Path) -> None:
    """Many queues, running jobs, failures and schedules: each section keeps its title and
    header and some rows, and says how many it shows."""
    from rich.console import Console

    from jobrunner.cli import top
    from jobrunner.config import load_config

    schedules = "".join(
        f'[[schedules]]\nname = "report-{n}"\ncron = "{n} 2 * * *"\ntask = "tasks:ok"\n'
        for n in range(8)
    )
    (workdir / "jobrunner.toml").write_text(schedules)
    lines = [f'{{"task": "tasks:ok", "queue": "q{n}"}}' for n in range(30)]
    res = cli(workdir, db, "submit", "--file", "-", input="\n".join(lines) + "\n")
    assert res.code == 0, res.err
    end_jobs(db, 8, error="ValueError: boom")
    store = open_store(str(db))
    try:
        now = dt.datetime.now(dt.UTC).timestamp()
        store.job_claim(ClaimRequest("test:1:aaaa", now, 12))
        config = load_config(workdir / "jobrunner.toml")
        snap = top.gather(store, config, top.NextFires(config), now)
    finally:
        store.close()
    snap.daemons_alive, snap.workers = 1, 1
    screen = io.StringIO()
    console = Console(file=screen, width=80, height=24, color_system=None, force_terminal=False)
    console.print(top.frame(snap, str(db), True, 80, 24))
    text = screen.getvalue()
    rows = text.splitlines()
    assert len(rows) <= 24 and all(len(row) <= 80 for row in rows), text
    assert "1 daemon, 1 worker " in rows[0], rows[0]
    (queues,) = [row for row in rows if row.startswith("Queues (")]
    assert re.fullmatch(r"Queues \(\d of 30\)\s*", queues), queues  # "all" is not a queue
    for title in ("Queues (", "Running (12), longest ", "Recent failures (", "Next schedules ("):
        (line,) = [row for row in rows if row.startswith(title)]
        index = rows.index(line)
        assert rows[index + 1].split()[0] in ("queue", "id", "name"), text
        assert rows[index + 3].strip(), text  # at least one row under the header's rule


# -- submit --file --json, --help, a schedule's job -----------------------------------------


def test_submit_file_json_prints_one_object_a_line(workdir: Path, db: Path) -> None:
    lines = '{"task": "tasks:ok", "key": "k1"}\n{"task": "tasks:ok"}\n'
    res = cli(workdir, db, "submit", "--file", "-", "--json", input=lines)
    assert res.code == 0, res.err
    import json

    first = [json.loads(line) for line in res.out.splitlines()]
    assert [r["created"] for r in first] == [True, True]
    again = cli(workdir, db, "submit", "--file", "-", "--json", input=lines)
    second = [json.loads(line) for line in again.out.splitlines()]
    assert second[0] == first[0] | {"created": False}  # the key matched: nothing written
    assert second[1]["created"] and second[1]["id"] > first[1]["id"]


def test_submit_help_says_how_many_retries_by_default(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "submit", "--help")
    assert res.code == 0, res.err
    assert re.search(
        r"--retries N\s+retries after the first attempt \(default 3, commands\s+too", res.out
    ), res.out


def test_status_of_a_schedules_job_names_it_and_a_manual_run(workdir: Path, db: Path) -> None:
    (workdir / "jobrunner.toml").write_text(
        '[[schedules]]\nname = "nightly"\ncron = "30 2 * * *"\ntask = "tasks:ok"\n'
    )
    res = cli(workdir, db, "schedules", "run", "nightly")
    assert res.code == 0, res.err
    job_id = int(res.out)
    out = cli(workdir, db, "status", job_id.__str__()).out
    assert re.search(r"^schedule\s+nightly \(a manual run\)$", out, re.M), out
    rec = record(workdir, db, job_id)
    assert (rec["schedule"], rec["manual"]) == ("nightly", True)
