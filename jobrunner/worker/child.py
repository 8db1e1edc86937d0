"""The worker process: forked once by the supervisor, reused for many jobs.

It never opens the database (invariant 4): jobs come in and results go out on pipes.
The worker leads its own process group, so a timeout or a cancel kills the job's
whole group (the worker with it); the supervisor then forks a replacement.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import importlib
import os
import resource
import select
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from typing import Any

from jobrunner import clock
from jobrunner.jsonutil import storable
from jobrunner.worker.failures import (
    NOT_RETRIED,
    NotRetryable,
    call_does_not_fit,
    describe,
    message_of,
    result_json,
)
from jobrunner.worker.output import finish_output, install_std_streams, tally, write_output
from jobrunner.worker.protocol import (
    FrameReader,
    JobDone,
    JobSpec,
    describe_status,
    encode,
    signal_name,
    write_all,
)
from jobrunner.worker.spool import LogSpool, attempt_header, keep_tail
from jobrunner.worker.starts import SharedLease, StartJournal
from jobrunner.worker.usage import PROGRESS_EVERY, Limits, PeakRss, ProgressLines, cpu_seconds

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
COMMAND_SUCCEEDED = '{"exit_code":0}'  # a command's result, as JSON text

_libc: Any = None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


def adopt_orphans() -> None:
    """Become the parent of the job's processes whose own parent exits (a subreaper,
    Linux), so a job's leftover processes are seen (and reaped) by this worker."""
    if _libc is not None and hasattr(_libc, "prctl"):
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux)."""
    if _libc is not None and hasattr(_libc, "prctl"):
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class JobContext:
    """What `current_job()` returns inside a running job."""

    __slots__ = ("id", "attempt", "task", "queue")

    def __init__(self, spec: JobSpec) -> None:
        self.id = spec.id
        self.attempt = spec.attempt
        self.task = spec.task
        self.queue = spec.queue

    def __repr__(self) -> str:
        return f"JobContext(id={self.id}, attempt={self.attempt}, task={self.task!r})"


current: JobContext | None = None
_worker: Worker | None = None


def progress(fraction: float, message: str | None = None) -> bool:
    """Report how far the running job got (0.0 to 1.0), with an optional message.

    Throttled to a few reports a second; returns False outside a job."""
    if _worker is None:
        return False
    return _worker.report_progress(fraction, message)


class Worker:
    def __init__(
        self,
        rfd: int,
        wfd: int,
        log_dir: str,
        log_max_bytes: int,
        lease: SharedLease | None = None,
        journal: StartJournal | None = None,
    ) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.log_dir = log_dir
        self.log_max_bytes = log_max_bytes
        self.lease = lease
        self.journal = journal
        self.reader = FrameReader()
        # (epoch sent in, spec) by (job id, attempt): a rescued job may come back as its
        # next attempt
        self.pending: collections.OrderedDict[tuple[int, int], tuple[int, JobSpec]] = (
            collections.OrderedDict()
        )
        self.functions: dict[str, Callable[..., Any]] = {}
        self.closed = False
        self.peak = PeakRss()
        self.progress_sent = 0.0
        self.spool = LogSpool(log_dir, log_max_bytes)

    # -- the loop -------------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            if self.pending:
                if select.select([self.rfd], [], [], 0)[0]:
                    self._read()
            elif self.closed:
                return
            else:
                self._read()
            if self.pending:
                _, (epoch, spec) = self.pending.popitem(last=False)
                if self.journal is not None:
                    self.journal.started(spec.id, spec.attempt)  # before it can start
                if self.lease is not None and not self.lease.holds(epoch):
                    # The daemon's lease ran out (it was frozen or stalled), or its claims
                    # were rescued: a peer may have run this job. The supervisor decides.
                    write_all(self.wfd, encode(("stale", spec.id, spec.attempt)))
                    continue
                write_all(self.wfd, _encode_done(self.run(spec)))

    def _read(self) -> None:
        data = os.read(self.rfd, 1 << 16)
        if not data:
            self.closed = True
            return
        for message in self.reader.feed(data):
            if message[0] == "run":
                _, epoch, specs = message
                for spec in specs:
                    self.pending[spec.id, spec.attempt] = (epoch, spec)
            elif message[0] == "skip" and self.pending.pop(message[1:], None) is not None:
                write_all(self.wfd, encode(("skipped", *message[1:])))

    # -- one job --------------------------------------------------------------------------

    def run(self, spec: JobSpec) -> JobDone:
        global current
        limits = Limits(spec.options)
        in_process = spec.command is None and not limits
        log_fd = self._begin_output(spec, in_process)
        started = clock.now()
        current = JobContext(spec)
        self.progress_sent = 0.0
        try:
            if spec.command is not None:
                done = self._run_command(spec, log_fd, started, limits)
            elif limits:
                done = self._run_python_isolated(spec, log_fd, started, limits)
            else:
                done = self._run_python_measured(spec, log_fd, started)
        finally:
            current = None
            left_children = _left_children()
            problem = self._end_output(spec, in_process, log_fd, left_children)
        note = tally.describe()  # for the daemon's log (outcomes.log_end)
        done.note = f"{note}; {problem}" if note and problem else note or problem
        return done

    # -- progress -------------------------------------------------------------------------

    def report_progress(self, fraction: float, message: str | None) -> bool:
        """Send the running job's progress, at most every PROGRESS_EVERY seconds."""
        job = current
        if job is None:
            return False
        fraction = min(1.0, max(0.0, float(fraction)))
        now = clock.monotonic()
        if now - self.progress_sent < PROGRESS_EVERY and fraction < 1.0:
            return True  # throttled: a chatty job must not flood the database
        self.progress_sent = now
        text = None if message is None else storable(str(message)[:200])
        write_all(self.wfd, encode(("progress", job.id, job.attempt, fraction, text)))
        return True

    # -- Python jobs ----------------------------------------------------------------------

    def _run_python_measured(self, spec: JobSpec, log_fd: int, started: float) -> JobDone:
        self.peak.reset()
        before = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) + cpu_seconds(
            resource.getrusage(resource.RUSAGE_CHILDREN)
        )
        done = self._run_python(spec, log_fd, started)
        after = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) + cpu_seconds(
            resource.getrusage(resource.RUSAGE_CHILDREN)
        )
        done.cpu_seconds = round(after - before, 6)
        done.max_rss_kb = self.peak.read_kb()
        return done

    def _run_python_isolated(
        self, spec: JobSpec, log_fd: int, started: float, limits: Limits
    ) -> JobDone:
        """A job with limits runs in a child forked for it, so the limits (and the
        usage measured) are the job's alone; the child stays in this process group."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(r)
                limits.apply()
                done = self._run_python(spec, log_fd, started)
                write_all(w, encode(done) + encode(("output", tally.state())))
            except BaseException:  # noqa: BLE001
                code = 70
            finally:
                os._exit(code)
        os.close(w)
        data = bytearray()
        while chunk := os.read(r, 1 << 16):
            data += chunk
        os.close(r)
        _, status, usage = os.wait4(pid, 0)
        finished = clock.now()
        messages = FrameReader().feed(bytes(data))
        cpu = round(cpu_seconds(usage), 6)
        if messages:
            done = messages[0]
            for message in messages[1:]:  # what its output lost, from the job's process
                tally.restore(message[1])
        else:
            how = describe_status(status, "job process")
            done = JobDone(
                spec.id,
                spec.attempt,
                False,
                None,
                f"{how} without a result",
                None,
                started,
                finished,
            )
            done.signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        done.cpu_seconds = cpu
        done.max_rss_kb = usage.ru_maxrss
        done.cause = limits.cause_of(done.signal, done.error, cpu)
        if done.cause == "oom":
            done.error = (
                f"out of memory: memory_limit of {limits.memory} bytes reached ({done.error})"
            )
        elif done.cause == "cpu_limit":
            done.error = f"cpu_limit of {limits.cpu:g}s used up; {done.error}"
        return done

    def _run_python(self, spec: JobSpec, log_fd: int, started: float) -> JobDone:
        saved = _redirect(log_fd)
        cwd = spec.options.get("cwd")
        old_cwd = os.getcwd() if cwd else None
        fn: Callable[..., Any] | None = None
        try:
            if cwd:
                os.chdir(cwd)
            fn = self._resolve(spec.task or "")
            value = fn(*spec.args, **spec.kwargs)
            result = result_json(value)
            return JobDone(spec.id, spec.attempt, True, result, None, None, started, clock.now())
        except BaseException as exc:  # noqa: BLE001 - a job's failure is data, not a crash
            tb: str | None = storable(traceback.format_exc())
            if isinstance(exc, NotRetryable) or call_does_not_fit(exc, fn, spec):
                # the task as named, or the call stored, cannot work: no retry can change it
                error = storable(NOT_RETRIED + message_of(exc))
                retryable = False
                if isinstance(exc, NotRetryable):  # only the cause's traceback says more
                    cause = exc.__cause__
                    tb = (
                        None
                        if cause is None
                        else storable("".join(traceback.format_exception(cause)))
                    )
            else:
                error = describe(exc)
                retryable = True
            return JobDone(
                spec.id, spec.attempt, False, None, error, tb, started, clock.now(), retryable
            )
        finally:
            _restore(saved)
            if old_cwd:
                with contextlib.suppress(OSError):
                    os.chdir(old_cwd)

    # -- commands -------------------------------------------------------------------------

    def _run_command(self, spec: JobSpec, log_fd: int, started: float, limits: Limits) -> JobDone:
        env = {
            **os.environ,
            **spec.options.get("env", {}),
            "JOBRUNNER_JOB_ID": str(spec.id),
            "JOBRUNNER_ATTEMPT": str(spec.attempt),
        }
        argv = [*(spec.command or []), *(str(a) for a in spec.args)]

        def setup() -> None:  # in the command's process, before exec
            die_with_parent()
            limits.apply()

        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,  # both through the worker: a full disk is
                stderr=subprocess.PIPE,  # never the command's error (worker/output.py)
                cwd=spec.options.get("cwd"),
                env=env,
                preexec_fn=setup,
            )
        except OSError as exc:
            error = f"cannot run {argv[0] if argv else '(empty command)'}: {exc.strerror or exc}"
            return JobDone(spec.id, spec.attempt, False, None, error, None, started, clock.now())
        assert proc.stdout is not None and proc.stderr is not None
        lines = ProgressLines(log_fd, self.report_progress)
        stderr = functools.partial(write_output, log_fd)
        _pump_until_exit(proc.pid, {proc.stdout.fileno(): lines.feed, proc.stderr.fileno(): stderr})
        lines.close()
        proc.stdout.close()
        proc.stderr.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        finished = clock.now()
        code = proc.returncode
        done = JobDone(
            spec.id,
            spec.attempt,
            code == 0,
            COMMAND_SUCCEEDED if code == 0 else None,
            None,
            None,
            started,
            finished,
        )
        done.cpu_seconds = round(cpu_seconds(usage), 6)
        done.max_rss_kb = usage.ru_maxrss
        if code < 0:
            done.signal = -code
            done.error = f"command killed by signal {-code} ({signal_name(-code)})"
        elif code > 0:
            done.exit_code = code
            done.error = f"command exited with status {code}"
        else:
            done.exit_code = 0
        done.cause = limits.cause_of(done.signal, done.error, done.cpu_seconds)
        if done.cause == "cpu_limit":
            done.error = f"cpu_limit of {limits.cpu:g}s used up; {done.error}"
        return done

    def _resolve(self, ref: str) -> Callable[..., Any]:
        """The function `ref` names. That it cannot be imported (its module, or one it
        imports, is missing; a syntax error) or found is not retried: code is not
        changed between attempts. An exception the module's own code raises while it is
        imported (a database not reachable yet) is the job's failure, and retried."""
        fn = self.functions.get(ref)
        if fn is None:
            module_name, _, attr = ref.partition(":")
            if not module_name or not attr:
                raise NotRetryable(f"task {ref!r} is not of the form package.module:function")
            try:
                obj: Any = importlib.import_module(module_name)
            except (ImportError, SyntaxError) as exc:
                raise NotRetryable(f"cannot import {module_name}: {describe(exc)}") from exc
            for part in attr.split("."):
                try:
                    obj = getattr(obj, part)
                except AttributeError as exc:
                    raise NotRetryable(message_of(exc)) from None
            fn = getattr(obj, "__wrapped_task__", obj)
            if not callable(fn):
                raise NotRetryable(f"{ref} is not callable")
            self.functions[ref] = fn
        return fn

    # -- logs -----------------------------------------------------------------------------

    def _begin_output(self, spec: JobSpec, in_process: bool) -> int:
        """The fd the job's output goes to. When its log cannot be opened (a full or
        failing disk), /dev/null: the job runs anyway and what it prints is counted
        as dropped (worker/output.py)."""
        tally.clear()
        try:
            return self.spool.begin(spec.id, spec.attempt) if in_process else self._open_log(spec)
        except OSError as exc:
            tally.no_log = exc.strerror or str(exc)
            return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)

    def _end_output(
        self, spec: JobSpec, in_process: bool, log_fd: int, left_children: bool
    ) -> str | None:
        """Close the job's output; returns what went wrong keeping it, if anything."""
        if tally.no_log is not None:
            os.close(log_fd)  # /dev/null
            return None
        finish_output(log_fd)
        if in_process:
            return self.spool.end(spec.id, spec.attempt, left_children)
        return self._close_log(spec, log_fd)

    def _open_log(self, spec: JobSpec) -> int:
        path = os.path.join(self.log_dir, f"{spec.id}.log")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        if spec.attempt > 1:
            write_output(fd, attempt_header(spec.attempt))
        return fd

    def _close_log(self, spec: JobSpec, fd: int) -> str | None:
        size = os.fstat(fd).st_size
        os.close(fd)
        path = os.path.join(self.log_dir, f"{spec.id}.log")
        try:
            if size == 0:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            elif size > self.log_max_bytes:
                keep_tail(path, size, self.log_max_bytes)
        except OSError as exc:
            return f"its log could not be cut to log_max_bytes: {exc.strerror or exc}"
        return None


