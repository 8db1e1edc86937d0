"""Python jobs' output without a file per job.

Creating and removing `<id>.log` for every job cost a worker 8-240 us a job (a
directory entry, its inode and the journal, more when other processes are writing to
the same file system): more than everything else the worker does for a no-op job.
Most jobs print nothing, so a worker writes each in-process Python job's output to
one file of its own, its spool, and only a job that printed something gets a log:

    <db>.logs/.running/<pid>.out   the spool: the running job's stdout and stderr
    <db>.logs/.running/<pid>.job   "<job id> <attempt>" while a job runs, else blank

When the job ends, a spool with output becomes the job's log by a hard link (the
same inode, so a process the job left behind that still writes lands in the job's
log, not the next job's) and the worker starts a new spool; a later attempt's
output is appended to the log instead. An empty spool is simply reused.

`read_output` gives `jobrunner logs` the log and then the running attempt's spool,
as one stream. A worker that dies mid-job leaves its spool behind: the supervisor
`salvage`s it into the job's log when it reaps the worker, and a daemon starting
up salvages what workers of a dead daemon left (`salvage_orphans`).

Commands and jobs with limits run in processes of their own, which cost far more
than a file, and still write their `<id>.log` directly.
"""

from __future__ import annotations

import contextlib
import logging
import os

from jobrunner.node import file_tag, pid_alive
from jobrunner.worker.output import write_output

log = logging.getLogger("jobrunner.daemon")

RUNNING = ".running"
MARK_BYTES = 40
BLANK = b" " * MARK_BYTES
PUBLISHED = "P"  # third word of a mark: the output is in the log already
# Third word of a mark while end() moves the output into the log: readers leave the
# spool alone (the log is about to hold it, or holds it already), salvage still moves it.
ENDING = "E"
HOST = file_tag()  # spools of workers on other nodes (containers, hosts) are theirs
COPY_CHUNK = 1 << 20


def running_dir(log_dir: str) -> str:
    return os.path.join(log_dir, RUNNING)


def attempt_header(attempt: int) -> bytes:
    return f"--- attempt {attempt} ---\n".encode()


def spool_name(pid: int) -> str:
    """`<node tag>-<pid>`: daemons on several hosts or pid namespaces may share a folder."""
    return f"{HOST}-{pid}"


