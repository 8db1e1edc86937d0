"""The worker's log spool, on real files: silent jobs leave nothing, a job's output
becomes its log, a reader sees one stream across the end of an attempt, and a dead
worker's spool is salvaged into its job's log."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from jobrunner.worker import spool as spool_module
from jobrunner.worker.spool import (
    LogSpool,
    keep_tail,
    publish,
    read_output,
    running_dir,
    salvage,
    salvage_orphans,
    spool_name,
)

CAP = 1 << 20
ATTEMPT = 1


@pytest.fixture
def log_dir(tmp_path: Path) -> str:
    path = tmp_path / "jobs.db.logs"
    path.mkdir()
    return str(path)


def log_of(log_dir: str, job_id: int) -> bytes | None:
    path = Path(log_dir, f"{job_id}.log")
    return path.read_bytes() if path.exists() else None


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_silent_job_leaves_no_log_and_the_spool_is_reused(log_dir: str) -> None:
    spool = LogSpool(log_dir, CAP)
    fd = spool.begin(7, 1)
    inode = os.fstat(fd).st_ino
    spool.end(7, ATTEMPT, left_children=False)
    assert log_of(log_dir, 7) is None
    assert os.listdir(log_dir) == [".running"]
    assert os.fstat(spool.begin(8, 1)).st_ino == inode  # no file was created for job 8


def test_output_becomes_the_jobs_log_and_late_writes_follow_it(log_dir: str) -> None:
    spool = LogSpool(log_dir, CAP)
    fd = spool.begin(7, 1)
    os.write(fd, b"hello\n")
    left_behind = os.dup(fd)  # as a process the job started would hold it
    spool.end(7, ATTEMPT, left_children=True)
    try:
        os.write(left_behind, b"late\n")
    finally:
        os.close(left_behind)
    fd = spool.begin(8, 1)
    os.write(fd, b"job eight\n")
    spool.end(8, ATTEMPT, left_children=False)
    assert log_of(log_dir, 7) == b"hello\nlate\n"  # the late line is job 7's, not job 8's
    assert log_of(log_dir, 8) == b"job eight\n"


def test_a_leftover_process_of_a_silent_job_writes_into_that_jobs_log(log_dir: str) -> None:
    spool = LogSpool(log_dir, CAP)
    fd = spool.begin(7, 1)
    left_behind = os.dup(fd)
    spool.end(7, ATTEMPT, left_children=True)
    next_fd = spool.begin(8, 1)
    assert os.fstat(next_fd).st_ino != os.fstat(left_behind).st_ino
    os.write(left_behind, b"stray\n")
    os.close(left_behind)
    spool.end(8, ATTEMPT, left_children=False)
    assert log_of(log_dir, 8) is None
    assert log_of(log_dir, 7) == b"stray\n"


def test_a_later_attempt_is_appended_under_a_header(log_dir: str) -> None:
    spool = LogSpool(log_dir, CAP)
    os.write(spool.begin(7, 1), b"first try\n")
    spool.end(7, 1, left_children=False)
    os.write(spool.begin(7, 2), b"second try\n")
    spool.end(7, 2, left_children=False)
    spool.begin(7, 3)  # prints nothing: the header still says it ran
    spool.end(7, 3, left_children=False)
    assert log_of(log_dir, 7) == (b"first try\n--- attempt 2 ---\nsecond try\n--- attempt 3 ---\n")


def test_a_reader_sees_one_stream_across_the_end_of_each_attempt(log_dir: str) -> None:
    spool = LogSpool(log_dir, CAP)
    seen = b""

    def poll() -> None:
        nonlocal seen
        seen += read_output(log_dir, 7, len(seen))

    fd = spool.begin(7, 1)
    os.write(fd, b"one\n")
    poll()
    assert seen == b"one\n"  # read from the running attempt's spool
    os.write(fd, b"two\n")
    spool.end(7, ATTEMPT, left_children=False)
    poll()
    fd = spool.begin(7, 2)
    os.write(fd, b"three\n")
    poll()
    spool.begin(9, 1)  # another job's output is never mixed in
    assert read_output(log_dir, 7, len(seen)) == b""
    spool.end(9, ATTEMPT, left_children=False)
    assert seen == b"one\ntwo\n--- attempt 2 ---\nthree\n"


@pytest.mark.parametrize("earlier", [b"", b"attempt one\n"], ids=["linked", "appended"])
def test_a_reader_never_reads_an_attempt_twice_while_it_ends(
    log_dir: str, earlier: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that has read the whole spool and looks again just after end() made it
    the log (or appended it to the log) must find nothing new, not the spool again."""
    if earlier:
        Path(log_dir, "7.log").write_bytes(earlier)
    attempt = 2 if earlier else 1
    spool = LogSpool(log_dir, CAP)
    os.write(spool.begin(7, attempt), b"tick\n")
    seen = b""
    while chunk := read_output(log_dir, 7, len(seen)):  # the log, then the spool
        seen += chunk
    assert seen == earlier + (b"--- attempt 2 ---\n" if earlier else b"") + b"tick\n"
    looked: list[bytes] = []

    def publish_then_look(*args: object) -> bool:
        linked = real_publish(*args)  # type: ignore[arg-type]
        looked.append(read_output(log_dir, 7, len(seen)))  # the log grew, the mark stays
        return linked

    real_publish = spool_module.publish
    monkeypatch.setattr(spool_module, "publish", publish_then_look)
    spool.end(7, attempt, left_children=False)
    assert looked == [b""]
    assert read_output(log_dir, 7, len(seen)) == b""
    assert log_of(log_dir, 7) == seen


