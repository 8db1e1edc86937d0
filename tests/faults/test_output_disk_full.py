"""Jobs' output on a real full file system: the jobs' log folder (`<db>.logs`) is a
small tmpfs, full of blocks or out of inodes, while the database stays writable.

What a user relies on (docs/jobs.md, "Output"): output that cannot be written is dropped, with
a marker in the log where space allows and a warning in the daemon's log; the job's
own outcome stands. A job that did its work runs once and succeeds, a Python job's
print() never raises for it, and the daemon and its workers keep going.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest

from tests.faults.mounts import tmpfs
from tests.helpers import PYTHON, Daemon, cli, wait_for
from tests.integration.conftest import job, submit, write_config, write_module

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root"),
    pytest.mark.sqlite_only("the full folder is the one beside the database file"),
]

LINE = "x" * 99 + "\n"  # a printed line: 100 bytes

OUT_JOBS = """
import os
import sys
import time

from jobrunner import progress

HERE = os.path.dirname(os.path.abspath(__file__))
LINE = "x" * 99


def _ran(tag):
    with open(os.path.join(HERE, "ran"), "a") as f:
        f.write(tag + "\\n")


def _wait_for(name):
    path = os.path.join(HERE, name)
    for _ in range(6000):  # up to 60 s
        if os.path.exists(path):
            return
        time.sleep(0.01)
    raise TimeoutError(name)


def shout(tag, lines):
    _ran(tag)
    for i in range(lines):
        print(f"{tag} out {i} {LINE}")
        print(f"{tag} err {i} {LINE}", file=sys.stderr)
    return tag


def gap(tag, lines, as_command=False):
    # before the disk fills, while it is full, after it has room again
    _ran(tag)
    print("before", flush=True)
    _wait_for(tag + ".full")
    for _ in range(lines):
        print(LINE, flush=True)
    if as_command:  # once the worker has taken all the lines above
        print("::progress 0.5 printed", flush=True)
    else:
        progress(0.5, "printed")
    _wait_for(tag + ".freed")
    print("after", flush=True)
    return tag


if __name__ == "__main__":  # as a command: python3 outjobs.py gap|shout TAG LINES
    if sys.argv[1] == "gap":
        gap(sys.argv[2], int(sys.argv[3]), as_command=True)
    else:
        shout(sys.argv[2], int(sys.argv[3]))
"""


def fill_blocks(path: Path) -> None:
    """Write to `path` until the file system has no block left."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0")


def fill_inodes(folder: Path) -> list[Path]:
    """Create empty files in `folder` until the file system has no inode left."""
    made: list[Path] = []
    for i in range(100_000):
        path = folder / f"filler{i}"
        try:
            path.touch()
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
            return made
        made.append(path)
    raise AssertionError("the file system never ran out of inodes")


def ran(workdir: Path) -> list[str]:
    path = workdir / "ran"
    return path.read_text().split() if path.exists() else []


def logs(workdir: Path, db: Path, job_id: int) -> str:
    res = cli(workdir, db, "logs", str(job_id))
    assert res.code == 0, res.err
    return res.out


def assert_succeeded_once(workdir: Path, db: Path, job_id: int, result: object) -> None:
    record = job(workdir, db, job_id)
    outcomes = [a["outcome"] for a in record["attempt_history"]]
    assert (record["state"], outcomes, record["result"]) == ("succeeded", ["succeeded"], result), (
        record
    )


def dropped_warning(d: Daemon, job_id: int) -> re.Match[str]:
    """The daemon's warning that the job's output was cut, once its end is recorded."""
    pattern = re.compile(
        rf'WARNING log job={job_id} attempt=1 message="(\d+) bytes of output dropped: ([^"]*)"'
    )
    return wait_for(lambda: pattern.search(d.log()), timeout=10, what=f"job {job_id}'s warning")


def wait_ended(workdir: Path, db: Path, *ids: int) -> None:
    for job_id in ids:
        cli(workdir, db, "wait", str(job_id), "--timeout", "30s")


def ended(workdir: Path, db: Path, job_id: int) -> bool:
    return job(workdir, db, job_id)["state"] not in ("queued", "running", "retrying")


def command(tag: str, task: str = "shout", lines: int = 500) -> list[str]:
    return ["--cmd", "--", PYTHON, "outjobs.py", task, tag, str(lines)]


def shouted(tag: str, lines: int) -> list[str]:
    """What `shout` prints, line by line (stdout and stderr)."""
    return [f"{tag} {stream} {i} {LINE}" for i in range(lines) for stream in ("out", "err")]


