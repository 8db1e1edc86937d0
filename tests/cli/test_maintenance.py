"""`backup`, the WAL in `status`, and `top`: real CLI subprocesses, real files, and a
real daemon for `top`."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from jobrunner.models import JobInsert
from jobrunner.store import open_store
from tests.cli.support import assert_one_line_error, db_files, record, records, submit
from tests.helpers import PYTHON, Daemon, cli, env_for, wait_for

WAL_WARN_BYTES = 64 << 20

TOP_TASKS = """\
import os
import time

from jobrunner import progress

HERE = os.path.dirname(os.path.abspath(__file__))


def busy():
    progress(0.4, "resizing images")
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(HERE, "go")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "done"


def broken():
    raise ValueError("the disk is on fire")


def ok():
    return 1
"""

TOP_CONFIG = """\
[daemon]
shutdown_grace = "5s"
kill_grace = "1s"

[[schedules]]
name = "new-year"
cron = "0 3 1 1 *"
task = "top_tasks:ok"

[[schedules]]
name = "solstice"
cron = "0 12 21 6 *"
task = "top_tasks:ok"
"""


# -- backup ------------------------------------------------------------------------------------


@pytest.mark.sqlite_only("backup copies the file; PostgreSQL's own tools back it up")
def test_backup_writes_a_copy_with_the_same_jobs(workdir: Path, db: Path, tasks: Path) -> None:
    ids = [submit(workdir, db, "tasks:ok", "--args", f"[{i}]") for i in range(3)]
    res = cli(workdir, db, "backup", "copy.db")
    assert res.code == 0, res.err
    copy = workdir / "copy.db"
    size = copy.stat().st_size
    assert res.out == (
        f"backed up to {copy} ({size / 1024:.1f} KiB, {size} bytes)\n"
        f"and the output of 0 jobs to {copy}.logs (0 bytes)\n"  # none has run
    )
    assert res.err == ""
    original = records(workdir, db)
    backed = records(workdir, copy)  # the copy, as JOBRUNNER_DB
    assert [r["id"] for r in backed] == sorted(ids, reverse=True)
    assert backed == original


@pytest.mark.sqlite_only("backup copies the file; PostgreSQL's own tools back it up")
def test_backup_refuses_an_existing_path(workdir: Path, db: Path, tasks: Path) -> None:
    submit(workdir, db, "tasks:ok")
    target = workdir / "taken.db"
    target.write_text("keep me")
    res = cli(workdir, db, "backup", str(target))
    assert_one_line_error(res, str(target), "already exists", code=2)
    assert target.read_text() == "keep me"
    # the database itself is an existing path too
    assert_one_line_error(cli(workdir, db, "backup", str(db)), "already exists", code=2)


@pytest.mark.sqlite_only("backup copies the file; PostgreSQL's own tools back it up")
def test_backup_into_a_missing_folder_is_one_line(workdir: Path, db: Path, tasks: Path) -> None:
    submit(workdir, db, "tasks:ok")
    res = cli(workdir, db, "backup", "nowhere/copy.db")
    assert_one_line_error(res, "nowhere/copy.db", "cannot create", code=2)


@pytest.mark.sqlite_only("backup copies the file; PostgreSQL's own tools back it up")
def test_backup_without_a_database_creates_nothing(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "backup", "copy.db")
    assert res.code != 0 and res.out == ""
    assert res.err.count("\n") == 1 and "Traceback" not in res.err
    assert not (workdir / "copy.db").exists()
    assert db_files(db) == []


def test_backup_needs_a_path(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "backup")
    assert res.code == 2 and "PATH" in res.err


# -- the WAL in status ---------------------------------------------------------------------------


@pytest.mark.sqlite_only("the write-ahead log is the file's")
def test_status_json_reports_the_wal(workdir: Path, db: Path, tasks: Path) -> None:
    submit(workdir, db, "tasks:ok")
    data = cli(workdir, db, "status", "--json").json()
    assert isinstance(data["wal_bytes"], int) and data["wal_bytes"] >= 0
    assert data["warnings"] == []
    human = cli(workdir, db, "status")
    assert human.code == 0 and "warning" not in human.out


@pytest.mark.sqlite_only("the write-ahead log is the file's")
def test_status_warns_about_a_wal_a_reader_holds_back(workdir: Path, db: Path, tasks: Path) -> None:
    submit(workdir, db, "tasks:ok")
    store = open_store(str(db))
    reader = apsw.Connection(str(db))
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM jobs").fetchall()  # a long read transaction
        blob = "x" * 65536
        for _ in range(3):  # ~70 MiB of WAL the reader's snapshot keeps from being reset
            store.job_insert_calls(JobInsert(task="tasks:ok"), [f'["{blob}"]'] * 360, time.time())
        wal = store.maintenance().wal_bytes()
        assert wal > WAL_WARN_BYTES
        data = cli(workdir, db, "status", "--json").json()
        assert data["wal_bytes"] >= WAL_WARN_BYTES
        (warning,) = data["warnings"]
        assert f"{db}-wal" in warning and "MiB" in warning and "reader" in warning
        human = cli(workdir, db, "status")
        assert human.code == 0
        assert "warning: the write-ahead log" in human.out
        reader.execute("COMMIT")
        assert not store.maintenance().checkpoint().busy  # what the daemon does every 30 s
        data = cli(workdir, db, "status", "--json").json()
        assert data["warnings"] == [] and data["wal_bytes"] < WAL_WARN_BYTES
    finally:
        if reader.in_transaction:
            reader.execute("COMMIT")
        reader.close()
        store.close()


# -- top ------------------------------------------------------------------------------------------


@pytest.fixture
def busy_daemon(workdir: Path, db: Path, daemons: list[Daemon]) -> Iterator[dict[str, int]]:
    """A daemon running `busy` (it reported 40 % and waits for ./go), after two failures."""
    (workdir / "top_tasks.py").write_text(TOP_TASKS)
    (workdir / "jobrunner.toml").write_text(TOP_CONFIG)
    jobs = {
        "broken": submit(workdir, db, "top_tasks:broken", "--retries", "0"),
        "broken2": submit(workdir, db, "top_tasks:broken", "--retries", "0", "--queue", "other"),
    }
    daemons.append(Daemon(workdir, db, "--workers", "2", "--queues", "default,other"))
    for name in ("broken", "broken2"):
        wait_for(lambda n=name: record(workdir, db, jobs[n])["state"] == "dead", what=name)
    jobs["busy"] = submit(workdir, db, "top_tasks:busy")
    wait_for(
        lambda: record(workdir, db, jobs["busy"])["progress"] == pytest.approx(0.4),
        timeout=30,
        what="progress reported",
    )
    try:
        yield jobs
    finally:
        (workdir / "go").touch()


def test_top_once_shows_every_section(workdir: Path, db: Path, busy_daemon: dict[str, int]) -> None:
    res = cli(workdir, db, "top", "--once")
    assert res.code == 0, res.err
    out = res.out
    for section in ("Queues", "Throughput", "Running (1)", "Recent failures", "Next schedules"):
        assert section in out, f"{section!r} missing:\n{out}"
    assert "1 daemon, 2 workers" in out
    lines = out.splitlines()
    # queues with counts by state
    assert any(ln.split()[:1] == ["other"] and "1" in ln.split() for ln in lines), out
    assert "2 finished in the last minute: 2 dead" in out
    # the running job with its progress bar, message and elapsed time
    (running,) = [
        ln for ln in lines if ln.split()[:2] == [str(busy_daemon["busy"]), "top_tasks:busy"]
    ]
    assert "[####------]  40%" in running and "resizing images" in running
    assert re.search(r"\s(\d+ms|\d+\.\ds|\d+m\d\ds)\s", running), running  # elapsed
    # failures with the last attempt's outcome and the cause
    for name in ("broken", "broken2"):
        (row,) = [ln for ln in lines if ln.split()[:2] == [str(busy_daemon[name]), "dead"]]
        assert "failed" in row and "ValueError: the disk is on fire" in row
    # schedules, soonest first
    assert out.index("new-year") > out.index("Next schedules")
    assert "0 3 1 1 *" in out and re.search(r" \d{4}-01-01 \d\d:\d\d ", out)  # local time


def test_top_once_without_a_daemon_or_jobs(workdir: Path, db: Path, tasks: Path) -> None:
    submit(workdir, db, "tasks:ok", "--delay", "1h")
    res = cli(workdir, db, "top", "--once")
    assert res.code == 0, res.err
    assert "no daemon running" in res.out
    assert "Running (0)" in res.out and "none" in res.out
    assert "no [[schedules]] in the config" in res.out


def test_top_refuses_bad_input(workdir: Path, db: Path, tasks: Path) -> None:
    res = cli(workdir, db, "top", "--once")
    assert res.code == 2 and "no jobrunner database" in res.err and db_files(db) == []
    submit(workdir, db, "tasks:ok")
    assert_one_line_error(cli(workdir, db, "top", "--interval", "0"), "--interval", code=2)
    assert_one_line_error(cli(workdir, db, "top", "--interval", "soon"), "--interval", code=2)


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while marker not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} within {timeout}s; got {got[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pty's master reads EIO once the child side closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"output ended before {marker!r}; got {got[-500:]!r}")
            got += chunk
    return got


@contextlib.contextmanager
def started(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_top_piped_redraws_and_ctrl_c_quits(workdir: Path, db: Path, tasks: Path) -> None:
    submit(workdir, db, "tasks:ok")
    proc = subprocess.Popen(
        [PYTHON, "-m", "jobrunner", "top", "--interval", "200ms"],
        cwd=workdir,
        env=env_for(workdir, db),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with started(proc):
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        first = _read_until(fd, b"Next schedules", 30)
        _read_until(fd, b"Next schedules", 30)  # a second frame: it keeps going
        assert b"Queues" in first and b"\x1b[" not in first  # plain text into a pipe
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]


def test_top_in_a_terminal_quits_on_q_and_restores_it(workdir: Path, db: Path, tasks: Path) -> None:
    submit(workdir, db, "tasks:ok")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    before = termios.tcgetattr(slave)
    env = {**env_for(workdir, db), "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    proc = subprocess.Popen(
        [PYTHON, "-m", "jobrunner", "top"],
        cwd=workdir,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    try:
        with started(proc):
            screen = _read_until(master, b"Next schedules", 30)
            assert b"q quits" in screen and b"\x1b[?1049h" in screen  # the alternate screen
            mode = termios.tcgetattr(slave)
            assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO  # cbreak
            _read_until(master, b"Next schedules", 30)  # redrawn
            os.write(master, b"q")
            assert proc.wait(10) == 0
        after = termios.tcgetattr(slave)
        assert after[3] & termios.ICANON and after[3] & termios.ECHO
        assert after == before
    finally:
        os.close(slave)
        os.close(master)


def test_top_help_mentions_quitting(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "top", "--help")
    assert res.code == 0
    assert "--once" in res.out and "q or Ctrl-C quits" in textwrap.dedent(res.out)


@pytest.mark.sqlite_only("backup copies the file; PostgreSQL's own tools back it up")
def test_a_backup_restored_as_deploying_md_says_brings_jobs_and_their_output_back(
    workdir: Path, db: Path, tasks: Path
) -> None:
    """docs/deploying.md, "Backups and restore": stop, put the copy and its .logs folder
    in place, start. Every job is back, with the output its attempts printed."""
    (workdir / "printer.py").write_text("def say(word):\n    print('said', word)\n")
    ids = [submit(workdir, db, "printer:say", "--args", f'["w{i}"]') for i in range(3)]
    daemon = Daemon(workdir, db)
    try:
        for job_id in ids:
            assert cli(workdir, db, "wait", str(job_id)).code == 0
        res = cli(workdir, db, "backup", "saved.db")  # while the daemon runs
        assert res.code == 0, res.err
        assert f"and the output of 3 jobs to {workdir / 'saved.db'}.logs" in res.out
    finally:
        daemon.stop()
    for name in db_files(db):  # the disk is lost: the file, its logs, all beside it
        lost = db.parent / name
        shutil.rmtree(lost) if lost.is_dir() else lost.unlink()

    os.link(workdir / "saved.db", db)  # the restore: cp saved.db jobs.db; cp -a saved.db.logs ...
    shutil.copytree(workdir / "saved.db.logs", f"{db}.logs")

    assert cli(workdir, db, "check").out.strip() == "ok"
    for n, job_id in enumerate(ids):
        assert record(workdir, db, job_id)["state"] == "succeeded"
        assert f"said w{n}" in cli(workdir, db, "logs", str(job_id)).out


@pytest.mark.sqlite_only("backup copies the file; PostgreSQL's own tools back it up")
def test_backup_refuses_when_its_logs_folder_exists_and_writes_nothing(
    workdir: Path, db: Path, tasks: Path
) -> None:
    submit(workdir, db, "tasks:ok")
    (workdir / "copy.db.logs").mkdir()
    res = cli(workdir, db, "backup", "copy.db")
    assert_one_line_error(res, "copy.db.logs", "already exists", code=2)
    assert not (workdir / "copy.db").exists()
    assert cli(workdir, db, "backup", "copy.db", "--no-logs").code == 0
    assert list((workdir / "copy.db.logs").iterdir()) == []