class LogSpool:
    """The worker's end: `begin` before a job, `end` after it.

    A disk too full (or failing) to create the spool's files does not stop the worker:
    the spool stays unready (`broken`), `begin` raises, the job runs without a log,
    and the next `begin` tries again."""

    def __init__(self, log_dir: str, log_max_bytes: int) -> None:
        self.log_dir = log_dir
        self.cap = log_max_bytes
        folder = running_dir(log_dir)
        pid = os.getpid()
        self.out_path = os.path.join(folder, f"{spool_name(pid)}.out")
        self.mark_path = os.path.join(folder, f"{spool_name(pid)}.job")
        self.out = self.mark = -1
        self.broken: OSError | None = None
        with contextlib.suppress(OSError):  # a dead process's leftovers under our pid
            salvage(log_dir, pid, log_max_bytes)
        self._open()

    def _open(self) -> None:
        """Create what is missing of the spool's files; on failure `broken` says why."""
        try:
            os.makedirs(running_dir(self.log_dir), mode=0o700, exist_ok=True)
            if self.mark < 0:
                mark = os.open(self.mark_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    os.pwrite(mark, BLANK, 0)  # its one block: later marks rewrite it in place
                except OSError:
                    os.close(mark)
                    raise
                self.mark = mark
            if self.out < 0:
                self.out = self._new_out()
            self.broken = None
        except OSError as exc:
            self.broken = exc

    def _new_out(self) -> int:
        # never O_TRUNC an existing file: the path may still name a job's log (a link
        # whose unlink failed); a fresh inode or nothing
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.out_path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        return os.open(self.out_path, flags, 0o600)

    def _discard_out(self) -> None:
        """Let go of the spool file (its inode may live on as a job's log)."""
        fd, self.out = self.out, -1
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(self.out_path)

    def _mark(self, text: str) -> None:
        os.pwrite(self.mark, text.encode().ljust(MARK_BYTES), 0)

    def begin(self, job_id: int, attempt: int) -> int:
        """Mark the job as running here; returns the fd its output goes to. Raises
        OSError when the spool cannot be made ready (the job then runs without a log)."""
        if self.broken is not None:
            self._open()
            if self.broken is not None:
                raise self.broken
        self._mark(f"{job_id} {attempt}")
        if attempt > 1:
            write_output(self.out, attempt_header(attempt))
        return self.out

    def end(self, job_id: int, attempt: int, left_children: bool) -> str | None:
        """Publish the job's output, if any, and make the spool ready for the next job.
        Returns why its output could not be kept, if it could not (the job's result
        stands either way).

        `left_children`: the job left processes running, which may still hold the
        spool open. The spool then becomes the job's log even when empty, and a new
        one is started, so what they write lands in this job's log, not the next's."""
        problem = None
        size = 0
        try:
            size = os.fstat(self.out).st_size
            linked = False
            if size or left_children:
                # Before the log grows: a reader that measured the log after it grew
                # but saw a plain mark would read the spool as if it followed the log,
                # and print the output twice.
                self._mark(f"{job_id} {attempt} {ENDING}")
                linked = publish(self.log_dir, job_id, self.out_path, size, self.cap)
                self._mark(f"{job_id} {attempt} {PUBLISHED}")  # salvage must not redo it
            if linked or left_children:
                self._discard_out()  # a linked inode lives on as the job's log
            elif size:
                os.ftruncate(self.out, 0)
        except OSError as exc:  # a full disk, say: start over with a fresh spool
            problem = f"{size} bytes of output could not be kept in its log: {exc.strerror or exc}"
            self._discard_out()
        try:
            self._mark("")  # after the log holds it all: see read_output
        except OSError as exc:  # the mark still names this job: remove it, so a
            # salvage never takes a later job's output for this one's
            fd, self.mark = self.mark, -1
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.mark_path)
            self.broken = exc
        if self.out < 0 or self.mark < 0:
            self._open()
        return problem

    def close(self) -> None:
        """A worker leaving cleanly removes its spool (it holds nothing by then)."""
        for fd, path in ((self.out, self.out_path), (self.mark, self.mark_path)):
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)


def publish(log_dir: str, job_id: int, spool_path: str, size: int, cap: int) -> bool:
    """Make the spool the job's log (a hard link), or append its `size` bytes to the
    log an earlier attempt left. True when the spool's inode is the log now."""
    log_path = os.path.join(log_dir, f"{job_id}.log")
    try:
        os.link(spool_path, log_path)
        linked = True
    except FileExistsError:
        if os.path.samefile(spool_path, log_path):
            return True  # already published (a worker that died within end())
        linked = False
        if size:
            _append_tail(spool_path, log_path, size, cap)
    total = os.stat(log_path).st_size
    if total > cap:
        keep_tail(log_path, total, cap)
    return linked


def _append_tail(spool_path: str, log_path: str, size: int, cap: int) -> None:
    """Append the spool's first `size` bytes to the log; past the cap, only the end of
    them (keep_tail would drop the rest anyway, and this may run in the supervisor)."""
    skip = max(0, size - cap)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    with open(spool_path, "rb") as src, open(os.open(log_path, flags), "wb") as dst:
        if skip:
            dst.write(f"[jobrunner: {skip} earlier bytes of output dropped]\n".encode())
            src.seek(skip)
        left = size - skip
        while left > 0 and (chunk := src.read(min(COPY_CHUNK, left))):
            dst.write(chunk)
            left -= len(chunk)