def _pump_until_exit(pid: int, feeds: dict[int, Callable[[bytes], None]]) -> None:
    """Pass what the command writes on each pipe in `feeds` to that pipe's feed until
    the command exits (not reaped here).

    Stops at the command's exit, not at EOF: a background process it started may hold
    the pipes open long after, and the job ends with its command."""
    pidfd = -1
    with contextlib.suppress(AttributeError, OSError):  # Linux 5.3+; else poll the pid
        pidfd = os.pidfd_open(pid)
    open_feeds = dict(feeds)
    try:
        while open_feeds:
            watch = [*open_feeds, pidfd] if pidfd >= 0 else [*open_feeds]
            ready, _, _ = select.select(watch, [], [], None if pidfd >= 0 else 0.05)
            output_ready = [fd for fd in ready if fd in open_feeds]
            if (pidfd in ready or not output_ready) and os.waitid(
                os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT
            ) is not None:
                # it exited: take what it wrote before (at most a pipe's worth), then stop
                for fd, feed in open_feeds.items():
                    _drain(fd, feed)
                return
            for fd in output_ready:
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    open_feeds[fd](chunk)
                else:  # nobody holds this pipe any more
                    del open_feeds[fd]
        # nobody holds any of them: just wait for the exit
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _drain(fd: int, feed: Callable[[bytes], None]) -> None:
    os.set_blocking(fd, False)
    for _ in range(64):
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            return
        feed(chunk)