def test_jobs_printing_into_a_full_disk_run_once_and_succeed(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    """The disk is full before the daemon starts: its workers start anyway, and jobs
    of every kind that print a lot (to stdout and stderr) succeed on their first run."""
    write_config(workdir, workers="2")
    write_module(workdir, "outjobs", OUT_JOBS)
    with tmpfs(workdir / "jobs.db.logs", "size=8m") as logs_dir:
        fill_blocks(logs_dir / "filler")
        d = Daemon(workdir, db)
        daemons.append(d)
        once = ("--retries", "0")
        py = submit(workdir, db, *once, "outjobs:shout", "--args", '["py", 500]')
        limited = submit(
            workdir, db, *once, "--nice", "1", "outjobs:shout", "--args", '["lim", 500]'
        )
        cmd = submit(workdir, db, *once, *command("cmd"))
        wait_ended(workdir, db, py, limited, cmd)

        assert_succeeded_once(workdir, db, py, "py")
        assert_succeeded_once(workdir, db, limited, "lim")
        assert_succeeded_once(workdir, db, cmd, {"exit_code": 0})
        assert sorted(ran(workdir)) == ["cmd", "lim", "py"]  # each ran exactly once
        for job_id, tag in ((py, "py"), (limited, "lim"), (cmd, "cmd")):
            count, reason = dropped_warning(d, job_id).groups()
            assert int(count) == len("".join(shouted(tag, 500))), tag  # not a byte fit
            assert "No space left on device" in reason, reason

        (logs_dir / "filler").unlink()  # room again: the same workers keep output again
        tags = ["again0", "again1", "again-cmd"]
        after = [submit(workdir, db, "outjobs:shout", "--args", f'["{t}", 1]') for t in tags[:2]]
        after.append(submit(workdir, db, *command(tags[2], lines=1)))
        wait_ended(workdir, db, *after)
        for job_id, tag in zip(after, tags, strict=True):
            assert job(workdir, db, job_id)["state"] == "succeeded"
            log = logs(workdir, db, job_id)
            assert sorted(log.splitlines(keepends=True)) == sorted(shouted(tag, 1)), log
        assert d.proc.poll() is None
        assert d.stop() == 0
    assert "Traceback" not in d.log(), d.log()
    assert "worker exited" not in d.log(), d.log()


@pytest.mark.parametrize("kind", ["python", "command"])
def test_the_gap_is_marked_where_output_resumed(
    workdir: Path, db: Path, daemons: list[Daemon], kind: str
) -> None:
    """The disk fills while the job prints and frees up before it is done: the log
    holds what fit, a marker with the number of bytes dropped, and what came after."""
    write_config(workdir, workers="1")
    write_module(workdir, "outjobs", OUT_JOBS)
    lines = 1000
    with tmpfs(workdir / "jobs.db.logs", "size=8m") as logs_dir:
        d = Daemon(workdir, db)
        daemons.append(d)
        if kind == "python":
            task = ("outjobs:gap", "--args", f'["g", {lines}]')
        else:
            task = tuple(command("g", "gap", lines))
        job_id = submit(workdir, db, "--retries", "0", *task)
        wait_for(lambda: logs(workdir, db, job_id) == "before\n", timeout=20, what="before")
        fill_blocks(logs_dir / "filler")
        (workdir / "g.full").touch()
        wait_for(
            lambda: job(workdir, db, job_id)["progress"] == 0.5 or ended(workdir, db, job_id),
            timeout=20,
            what="the lines printed",
        )
        (logs_dir / "filler").unlink()
        (workdir / "g.freed").touch()
        wait_ended(workdir, db, job_id)

        assert_succeeded_once(workdir, db, job_id, "g" if kind == "python" else {"exit_code": 0})
        count, reason = dropped_warning(d, job_id).groups()
        assert reason == "No space left on device"
        log = logs(workdir, db, job_id)
        assert log.startswith("before\n") and log.endswith("after\n"), log
        kept, marker, rest = log[len("before\n") :].partition("[jobrunner: ")
        assert rest == f"{count} bytes of output dropped: No space left on device]\nafter\n"
        printed = LINE * lines
        if not printed.startswith(kept):  # cut within a line: the marker got a line of its own
            assert kept.endswith("\n") and not kept.endswith("\n\n"), kept[-200:]
            kept = kept[:-1]
        assert printed.startswith(kept)
        assert int(count) == len(printed) - len(kept) > 0
        assert d.stop() == 0
    assert "Traceback" not in d.log(), d.log()


def test_jobs_run_without_a_log_when_none_can_be_created(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    """No inode left: neither a worker's spool nor a command's log can be created. The
    jobs run anyway, their output dropped and reported; once files can be created
    again, the next jobs have their logs."""
    write_config(workdir, workers="1")
    write_module(workdir, "outjobs", OUT_JOBS)
    with tmpfs(workdir / "jobs.db.logs", "size=8m,nr_inodes=64") as logs_dir:
        fillers = fill_inodes(logs_dir)
        d = Daemon(workdir, db)
        daemons.append(d)
        py = submit(workdir, db, "--retries", "0", "outjobs:shout", "--args", '["py", 5]')
        cmd = submit(workdir, db, "--retries", "0", *command("cmd", lines=5))
        wait_ended(workdir, db, py, cmd)
        assert_succeeded_once(workdir, db, py, "py")
        assert_succeeded_once(workdir, db, cmd, {"exit_code": 0})
        for job_id, tag in ((py, "py"), (cmd, "cmd")):
            count, reason = dropped_warning(d, job_id).groups()
            assert int(count) == len("".join(shouted(tag, 5)))
            assert reason == "no log (No space left on device)"
            assert logs(workdir, db, job_id) == ""

        for path in fillers:
            path.unlink()
        after = submit(workdir, db, "outjobs:shout", "--args", '["later", 1]')
        wait_ended(workdir, db, after)
        log = logs(workdir, db, after)
        assert sorted(log.splitlines(keepends=True)) == sorted(shouted("later", 1)), log
        assert d.stop() == 0
    assert "Traceback" not in d.log(), d.log()
