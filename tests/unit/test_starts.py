"""What workers record of their claims: the start journal and the shared lease."""

from __future__ import annotations

import os
from pathlib import Path

from jobrunner import clock
from jobrunner.worker.starts import (
    SLOTS,
    SharedLease,
    StartJournal,
    create_journals,
    journal_dir,
    read_starts,
    remove_journal,
    remove_journals,
)

DAEMON = "host:1:abc"


def test_starts_are_read_back_from_every_worker_of_the_daemon(tmp_path: Path) -> None:
    folder = create_journals(str(tmp_path), DAEMON)
    assert read_starts(str(tmp_path), DAEMON) == set()
    journal = StartJournal(folder)
    for job_id in (5, 6):
        journal.started(job_id, 1)
    other = os.path.join(folder, "99")  # another worker's journal
    Path(other).write_bytes(b"7 3\n".ljust(32))
    assert read_starts(str(tmp_path), DAEMON) == {(5, 1), (6, 1), (7, 3)}
    assert read_starts(str(tmp_path), "host:2:other") is None  # no journal: nothing known
    remove_journal(folder, 99)
    assert read_starts(str(tmp_path), DAEMON) == {(5, 1), (6, 1)}
    remove_journals(str(tmp_path), DAEMON)
    assert read_starts(str(tmp_path), DAEMON) is None


def test_a_journal_keeps_the_last_starts_in_a_file_that_never_grows(tmp_path: Path) -> None:
    folder = create_journals(str(tmp_path), DAEMON)
    journal = StartJournal(folder)
    size = os.path.getsize(os.path.join(folder, str(os.getpid())))
    for job_id in range(1, SLOTS + 11):
        journal.started(job_id, 2)
    assert os.path.getsize(os.path.join(folder, str(os.getpid()))) == size
    starts = read_starts(str(tmp_path), DAEMON)
    assert starts is not None and len(starts) == SLOTS
    assert (SLOTS + 10, 2) in starts and (10, 2) not in starts


def test_a_journal_that_cannot_be_written_is_dropped_whole(tmp_path: Path) -> None:
    """A start that could not be recorded must never read as "never started"."""
    folder = create_journals(str(tmp_path), DAEMON)
    StartJournal(folder).started(1, 1)
    broken = StartJournal(folder)
    os.close(broken.fd)  # the next write fails, as on a failing disk
    broken.started(2, 1)
    assert not os.path.exists(folder)
    assert read_starts(str(tmp_path), DAEMON) is None
    StartJournal(journal_dir(str(tmp_path), DAEMON)).started(3, 1)  # never recreates it
    assert read_starts(str(tmp_path), DAEMON) is None


def test_a_new_epoch_stops_jobs_sent_before_it() -> None:
    lease = SharedLease()
    assert not lease.holds(1)  # nothing before the first heartbeat
    lease.publish(clock.monotonic() + 60, 1)
    assert lease.holds(1)
    lease.publish(clock.monotonic() + 60, 2)  # the daemon learned its claims were rescued
    assert not lease.holds(1) and lease.holds(2)
    lease.publish(clock.monotonic() - 1, 2)  # the lease ran out
    assert not lease.holds(2)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # a worker forked before the publish sees it: the page is shared
        os.close(w)
        os.read(r, 1)
        os._exit(0 if lease.holds(3) else 1)
    os.close(r)
    lease.publish(clock.monotonic() + 60, 3)
    os.write(w, b"x")
    os.close(w)
    _, status = os.waitpid(child, 0)
    assert os.WEXITSTATUS(status) == 0
