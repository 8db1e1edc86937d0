"""A job's output against a device that refuses it: /dev/full fails every write with
ENOSPC, as a full disk does. Dropped output is counted, never raised, and marked in
the log where writes get through again (worker/output.py)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner.worker.output import finish_output, tally, write_output
from tests.helpers import PYTHON, REPO

FULL = "No space left on device"


@pytest.fixture(autouse=True)
def fresh_tally() -> Iterator[None]:
    tally.clear()
    yield
    tally.clear()


@pytest.fixture
def full_fd() -> Iterator[int]:
    fd = os.open("/dev/full", os.O_WRONLY)
    yield fd
    os.close(fd)


def marker(dropped: int) -> bytes:
    return f"[jobrunner: {dropped} bytes of output dropped: {FULL}]\n".encode()


def test_output_a_full_device_refuses_is_counted_not_raised(full_fd: int) -> None:
    write_output(full_fd, b"hello\n")
    write_output(full_fd, bytearray(b"x" * 70_000))
    assert (tally.dropped, tally.reason) == (6 + 70_000, FULL)
    assert tally.describe() == f"70006 bytes of output dropped: {FULL}"


def test_the_gap_is_marked_where_writes_get_through_again(tmp_path: Path, full_fd: int) -> None:
    log = tmp_path / "7.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        write_output(fd, b"first line\nhalf a li")
        saved = os.dup(fd)
        os.dup2(full_fd, fd)  # the disk fills up
        write_output(fd, b"ne\nlost line\n")
        os.dup2(saved, fd)  # and has room again
        os.close(saved)
        write_output(fd, b"back\n")
        write_output(fd, b"more\n")
    finally:
        os.close(fd)
    # the cut line is ended before the marker, so the marker has a line of its own
    assert log.read_bytes() == b"first line\nhalf a li\n" + marker(13) + b"back\nmore\n"
    assert tally.dropped == 13 and tally.unmarked == 0


def test_a_gap_at_the_end_is_marked_when_the_job_ends(tmp_path: Path, full_fd: int) -> None:
    log = tmp_path / "7.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        write_output(fd, b"kept\n")
        saved = os.dup(fd)
        os.dup2(full_fd, fd)
        write_output(fd, b"lost\n")
        finish_output(fd)  # still full: the marker is dropped too, and still owed
        os.dup2(saved, fd)
        os.close(saved)
        finish_output(fd)
        finish_output(fd)  # once
    finally:
        os.close(fd)
    assert log.read_bytes() == b"kept\n" + marker(5)


def test_an_error_that_is_no_full_disk_still_raises() -> None:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.close(fd)  # EBADF: a bug, not the disk
    with pytest.raises(OSError) as caught:
        write_output(fd, b"x")
    assert caught.value.errno == errno.EBADF
    assert tally.dropped == 0


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "python-u"])
def test_print_never_raises_for_a_full_disk(tmp_path: Path, unbuffered: str) -> None:
    """The worker's sys.stdout and sys.stderr: a job printing to a full log goes on."""
    report = tmp_path / "report"
    code = (
        "import sys\n"
        "from jobrunner.worker.output import install_std_streams, tally\n"
        "install_std_streams()\n"
        "for i in range(1000):\n"
        "    print('x' * 99)\n"
        "    print('y' * 99, file=sys.stderr)\n"
        "sys.stdout.flush()\n"
        f"open({str(report)!r}, 'w').write(str(tally.dropped))\n"
    )
    with open("/dev/full", "wb") as full:
        res = subprocess.run(
            [PYTHON, "-c", code],
            stdout=full,
            stderr=full,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": unbuffered},
            timeout=60,
        )
    assert res.returncode == 0
    assert report.read_text() == str(2 * 1000 * 100)


def test_the_daemons_own_log_on_a_full_disk_drops_lines_and_says_so(tmp_path: Path) -> None:
    from jobrunner.daemon.events import EventLog

    with open("/dev/full", "w") as full:
        log = EventLog(full)
        log.emit("claim", count=3)
        log.flush()  # must not raise: the daemon runs on
        log.emit("finish", job=1)
        log.flush()
        assert log.dropped == 2
    out = tmp_path / "log"
    with open(out, "w") as stream:
        log.fd = stream.fileno()  # the disk has room again
        log.emit("finish", job=2)
        log.flush()
    lines = out.read_text().splitlines()
    assert lines[0].startswith("[jobrunner: 2 log lines dropped: No space left on device]")
    assert "job=2" in lines[1] and log.dropped == 0
