"""What a worker knows about its claims, without the database (invariant 4).

A daemon claims jobs in batches and hands each worker a few to run in turn, so at any
moment some claimed jobs have started and some have not. Two facts about them must
outlive the supervisor's memory (docs/architecture.md, "Claims and starts"):

- **Is the claim still ours?** A daemon frozen or stalled past its lease is presumed
  dead by its peers, which rescue its claims; when it wakes, its workers must not
  start a batched job another daemon may already have run. The supervisor publishes
  its lease as a deadline on the shared monotonic clock in a page of shared memory
  (`SharedLease`); a worker starts a job only before that deadline.
- **Did the job start?** After a kill -9, the rescuer must tell a job that ran (an
  attempt used, `lost`) from one that only waited in a worker's batch (back to
  `queued`, no attempt used). Each worker writes a job's (id, attempt) to its start
  journal *before* it starts it (`StartJournal`): a ring of fixed slots in a file, so
  a journal never grows. The rescuer reads every journal of the dead daemon
  (`read_starts`); a job in none of them provably never started.

A journal's folder exists from the daemon's start; when it is missing the rescuer
knows nothing and counts every claim as started, as before. A worker that cannot write
its journal removes the folder, so a journal with holes is never trusted.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import struct

from jobrunner import clock

STARTS = ".starts"
SLOT = 32  # bytes per entry: "<job id> <attempt>\n", space-padded
SLOTS = 1024  # entries kept per worker: far more than its jobs in flight and unrecorded
_LAYOUT = struct.Struct("dq")  # the deadline, then the epoch


class SharedLease:
    """The supervisor's lease as its workers see it: a deadline on the monotonic clock
    (the same for every process of a machine) and an epoch, in memory shared across
    fork. Each job is sent with the epoch it was claimed in; a daemon that learns its
    claims were rescued starts a new epoch, so no job sent before can start after."""

    def __init__(self) -> None:
        self.page = mmap.mmap(-1, _LAYOUT.size)  # anonymous and shared with children
        self.publish(0.0, 1)

    def publish(self, deadline: float, epoch: int) -> None:
        # The epoch first: a reader that sees the new deadline sees the new epoch.
        struct.pack_into("q", self.page, 8, epoch)
        struct.pack_into("d", self.page, 0, deadline)

    def deadline(self) -> float:
        return float(_LAYOUT.unpack_from(self.page, 0)[0])

    def epoch(self) -> int:
        return int(_LAYOUT.unpack_from(self.page, 0)[1])

    def holds(self, epoch: int) -> bool:
        """Whether a job sent in `epoch` may start now (the worker's check). The epoch
        is read on both sides of the deadline, so a publish in between is noticed."""
        before = self.epoch()
        deadline = self.deadline()
        return before == epoch == self.epoch() and clock.monotonic() < deadline


def journal_dir(log_dir: str, daemon_id: str) -> str:
    return os.path.join(log_dir, STARTS, daemon_id.replace(os.sep, "_"))


def create_journals(log_dir: str, daemon_id: str) -> str | None:
    """The daemon's journal folder, made empty at its start; None when it cannot be
    made (a full disk): the daemon runs without, and a rescue counts every claim."""
    folder = journal_dir(log_dir, daemon_id)
    try:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(folder)
        os.makedirs(folder, mode=0o700)
    except OSError:
        return None
    return folder


def remove_journals(log_dir: str, daemon_id: str) -> None:
    """Forget a daemon's starts: it stopped cleanly, or its claims were rescued."""
    shutil.rmtree(journal_dir(log_dir, daemon_id), ignore_errors=True)


def remove_journal(folder: str, pid: int) -> None:
    """Forget a dead worker's starts, once what they covered is recorded."""
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(folder, str(pid)))


class StartJournal:
    """The worker's end: `started` before each job."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.next = 0
        self.fd = -1
        try:
            # Never creates the folder: one that was removed stays removed (see above).
            fd = os.open(
                os.path.join(folder, str(os.getpid())),
                os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                0o600,
            )
        except OSError:
            self._give_up()
            return
        try:
            os.write(fd, b" " * (SLOT * SLOTS))  # allocated now: later writes need no space
        except OSError:
            os.close(fd)
            self._give_up()
            return
        self.fd = fd

    def started(self, job_id: int, attempt: int) -> None:
        if self.fd < 0:
            return
        entry = f"{job_id} {attempt}\n".encode().ljust(SLOT)
        try:
            os.pwrite(self.fd, entry, (self.next % SLOTS) * SLOT)
        except OSError:
            self._give_up()
            return
        self.next += 1

    def _give_up(self) -> None:
        """A start that is not written must not read as "never started": drop the whole
        daemon's journal, so the rescuer counts every claim as started."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        shutil.rmtree(self.folder, ignore_errors=True)


def read_starts(log_dir: str, daemon_id: str) -> set[tuple[int, int]] | None:
    """Every (job id, attempt) the daemon's workers started (as far as their journals
    reach), or None when its journal is gone and nothing can be told."""
    folder = journal_dir(log_dir, daemon_id)
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    started: set[tuple[int, int]] = set()
    for name in names:
        try:
            with open(os.path.join(folder, name), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        except OSError:
            return None
        for line in data.split(b"\n"):
            words = line.split()
            if len(words) == 2 and words[0].isdigit() and words[1].isdigit():
                started.add((int(words[0]), int(words[1])))
    if not os.path.isdir(folder):  # a worker gave up on it while we read
        return None
    return started