def test_a_log_over_the_cap_keeps_its_end(log_dir: str) -> None:
    spool = LogSpool(log_dir, 100)
    os.write(spool.begin(7, 1), b"x" * 500 + b"the error\n")
    spool.end(7, ATTEMPT, left_children=False)
    log = log_of(log_dir, 7)
    assert log is not None
    assert log.startswith(b"[jobrunner: 410 earlier bytes of output dropped]\n")
    assert log.endswith(b"x" * 90 + b"the error\n")


def test_a_dead_workers_spool_is_salvaged_into_its_jobs_log(log_dir: str) -> None:
    pid = dead_pid()
    folder = Path(running_dir(log_dir))
    folder.mkdir()
    (folder / f"{spool_name(pid)}.out").write_bytes(b"printed before it died\n")
    (folder / f"{spool_name(pid)}.job").write_bytes(b"42 1".ljust(40))
    alive = os.getpid()
    (folder / f"{spool_name(alive)}.out").write_bytes(b"still running\n")
    (folder / f"{spool_name(alive)}.job").write_bytes(b"43 1".ljust(40))
    (folder / f"elsewhere-{pid}.out").write_bytes(b"another host's\n")  # not ours
    (folder / f"elsewhere-{pid}.job").write_bytes(b"44 1".ljust(40))

    assert salvage_orphans(log_dir, CAP) == [42]
    assert log_of(log_dir, 42) == b"printed before it died\n"
    live = [f"{spool_name(alive)}.job", f"{spool_name(alive)}.out"]
    assert sorted(os.listdir(folder)) == sorted(
        [*live, f"elsewhere-{pid}.job", f"elsewhere-{pid}.out"]
    )
    assert log_of(log_dir, 43) is None


def test_salvage_of_an_idle_worker_writes_no_log(log_dir: str) -> None:
    pid = dead_pid()
    folder = Path(running_dir(log_dir))
    folder.mkdir()
    (folder / f"{spool_name(pid)}.out").write_bytes(b"")
    (folder / f"{spool_name(pid)}.job").write_bytes(b" " * 40)
    assert salvage(log_dir, pid, CAP) is None
    assert os.listdir(folder) == []
    assert os.listdir(log_dir) == [".running"]


def test_closing_a_spool_removes_its_files(log_dir: str) -> None:
    spool = LogSpool(log_dir, CAP)
    spool.close()
    assert os.listdir(running_dir(log_dir)) == []