def keep_tail(path: str, size: int, keep: int) -> None:
    """Cap a log of `size` bytes at `keep`, keeping its end (where the error is).

    Rewritten in place and never longer than it was, so it needs no free space: a
    full disk cannot make it lose the tail it keeps."""
    marker = f"[jobrunner: {size - keep} earlier bytes of output dropped]\n".encode()
    if len(marker) + keep >= size:
        return  # over the cap by less than the marker: cutting would not shorten it
    with open(path, "r+b") as f:
        f.seek(size - keep)
        tail = f.read()
        f.seek(0)
        f.write(marker + tail)
        f.truncate()


def _running_job(mark_path: str) -> bytes | None:
    try:
        with open(mark_path, "rb") as f:
            return f.read(MARK_BYTES)
    except FileNotFoundError:
        return None


def _parse_mark(mark: bytes | None) -> tuple[int | None, bool]:
    """(the job id in a mark, whether its output is in the log already)."""
    words = (mark or b"").split()
    if not words or not words[0].isdigit():
        return None, False
    return int(words[0]), len(words) > 2 and words[2] == PUBLISHED.encode()


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def salvage(log_dir: str, pid: int, cap: int) -> int | None:
    """Move what worker `pid` (dead) spooled into its job's log and remove its spool.
    Returns the job's id, if it was running one."""
    folder = running_dir(log_dir)
    out_path = os.path.join(folder, f"{spool_name(pid)}.out")
    mark_path = os.path.join(folder, f"{spool_name(pid)}.job")
    job_id, published = _parse_mark(_running_job(mark_path))
    if job_id is not None and not published:
        try:
            size = _size(out_path)
            if size:
                publish(log_dir, job_id, out_path, size, cap)
        except OSError as exc:  # a full disk must not take the daemon down with it
            log.warning("job %d: the output of its dead worker was lost: %s", job_id, exc)
    for path in (out_path, mark_path):
        with contextlib.suppress(OSError):
            os.unlink(path)
    return job_id


def salvage_orphans(log_dir: str, cap: int) -> list[int]:
    """Salvage the spools of this host's workers that are gone (their daemon was
    killed); another host's are its own daemons' to salvage."""
    try:
        names = os.listdir(running_dir(log_dir))
    except OSError:
        return []
    salvaged = []
    pids: set[int] = set()
    for name in names:
        host, _, rest = name.rpartition("-")
        number = rest.split(".")[0]
        if host == HOST and number.isdigit():
            pids.add(int(number))
    for pid in sorted(pids):
        if not _gone(pid):
            continue  # a worker of a running daemon
        job_id = salvage(log_dir, pid, cap)
        if job_id is not None:
            salvaged.append(job_id)
    return salvaged


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (a killed daemon's worker nobody reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:  # no /proc: ask the kernel
        return not pid_alive(pid)
    return state in (b"Z", b"X")


def read_output(log_dir: str, job_id: int, offset: int) -> bytes:
    """The job's output from `offset` on: its log, then a running attempt's spool,
    read as one stream (an attempt's spool is appended to the log when it ends).

    The spool is read only under a plain mark (`<job id> <attempt>`) and while the log's
    size and the mark stay the same around the read: the worker marks the attempt
    ending before it publishes and clears the mark after, so a read that raced with the
    end of the attempt is dropped and found in the log next time."""
    log_path = os.path.join(log_dir, f"{job_id}.log")
    before = _size(log_path)
    if offset < before:
        try:
            with open(log_path, "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:  # pruned meanwhile
            return b""
    folder = running_dir(log_dir)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return b""
    for name in names:
        if not name.endswith(".job"):
            continue
        mark_path = os.path.join(folder, name)
        mark = _running_job(mark_path)
        words = (mark or b"").split()
        if len(words) != 2 or words[0] != str(job_id).encode():
            continue  # another job's, or its output is in the log or going there
        try:
            with open(mark_path[: -len(".job")] + ".out", "rb") as f:
                f.seek(offset - before)
                chunk = f.read()
        except FileNotFoundError:
            return b""
        if _running_job(mark_path) != mark or _size(log_path) != before:
            return b""
        return chunk
    return b""
