"""The supervisor: the single writer of its daemon.

One loop, no threads: poll() on the wake socket, the signal pipe and the workers'
result pipes; claim in batches up to the free worker slots; record finishes in
groups; heartbeat, rescue, enforce timeouts and cancels. `run()` is the daemon as a
library function; the CLI only parses arguments and calls it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import socket
import sys
import uuid
from dataclasses import dataclass, field
from typing import cast

from jobrunner.clock import SYSTEM
from jobrunner.config import Config
from jobrunner.daemon.backoff import StoreBackoff
from jobrunner.daemon.children import Child, helpers_for
from jobrunner.daemon.dispatch import Dispatch
from jobrunner.daemon.events import EventLog
from jobrunner.daemon.events import install as install_log_handler
from jobrunner.daemon.inflight import InFlight
from jobrunner.daemon.records import Records
from jobrunner.daemon.sdnotify import Notifier
from jobrunner.daemon.services import Services
from jobrunner.daemon.shipping import OutputShipper
from jobrunner.errors import DatabaseMoved, DatabaseUnusable, StoreUnavailable
from jobrunner.models import DaemonInfo
from jobrunner.node import node
from jobrunner.store import WAKE_CANCEL, open_store
from jobrunner.worker import spool
from jobrunner.worker.containment import Containment
from jobrunner.worker.guard import GroupGuard
from jobrunner.worker.pool import (
    KillOrder,
    WorkerHandle,
    describe_exit,
    preload,
    spawn_worker,
)
from jobrunner.worker.starts import (
    SharedLease,
    create_journals,
    remove_journal,
    remove_journals,
)
from jobrunner.worker.usage import OomWatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from jobrunner.clock import Clock
    from jobrunner.store.base import SharedOutput

log = logging.getLogger("jobrunner.daemon")

EXIT_OK = 0
EXIT_FORCED = 130
EXIT_DATABASE = 3  # the database is damaged or no longer at its path: restart on it


@dataclass(slots=True)
class Options:
    workers: int
    queues: list[str] | None
    events: EventLog
    config_file: str | None = None  # reread on SIGHUP and when it changes or appears
    systemd: Notifier = field(default_factory=Notifier)  # readiness for Type=notify


class Supervisor:
    def __init__(self, config: Config, db_path: str, clock: Clock, opts: Options) -> None:
        self.config = config
        self.db_path = db_path
        self.clock = clock
        self.opts = opts
        self.events = opts.events
        self.store = open_store(
            db_path,
            synchronous=config.daemon.synchronous,
            writer=True,
            listen=config.postgres.listen,
        )
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # Where this host's workers write jobs' output (and start journals): the store's
        # output folder on this host (store/base.py, OutputStore).
        self.log_dir = self.store.output().local_dir
        os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
        self.workers: dict[int, WorkerHandle] = {}  # by from_fd
        self.writers: dict[int, WorkerHandle] = {}  # by to_fd, while output is pending
        self.dead_journals: list[int] = []  # dead workers', removed once their ends are in
        self.pending_group_kills: list[tuple[float, int]] = []
        self.stopping = False
        self.forced = False
        self.grace_over = False
        self.stop_deadline = 0.0
        self.check_cancels = True
        self.next_look = 0.0  # while no wake-up can come: look for cancels by then
        self.signals: list[int] = []
        self.oom = OomWatch()
        self.backoff = StoreBackoff()  # while the database cannot be written
        self.unusable: DatabaseUnusable | None = None  # why the daemon stops, exit 3
        now = clock.now()
        info = DaemonInfo(
            self.id,
            socket.gethostname(),
            os.getpid(),
            now,
            now,
            now,
            opts.workers,
            opts.queues,
            node(),
        )
        # What the workers know of the lease, and where they journal the jobs they start
        # (worker/starts.py): both made before the first worker is forked.
        self.lease = SharedLease()
        self.journals = create_journals(self.log_dir, self.id)
        if self.journals is None:
            log.warning(
                "cannot make the start journals under %s: if this daemon dies, its claims "
                "count as started",
                self.log_dir,
            )
        self.services = Services(
            config, self.store, clock, info, self.log_dir, self.lease, opts.config_file
        )
        self.records = Records(self.store, self.id, self.events, clock)  # what to write
        output = self.store.output()
        self.shipper = OutputShipper(cast("SharedOutput", output)) if output.shared else None
        self.records.shipper = self.shipper
        self.dispatch = Dispatch(
            self.id, opts.queues, self.store, self.services, self.records, self.events, clock
        )
        self.inflight = InFlight(self.dispatch, self.records, clock)  # what workers hold
        self.children: list[Child] = []  # the HTTP server, the webhook dispatcher

    # -- start and stop --

    def start(self) -> None:
        preload(self.config)
        self.services.register()
        self.wake = self.store.waker(self.id.replace(":", "-"))
        self.wake_fd: int | None = self.wake.fileno()  # None: lost, made again at a step
        self.sig_r, self.sig_w = os.pipe()
        os.set_blocking(self.sig_r, False)
        os.set_blocking(self.sig_w, False)
        signal.set_wakeup_fd(self.sig_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        gc.freeze()  # keep preloaded objects' pages shared with the workers
        # Before any fork: we adopt our jobs' orphans, and each worker gets a cgroup.
        self.contain = Containment(self.config.daemon.cgroups)
        self.guard = GroupGuard(self._fds_not_for_children(), cgroup=self.contain.root)
        orphans = spool.salvage_orphans(self.log_dir, self.config.log_max_bytes)  # a killed
        if self.shipper is not None:  # daemon's; on a shared store, into the database
            with contextlib.suppress(StoreUnavailable):
                self.shipper.adopt(orphans)
        for _ in range(self.opts.workers):
            self._spawn()
        self.poller = select.poll()
        self.poller.register(self.wake_fd, select.POLLIN)
        self.poller.register(self.sig_r, select.POLLIN)
        for w in self.workers.values():
            self.poller.register(w.from_fd, select.POLLIN)
        log.info(
            "daemon %s ready: %d worker%s, queues %s, database %s, %s",
            self.id,
            self.opts.workers,
            "" if self.opts.workers == 1 else "s",
            ",".join(self.opts.queues or ["*"]),
            self.db_path,
            self.contain.describe(),
        )
        self.children = helpers_for(self.config, self.db_path, self.opts.config_file, self.poller)
        for child in self.children:
            child.start(self.clock.monotonic())
        self.opts.systemd.send("READY=1", f"STATUS=running jobs with {self.opts.workers} workers")

    def _fds_not_for_children(self) -> list[int]:
        fds = [self.sig_r, self.sig_w]
        if self.wake_fd is not None:
            fds.append(self.wake_fd)
        if getattr(self, "guard", None) is not None:
            fds.append(self.guard.fd)
        for w in self.workers.values():
            fds += [w.to_fd, w.from_fd]
        return fds

    def _spawn(self) -> WorkerHandle:
        w = spawn_worker(
            self.log_dir,
            self.config.log_max_bytes,
            self._fds_not_for_children(),
            self.lease,
            self.journals,
            self.contain,
        )
        self.workers[w.from_fd] = w
        self.guard.add(w.pid)
        return w

    def _our_children(self) -> set[int]:
        """The children we forked; any other child is a job's process we adopted."""
        helpers = {c.pid for c in self.children if c.pid is not None}
        return {w.pid for w in self.workers.values()} | {self.guard.pid} | helpers

    def _kill_group(self, pgid: int) -> None:
        """SIGKILL what is left of a dead worker's jobs (its group, and its cgroup or
        the processes we adopted from it), then stop guarding it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        self.contain.end_worker(pgid, self._our_children())
        self.guard.forget(pgid)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def run(self) -> int:
        self.start()
        try:
            while True:
                self._step()
                self.events.flush()
                self.opts.systemd.pet(self.clock.monotonic())
                if self.stopping and not self._busy():
                    break
                if self.stopping and self.backoff.give_up(
                    self.unusable is not None or self.clock.monotonic() >= self.stop_deadline,
                    any(w.inflight for w in self.workers.values()),
                    self.records.pending() + len(self.dispatch.ready),
                ):
                    break
        finally:
            self._shutdown()
            self.events.flush()
        if self.unusable is not None:
            return EXIT_DATABASE
        return EXIT_FORCED if self.forced else EXIT_OK

    def _busy(self) -> bool:
        return bool(self.records.pending() or self.dispatch.ready) or any(
            w.inflight for w in self.workers.values()
        )

    def _shutdown(self) -> None:
        for child in self.children:
            child.stop()
        try:
            self._flush()
        except StoreUnavailable as exc:
            log.error("could not record the last results before stopping: %s", exc)
        # With every end recorded, no claim is left for a rescuer to judge.
        settled = not self._busy()
        for w in list(self.workers.values()):
            os.close(w.to_fd)  # EOF: exit when idle
        for w in list(self.workers.values()):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(w.pid, 0)
            with contextlib.suppress(OSError):
                os.close(w.from_fd)
        self.workers.clear()
        for _, pgid in self.pending_group_kills:
            self._kill_group(pgid)
        self.contain.kill_adopted(self._our_children())  # left by jobs that ended
        self.guard.close()  # it kills whatever jobs left behind in the workers' groups
        self.contain.close()  # and in their cgroups
        if settled:
            remove_journals(self.log_dir, self.id)  # else kept for the rescuer
        with contextlib.suppress(StoreUnavailable):
            self.store.daemon_unregister(self.id)
        self.wake.close()
        signal.set_wakeup_fd(-1)
        self.store.close()
        log.info("daemon %s stopped", self.id)

    # -- the loop --

    def _step(self) -> None:
        timeout = self._poll_timeout()
        for fd, _event in self.poller.poll(timeout * 1000 if timeout is not None else None):
            if fd == self.sig_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.sig_r, 512)
            elif fd == self.wake_fd:
                self._drain_wake()
            elif fd in self.writers:
                w = self.writers[fd]
                w.flush()
                self._watch(w)
            elif fd in self.workers:
                w = self.workers[fd]
                self._on_messages(w, w.read())
                if w.eof:
                    self.poller.unregister(fd)
            else:
                for child in self.children:
                    if fd == child.fd:
                        child.read()
        self._handle_signals()
        mono = self.clock.monotonic()
        for child in self.children:
            child.tick(mono)
        self._enforce(mono)
        if self.backoff.waiting(mono):
            return
        if self.shipper is not None:
            self.shipper.look(mono, self._running(), self.config.log_max_bytes)
        try:  # a failed write is rolled back whole; _flush keeps what it had to record
            if self.wake_fd is None:
                self._listen_again()
            self._housekeeping(mono)  # before the claim: jobs it fires or rescues go out now
            if not self.stopping:
                if self.dispatch.flush_first:  # ends a limited queue's claim must count
                    self.dispatch.flush_first = False
                    self._flush()
                for fd in self.dispatch.fill(self.workers.values(), self.config, mono):
                    self._watch(self.workers[fd])
            self._flush()
        except DatabaseUnusable as exc:
            self._database_unusable(exc)
        except StoreUnavailable as exc:
            self.backoff.failed(exc, self.clock.monotonic(), len(self.records.ends))
        else:
            self.backoff.succeeded(self.clock.monotonic())

    def _drain_wake(self) -> None:
        try:
            data = self.wake.drain()
        except StoreUnavailable as exc:
            # Its connection was lost (PostgreSQL: the server restarted, the backend was
            # terminated). Wake-ups sent meanwhile are lost: look at the database now
            # and at each poll_interval until another listens (made at a step).
            log.warning("wake-ups lost, polling until listening again: %s", exc)
            assert self.wake_fd is not None
            self.poller.unregister(self.wake_fd)
            self.wake.close()
            self.wake_fd = None
            data = WAKE_CANCEL
        self.dispatch.woken(data, self.clock.monotonic())
        if WAKE_CANCEL in data:
            self.check_cancels = True

    def _listen_again(self) -> None:
        """Another waker for the one whose connection was lost (StoreUnavailable while
        the database cannot be reached: backing off, as for any store work)."""
        self.wake = self.store.waker(self.id.replace(":", "-"))
        self.wake_fd = self.wake.fileno()
        self.poller.register(self.wake_fd, select.POLLIN)
        self.dispatch.check_db = self.check_cancels = True  # what it missed meanwhile
        log.info("wake-ups: listening again")

    def _poll_timeout(self) -> float | None:
        mono = self.clock.monotonic()
        store_work = [self.services.deadline(mono, self.stopping)]  # all need the database
        if self.records.pending() or self.check_cancels:
            store_work.append(mono)
        deadlines = [max(min(store_work), self.backoff.retry_at)]  # not while backing off
        if not self.stopping:
            # With every worker full, wait for a finish, not for the poll interval
            # (which a claim that filled the workers leaves in the past: a spin).
            if self.dispatch.free_slots(self.workers.values())[1] > 0:
                due = mono if self.dispatch.check_db else self.dispatch.next_claim()
                deadlines.append(max(due, self.backoff.retry_at))
        else:
            deadlines.append(self.stop_deadline)
        if self.shipper is not None:
            look = self.shipper.deadline(any(w.head for w in self.workers.values()))
            if look is not None:
                deadlines.append(look)
        for w in self.workers.values():
            if w.kill:
                deadlines.append(w.kill.kill_at)
            head = w.head
            if head is not None and head.timeout:
                deadlines.append(w.head_since + head.timeout)
        if self._deaf() and any(w.inflight for w in self.workers.values()):
            deadlines.append(self.next_look)
        deadlines += [t for t, _ in self.pending_group_kills]
        deadlines += [c.restart_at for c in self.children if c.restart_at is not None]
        return max(0.0, min(deadlines) - mono)

    def _watch(self, w: WorkerHandle) -> None:
        """Watch the worker's job pipe for room while it has unsent bytes."""
        if w.outbuf and w.to_fd not in self.writers:
            self.writers[w.to_fd] = w
            self.poller.register(w.to_fd, select.POLLOUT)
        elif not w.outbuf and w.to_fd in self.writers:
            del self.writers[w.to_fd]
            self.poller.unregister(w.to_fd)

    # -- signals --

    def _handle_signals(self) -> None:
        while self.signals:
            sig = self.signals.pop(0)
            if sig == signal.SIGCHLD:
                self._reap()
            elif sig == signal.SIGHUP:
                self.services.reload_requested = True
                self.events.reopen()
            elif not self.stopping:
                log.info(
                    "received %s: draining (grace %ss); send SIGINT again to kill jobs",
                    signal.Signals(sig).name,
                    self.config.daemon.shutdown_grace,
                )
                self._begin_stop()
            elif sig == signal.SIGINT or sig == signal.SIGTERM:
                log.warning(
                    "second %s: killing running jobs and returning them for retry",
                    signal.Signals(sig).name,
                )
                self._force_stop()

    def _begin_stop(self) -> None:
        self.opts.systemd.send("STOPPING=1", "STATUS=draining the running jobs")
        self.stopping = True
        self.stop_deadline = self.clock.monotonic() + self.config.daemon.shutdown_grace
        while self.dispatch.ready:  # claimed but never sent: hand back
            job = self.dispatch.ready.popleft()
            self.records.release.append((job.id, job.attempts))
        for w in self.workers.values():
            for key in list(w.inflight)[1:]:
                w.send(("skip", *key))

    def _database_unusable(self, exc: DatabaseUnusable) -> None:
        """Stop for good with exit 3 (retrying cannot help), for a supervisor to restart
        the daemon. Damaged: as on SIGTERM, running jobs may finish within the grace
        (the lease still holds; results are recorded where the damage allows). Moved:
        for the file now at the path this daemon is dead already, its jobs there free to
        be rescued, so its running jobs are killed at once, as when a daemon dies."""
        if self.unusable is not None:  # already stopping: results that cannot be written
            self.backoff.failed(exc, self.clock.monotonic(), len(self.records.ends))
            return
        self.unusable = exc
        moved = isinstance(exc, DatabaseMoved)
        grace = f"({self.config.daemon.shutdown_grace:g}s)"
        log.error(
            "%s; stopping (exit %d): no more claims, %s",
            exc,
            EXIT_DATABASE,
            "running jobs killed"
            if moved
            else f"running jobs may finish within shutdown_grace {grace}",
        )
        if not self.stopping:
            self._begin_stop()
        if moved:
            self._force_stop()

    def _force_stop(self) -> None:
        self.forced = True
        mono = self.clock.monotonic()
        for w in self.workers.values():
            head = w.head
            if head is not None and w.kill is None:
                w.kill = KillOrder("shutdown", head.id, mono)  # SIGKILL at once
                w.signal_group(signal.SIGKILL)

    # -- results --

    def _on_messages(self, w: WorkerHandle, messages: list[object]) -> None:
        self.inflight.on_messages(w, messages, self.config, self.stopping)

    def _flush(self) -> None:
        due = self.records.write()
        if due is not None:  # a retry: poll again when it falls due
            self.dispatch.poll_again_by(due)
        while self.dead_journals:  # what they covered is recorded now
            pid = self.dead_journals.pop()
            if self.journals is not None:
                remove_journal(self.journals, pid)

    # -- workers dying --

    def _reap(self) -> None:
        by_pid = {w.pid: w for w in self.workers.values()}
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            w = by_pid.get(pid)
            if w is not None:
                self._on_worker_exit(w, status, usage.ru_maxrss)
            elif (child := next((c for c in self.children if c.pid == pid), None)) is not None:
                child.exited(describe_exit(status), self.clock.monotonic(), self.stopping)
            elif pid == self.guard.pid:
                log.warning("group guard exited (%s); starting another", describe_exit(status))
                self.guard = GroupGuard(
                    self._fds_not_for_children(), self.guard.groups, self.contain.root
                )
            elif self.contain.root is None and not self._group_kill_pending():
                # A job's process we adopted exited: one it forked meanwhile (a daemonizing
                # double fork) is ours now. Without a cgroup, end it.
                self.contain.kill_adopted(self._our_children())

    def _group_kill_pending(self) -> bool:
        """A dead worker's processes still have their kill grace: leave them that."""
        mono = self.clock.monotonic()
        return any(t > mono for t, _ in self.pending_group_kills)

    def _on_worker_exit(self, w: WorkerHandle, status: int, max_rss_kb: int) -> None:
        self._on_messages(w, w.read())  # results it sent before it died still count
        for fd in (w.from_fd, w.to_fd):
            with contextlib.suppress(KeyError):
                self.poller.unregister(fd)
        self.writers.pop(w.to_fd, None)
        w.close()
        del self.workers[w.from_fd]
        how = describe_exit(status)
        spool.salvage(self.log_dir, w.pid, self.config.log_max_bytes)  # what it printed
        self.dead_journals.append(w.pid)
        self.inflight.on_worker_death(
            w,
            status,
            how,
            self.config,
            self.stopping,
            max_rss_kb=max_rss_kb,
            oom_killed=self.oom.killed(status),
        )
        # A job's leftover processes must not outlive it (it is retried elsewhere): SIGKILL
        # the group at the kill order's time, or now after a crash.
        kill_at = w.kill.kill_at if w.kill is not None else self.clock.monotonic()
        self.pending_group_kills.append((kill_at, w.pid))
        if not self.stopping:
            self.poller.register(self._spawn().from_fd, select.POLLIN)

    # -- timeouts, cancels --

    def _enforce(self, mono: float) -> None:
        for w in self.workers.values():
            w.enforce(mono, self.config.daemon.kill_grace)
        if (
            self.stopping
            and not self.forced
            and not self.grace_over
            and mono >= self.stop_deadline
            and self._busy()
        ):
            log.warning("shutdown grace over: killing running jobs and returning them for retry")
            self.grace_over = True  # once: the kills take a moment to be reaped
            self._force_stop()
            self.forced = False  # an orderly stop that ran out of time still exits 0
        due = [(t, g) for t, g in self.pending_group_kills if t <= mono]
        if due:
            self.pending_group_kills = [(t, g) for t, g in self.pending_group_kills if t > mono]
            for _, pgid in due:
                self._kill_group(pgid)
        self.contain.retry_removals()
        if self.check_cancels and not self.backoff.waiting(mono):
            self.check_cancels = False
            try:
                self._apply_cancels(mono)
            except DatabaseUnusable as exc:
                self._database_unusable(exc)
            except StoreUnavailable as exc:  # a lock held long: look again after backing off
                self.check_cancels = True
                self.backoff.failed(exc, mono, len(self.records.ends))

    def _apply_cancels(self, mono: float) -> None:
        requests = dict(self.store.job_cancel_requests(self.id))
        if requests:
            self.inflight.cancel(
                self.workers.values(), requests, mono, self.config.daemon.kill_grace
            )

    # -- housekeeping --

    def _running(self) -> list[tuple[int, int]]:
        """(job, attempt) of what the workers run now."""
        return [(h.id, h.attempts) for w in self.workers.values() if (h := w.head) is not None]

    def _housekeeping(self, mono: float) -> None:
        due = self.services.run_due(mono, self.stopping)
        if due.claims_lost:
            self.inflight.drop_all(self.workers.values(), mono, self.config.daemon.kill_grace)
        if due.config is not None:
            self.config = due.config
        self.dispatch.check_db |= due.claim
        self.check_cancels |= due.cancels
        if self._deaf() and mono >= self.next_look:  # no cancel can wake us: look
            self.next_look = mono + self.config.daemon.poll_interval
            self.check_cancels = True

    def _deaf(self) -> bool:
        """No wake-up can come: listening is off, or its connection was lost."""
        return self.wake_fd is None or self.wake.deaf


def run(
    config: Config,
    db_path: str,
    *,
    workers: int | None = None,
    queues: list[str] | None = None,
    clock: Clock = SYSTEM,
    log_format: str = "text",
    log_stream: TextIO | None = None,
    config_file: str | None = None,
    log_file: str | None = None,
) -> int:
    """Run a daemon until SIGTERM/SIGINT; returns its exit code. `config_file`: the file
    to reload the config from (default: the config's own path), also one that does not
    exist yet: a daemon started without a config loads one written there later.
    `log_file`: the file `log_stream` writes to, opened again on SIGHUP (log rotation)."""
    events = EventLog(log_stream or sys.stderr, log_format, reopen_path=log_file)
    install_log_handler(events)
    opts = Options(
        workers or config.daemon.workers,
        queues or config.daemon.queues,
        events,
        config_file or config.path,
    )
    return Supervisor(config, db_path, clock, opts).run()