def _redirect(log_fd: int) -> tuple[int, int]:
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    return saved


def _restore(saved: tuple[int, int]) -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    os.close(saved[0])
    os.close(saved[1])


def _left_children() -> bool:
    """Reap the job's processes that have exited and say whether any still run (they
    may hold its output). With adopt_orphans, the worker is their parent; one waitpid
    answers both in the common case (ChildProcessError: no children at all)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        return False
    return True


def _encode_done(done: JobDone) -> bytes:
    """The message for the supervisor. Everything in a JobDone is plain data, but should
    anything in it not pickle, the job fails saying so: a worker never dies of it."""
    try:
        return encode(done)
    except Exception as exc:  # noqa: BLE001
        error = f"the attempt's outcome could not be sent to the daemon: {describe(exc)}"
        failed = JobDone(
            done.id, done.attempt, False, None, error, None, done.started_at, done.finished_at
        )
        return encode(failed)


def worker_main(
    rfd: int,
    wfd: int,
    log_dir: str,
    log_max_bytes: int,
    parent: int,
    lease: SharedLease | None = None,
    journal_dir: str | None = None,
) -> None:
    """Entry point in the forked child; never returns."""
    code = 0
    try:
        os.setpgid(0, 0)
        die_with_parent()
        adopt_orphans()
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        install_std_streams()  # a job's print() never raises for a full disk
        global _worker
        journal = StartJournal(journal_dir) if journal_dir is not None else None
        _worker = Worker(rfd, wfd, log_dir, log_max_bytes, lease, journal)
        _worker.serve()
        _worker.spool.close()
    except BrokenPipeError:  # its supervisor is gone (it dies with it): nothing to report
        code = 1
    except BaseException:  # noqa: BLE001
        code = 70
        with contextlib.suppress(BaseException):  # reporting must not change the exit
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