@pytest.mark.parametrize("marked", [True, False], ids=["marked-published", "not-yet-marked"])
def test_a_worker_dying_within_end_is_not_salvaged_twice(log_dir: str, marked: bool) -> None:
    """end() publishes, marks the job published, then resets the spool; a worker killed
    in between (a timeout's SIGTERM as the job ends) must not double its log."""
    spool = LogSpool(log_dir, CAP)
    os.write(spool.begin(7, 1), b"once\n")
    publish(log_dir, 7, spool.out_path, os.fstat(spool.out).st_size, CAP)  # linked
    if marked:
        spool._mark("7 1 P")
    salvage(log_dir, os.getpid(), CAP)  # the supervisor, once it reaps the dead worker
    assert log_of(log_dir, 7) == b"once\n"

    Path(log_dir, "9.log").write_bytes(b"attempt one\n")
    spool = LogSpool(log_dir, CAP)
    os.write(spool.begin(9, 2), b"two\n")
    publish(log_dir, 9, spool.out_path, os.fstat(spool.out).st_size, CAP)  # appended
    spool._mark("9 2 P")
    salvage(log_dir, os.getpid(), CAP)
    assert log_of(log_dir, 9) == b"attempt one\n--- attempt 2 ---\ntwo\n"


def test_appending_a_huge_spool_copies_only_what_the_cap_keeps(log_dir: str) -> None:
    Path(log_dir, "7.log").write_bytes(b"attempt one\n")
    spool = LogSpool(log_dir, 100)
    fd = spool.begin(7, 2)
    os.write(fd, b"y" * 10_000 + b"the end\n")
    spool.end(7, 2, left_children=False)
    log = log_of(log_dir, 7)
    assert log is not None and len(log) < 200
    assert log.endswith(b"y" * 40 + b"the end\n")
    assert b"earlier bytes of output dropped" in log


def test_output_that_cannot_be_kept_is_reported_and_the_spool_starts_over(log_dir: str) -> None:
    Path(log_dir, "7.log").mkdir()  # the log cannot be written: as on a full disk
    spool = LogSpool(log_dir, CAP)
    os.write(spool.begin(7, 2), b"lost\n")
    problem = spool.end(7, 2, left_children=False)
    assert problem is not None and "could not be kept" in problem
    os.write(spool.begin(8, 1), b"kept\n")
    assert spool.end(8, 1, left_children=False) is None
    assert log_of(log_dir, 8) == b"kept\n"


def test_a_spool_that_cannot_be_created_is_tried_again_at_the_next_job(log_dir: str) -> None:
    """A full disk when a worker starts: it starts anyway, without a spool; a job
    then runs without a log (the worker sees begin() fail) until one can be made."""
    Path(running_dir(log_dir)).write_bytes(b"")  # the spool's folder cannot be made
    spool = LogSpool(log_dir, CAP)
    with pytest.raises(OSError):
        spool.begin(7, 1)
    os.unlink(running_dir(log_dir))
    os.write(spool.begin(8, 1), b"kept\n")
    assert spool.end(8, 1, left_children=False) is None
    assert log_of(log_dir, 8) == b"kept\n"


def test_cutting_a_log_rewrites_it_in_place_never_longer(tmp_path: Path) -> None:
    """In place, so a full disk cannot fail it halfway: the same file, only shorter."""
    path = tmp_path / "7.log"
    path.write_bytes(b"x" * 500 + b"the error\n")
    inode = path.stat().st_ino
    keep_tail(str(path), 510, 100)
    assert path.stat().st_ino == inode
    assert path.read_bytes() == (
        b"[jobrunner: 410 earlier bytes of output dropped]\n" + b"x" * 90 + b"the error\n"
    )
    path.write_bytes(b"y" * 120)  # over the cap by less than the marker: left as it is
    keep_tail(str(path), 120, 100)
    assert path.read_bytes() == b"y" * 120
