"""The daemon's periodic services: lease heartbeat, rescuer, scheduler, config reload,
retention (deleting old ended jobs), WAL checkpoints, and watching that the database
path still names the file the daemon has open.

Of the daemons sharing a database, the one holding the leader lease runs the scheduler,
the rescuer and retention; every daemon heartbeats, watches its peers and its file
(docs/architecture.md, "The leader lease").

Each runs from `run_due(mono)` when its deadline passes and reports what the
supervisor should do next; none of them touches workers. Time comes in as arguments
or from the injected clock (invariant 9).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from jobrunner.config import (
    CHECKPOINT_EVERY,
    WAL_CHECK_EVERY,
    WAL_WARN_BYTES,
    Config,
    database_path,
    load_config,
)
from jobrunner.daemon.peers import PeerWatch, same_node
from jobrunner.daemon.rescue import rescue
from jobrunner.daemon.scheduler import Scheduler
from jobrunner.durations import format_duration
from jobrunner.errors import DatabaseMoved, DatabaseUnusable, StoreUnavailable
from jobrunner.lifecycle import Outcome, State
from jobrunner.models import DaemonInfo
from jobrunner.node import pid_alive
from jobrunner.retention import prune
from jobrunner.worker.starts import SharedLease, read_starts, remove_journals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.clock import Clock
    from jobrunner.store.base import Store

log = logging.getLogger("jobrunner.daemon")

CONFIG_CHECK_EVERY = 1.0
PRUNE_EVERY = 60.0  # the retention service's period; shorter for retentions under 2m
PRUNE_BATCH = 500  # ended jobs deleted per transaction
# free pages given back to the file system per retention run (4 KiB each: 8 MiB, a few
# ms of the write lock), on files with incremental auto-vacuum (new ones, or vacuumed)
RELEASE_PAGES = 2048
PRUNE_MAX_BATCHES = 4  # per run, so claims never wait long behind a prune
PRUNE_BACKLOG_PAUSE = 0.25  # while old jobs are left, run again this soon
PRUNE_EVENTS_BATCH = 5000  # events deleted per run: small rows, one transaction
# Workers start a claimed job only within this part of the lease after the last
# heartbeat began: peers wait the whole lease, so the rest is the margin for the race
# between a worker's check and a peer's rescue (worker/starts.py).
LEASE_TRUSTED = 2 / 3
LEADER = "leader"  # the lease whose holder runs the scheduler, the rescuer and retention


@dataclass(slots=True)
class Due:
    """What the services found that the supervisor must act on."""

    claim: bool = False  # jobs may be ready: a schedule fired or a job was rescued
    cancels: bool = False  # look for cancel requests
    config: Config | None = None  # a reloaded config to switch to
    claims_lost: bool = False  # peers presumed this daemon dead and rescued its claims


class Services:
    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        info: DaemonInfo,
        log_dir: str,
        lease: SharedLease | None = None,
        config_file: str | None = None,
    ) -> None:
        self.config = config
        self.config_file = config_file or config.path  # reloaded from, once it exists
        self.store = store
        self.clock = clock
        self.info = info
        self.log_dir = log_dir  # jobs' output files, deleted with the jobs
        self.lease = lease  # what the workers see of this daemon's lease
        self.epoch = 1  # moves on each time this daemon learns its claims were rescued
        self.scheduler = Scheduler(config, store)
        mono = clock.monotonic()
        self.heartbeat_every = config.daemon.lease / 3
        self.next_heartbeat = mono + self.heartbeat_every
        # Peers are watched every heartbeat period (a read); the rescue transaction runs
        # when one is found dead, and every lease for jobs of no daemon at all.
        self.peers = PeerWatch(info.id, info.node, config.daemon.lease)
        self.dead_peers: set[str] = set()  # as last judged
        self.leading_until = float("-inf")  # monotonic: this daemon surely leads until then
        self.led = False  # it held the lease at its last look (what the log last said)
        self.next_rescue = mono  # at start, then every heartbeat period
        self.next_sweep = mono
        self.next_schedule = 0.0  # wall time: the next fire
        # ... and at least every poll_interval of monotonic time (pauses and resumes),
        # also when the wall clock was stepped back and the next fire is an hour away
        self.next_schedule_poll = mono
        self.next_config_check = mono + CONFIG_CHECK_EVERY
        self.config_mtime = _mtime(self.config_file)
        self.reload_requested = False
        self.next_prune = mono  # at start too: a daemon may not live a whole period
        self.next_checkpoint = mono + CHECKPOINT_EVERY
        self.next_wal_check = mono + WAL_CHECK_EVERY
        self.wal_warn_bytes = WAL_WARN_BYTES
        self.wal_warned = False

    def register(self) -> None:
        """Expire dead daemons of this node, then register this one."""
        for other in self.store.daemon_list():
            if not same_node(other, self.info.node) or other.lease_until <= 0:
                continue
            if not pid_alive(other.pid):
                # Its pid is gone: dead for sure. Rescue its jobs now rather than after
                # its lease runs out, so a restart after kill -9 resumes at once.
                log.info("daemon %s (pid %d) is gone; rescuing its jobs now", other.id, other.pid)
                self.store.daemon_expire(other.id)
        mono = self.clock.monotonic()
        self._renew_info()
        self.store.daemon_register(self.info)
        self._trust_lease_from(mono)
        self._lead(mono, stopping=False)

    def _renew_info(self) -> None:
        now = self.clock.now()
        self.info.heartbeat_at = now
        self.info.lease_until = now + self.config.daemon.lease

    def _trust_lease_from(self, mono: float) -> None:
        """A heartbeat that began at `mono` committed: peers cannot presume this daemon
        dead before `mono + lease` (they time it from when they saw the heartbeat)."""
        if self.lease is not None:
            self.lease.publish(mono + self.config.daemon.lease * LEASE_TRUSTED, self.epoch)

    def lease_alive(self, mono: float) -> bool:
        """Whether this daemon's claims are surely still its own."""
        return self.lease is None or mono < self.lease.deadline()

    def deadline(self, mono: float, stopping: bool) -> float:
        """The monotonic time something here is next due."""
        deadlines = [self.next_heartbeat, self.next_rescue]
        if self.config.schedules and not stopping and self.leading(mono):
            deadlines.append(
                min(mono + self.next_schedule - self.clock.now(), self.next_schedule_poll)
            )
        if not stopping:
            deadlines += [self.next_prune, self.next_checkpoint, self.next_wal_check]
        return min(deadlines)

    def run_due(self, mono: float, stopping: bool) -> Due:
        due = Due()
        if self.config_file and (self.reload_requested or mono >= self.next_config_check):
            self.next_config_check = mono + CONFIG_CHECK_EVERY
            mtime = _mtime(self.config_file)
            if self.reload_requested or mtime != self.config_mtime:
                self.reload_requested = False
                self.config_mtime = mtime
                due.config = self._reload()
        if mono >= self.next_heartbeat:
            self.next_heartbeat = mono + self.heartbeat_every
            due.claims_lost = self._heartbeat(mono)
            due.cancels = True
            self._lead(mono, stopping)  # first: what follows may be the leader's
            if self.leading(mono):
                self.store.job_counts_fold()
        if self.config.schedules and not stopping and self.leading(mono):
            now = self.clock.now()
            if now >= self.next_schedule or mono >= self.next_schedule_poll:
                try:
                    created, upcoming = self.scheduler.run_once(now)
                except StoreUnavailable:
                    raise
                except Exception as exc:  # noqa: BLE001 - a bad schedule must not stop jobs
                    log.error(
                        "scheduler failed, retrying next tick: %s: %s", type(exc).__name__, exc
                    )
                    created, upcoming = [], None
                due.claim |= bool(created)
                self.next_schedule_poll = mono + self.config.daemon.poll_interval
                self.next_schedule = upcoming if upcoming is not None else float("inf")
        if mono >= self.next_rescue:
            self.next_rescue = mono + self.heartbeat_every
            due.claim |= self._rescue(mono, stopping)
        if not stopping and mono >= self.next_prune and self.leading(mono):
            self.next_prune = mono + self._prune()
        if not stopping and mono >= min(self.next_checkpoint, self.next_wal_check):
            periodic = mono >= self.next_checkpoint
            if periodic:
                self.next_checkpoint = mono + CHECKPOINT_EVERY
            self.next_wal_check = mono + WAL_CHECK_EVERY
            self._check_file()
            self._checkpoint(periodic)
        return due

    def _check_file(self) -> None:
        """The database path must still name the file the daemon has open. Deleted (its
        folder removed, say) or replaced (a backup restored over it), the daemon would
        go on with a file nobody else sees: its heartbeats, claims and results would
        reach no one, and the jobs submitted at that path would never run. It stops
        instead, with exit 3, so that a restart opens the file now at the path."""
        maintenance = self.store.maintenance()
        moved = None if maintenance is None else maintenance.moved()
        if moved is not None:
            raise DatabaseMoved(
                f"{self.store.path}: the database file was {moved} while the daemon had it "
                "open; what it writes would reach no one"
            )

    def leading(self, mono: float) -> bool:
        """Whether this daemon holds the leader lease (and surely still does)."""
        return mono < self.leading_until

    def _lead(self, mono: float, stopping: bool) -> None:
        """Renew the leader lease, or take it when it is free, expired, or held by a
        peer this daemon judges dead (on its own monotonic clock, as the rescue does: a
        wall clock stepped back must not keep a dead leader's lease for an hour). A
        stopping daemon hands it over at once. Two leaders for a moment (a wall clock
        stepped forward) do no harm: fires, rescues and deletes are all fenced."""
        me, ttl = self.info.id, self.config.daemon.lease
        was = self.leading(mono)
        if stopping:
            if was:
                self.store.lease_release(LEADER, me)
                self.leading_until = float("-inf")
                self.led = False
                log.info("stopping: handing the leader lease over")
            return
        now = self.clock.now()
        if was and self.store.lease_renew(LEADER, me, ttl, now):
            holder = me
        else:
            holder = self.store.lease_acquire(LEADER, me, ttl, now)
            if holder != me and holder in self.dead_peers:
                self.store.lease_release(LEADER, holder)
                holder = self.store.lease_acquire(LEADER, me, ttl, now)
        if holder == me:
            self.leading_until = mono + ttl * LEASE_TRUSTED
            if not was:
                if not self.led:
                    log.info(
                        "leading: this daemon fires schedules, rescues and deletes expired jobs"
                    )
                self.next_schedule = 0.0  # look at the schedules now
                self.next_schedule_poll = mono
            self.led = True
        else:
            self.leading_until = float("-inf")
            if self.led:  # also after a freeze that outlasted the lease: say it went
                log.warning("no longer leading: daemon %s holds the leader lease", holder)
            self.led = False

    def _rescue(self, mono: float, stopping: bool) -> bool:
        """Rescue the running jobs of peers presumed dead (judged on this daemon's
        monotonic clock, see peers.py) and of no daemon; never this daemon's own. Every
        daemon judges, so that one taking over as leader knows already; the leader
        rescues."""
        dead = self.peers.dead(self.store.daemon_list(), mono)
        newly_dead = dead.keys() - self.dead_peers
        self.dead_peers = set(dead)
        if newly_dead and not self.leading(mono):
            self._lead(mono, stopping)  # the leader may be among them: take over now
        if not self.leading(mono):
            return False
        if not dead and mono < self.next_sweep:
            return False
        self.next_sweep = mono + self.config.daemon.lease
        for peer, why in dead.items():
            log.warning("daemon %s presumed dead: %s; rescuing its jobs", peer, why)
        # Which of their claims had started: their workers' start journals (the rest
        # go back to the queue without using an attempt; worker/starts.py).
        starts = {peer: read_starts(self.log_dir, peer) for peer in dead}
        applied = rescue(self.store, list(dead), self.info.id, starts, self.clock.now())
        for owner, end in applied:
            if end.outcome is Outcome.NOT_STARTED:
                log.warning(
                    "job %d: returned to the queue from %s, which never started it",
                    end.job_id,
                    owner,
                )
            else:
                log.warning("job %d: rescued from %s (%s)", end.job_id, owner, end.next_state)
        for peer in {*dead, *(owner for owner, _ in applied if owner)}:
            remove_journals(self.log_dir, peer)
        return bool(applied)

    def prune_every(self) -> float:
        """The retention service's period: PRUNE_EVERY, or half the shortest retention."""
        keep = self.config.retention
        return min(PRUNE_EVERY, min(keep.succeeded, keep.dead, keep.events) / 2)

    def _prune(self) -> float:
        """Delete ended jobs past their retention, a bounded number of small batches at
        a time, with their logs; returns when to run next."""
        keep = self.config.retention
        now = self.clock.now()
        cutoffs = [
            (State.SUCCEEDED, now - keep.succeeded),
            (State.DEAD, now - keep.dead),
            (State.CANCELLED, now - keep.dead),
        ]
        try:
            removed, more = prune(self.store, cutoffs, PRUNE_BATCH, PRUNE_MAX_BATCHES)
            if self.config.webhooks is None:
                # No dispatcher will read the feed for deliveries: events it has not
                # read are not kept for it (docs/architecture.md, "Webhooks").
                cursor, last = self.store.webhook_cursor(), self.store.events_last_seq()
                if cursor < last:
                    self.store.webhook_enqueue(cursor, last, [], now)
            events = self.store.events_prune(now - keep.events, PRUNE_EVENTS_BATCH)
            deliveries = self.store.webhook_prune(now - keep.events, PRUNE_EVENTS_BATCH)
            maintenance = self.store.maintenance()
            if maintenance is not None:  # a file: what was deleted goes back to the disk
                maintenance.release_free_pages(RELEASE_PAGES)
        except DatabaseUnusable:
            raise
        except StoreUnavailable as exc:
            log.warning("retention: %s; trying again later", exc)
            return self.prune_every()
        more = more or PRUNE_EVENTS_BATCH in (events, deliveries)
        if removed:
            log.info(
                "retention: deleted %d ended job(s) and their logs (%s; retention: succeeded "
                "%s, dead and cancelled %s)%s",
                sum(removed.values()),
                ", ".join(f"{n} {state}" for state, n in removed.items()),
                format_duration(keep.succeeded),
                format_duration(keep.dead),
                "; more to delete" if more else "",
            )
        return PRUNE_BACKLOG_PAUSE if more else self.prune_every()

    def _checkpoint(self, periodic: bool) -> None:
        """Keep the write-ahead log bounded: after a burst it would otherwise keep its
        size. Every CHECKPOINT_EVERY, and as soon as it is over `wal_max` (an os.stat
        every WAL_CHECK_EVERY), it is checkpointed and truncated: SQLite's own automatic
        checkpoints never shrink the file, and one held back by a long reader lets it
        grow without limit, so it is truncated again within a second of the reader going.
        Never waits; a long reader can hold it back, which is logged once."""
        maintenance = self.store.maintenance()
        if maintenance is None:
            return  # the backend keeps no write-ahead log of ours
        wal = maintenance.wal_bytes()
        if wal == 0 or (not periodic and wal <= self.config.daemon.wal_max):
            return  # nothing written since the last one, or not due yet
        try:
            result = maintenance.checkpoint()
        except DatabaseUnusable:
            raise
        except StoreUnavailable as exc:
            log.warning("WAL checkpoint failed: %s; trying again later", exc)
            return
        if not result.busy:
            self.wal_warned = False
        elif result.wal_bytes > self.wal_warn_bytes and not self.wal_warned:
            self.wal_warned = True
            log.warning(
                "the write-ahead log %s-wal is %d MiB and cannot be truncated: a long-running "
                "reader of the database is holding checkpoints back",
                self.store.path,
                result.wal_bytes >> 20,
            )

    def _heartbeat(self, mono: float) -> bool:
        """Extend the lease; True when peers had presumed this daemon dead (its claims
        were rescued: the supervisor must drop them all) and it registered again."""
        now = self.clock.now()
        if self.store.daemon_heartbeat(self.info.id, now, now + self.config.daemon.lease):
            self._trust_lease_from(mono)
            return False
        log.error(
            "daemon %s was presumed dead and its jobs rescued; dropping every claim it "
            "held and registering again",
            self.info.id,
        )
        self.epoch += 1  # no job sent to a worker before this can start now
        self._renew_info()
        self.store.daemon_register(self.info)
        self._trust_lease_from(mono)
        return True

    def _reload(self) -> Config | None:
        """Reread the config (SIGHUP, or the file changed). A bad config is refused and
        the running one kept. Schedules, tasks and queue limits change at once; worker
        count, queues, lease and imports need a restart."""
        path = self.config_file
        if path is None or not os.path.exists(path):
            log.warning(
                "config not reloaded: %s does not exist; keeping the running config "
                "(it is loaded once written there)",
                path,
            )
            return None
        try:
            new = load_config(path)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the running config
            log.error("config reload refused, keeping the running config: %s", exc)
            return None
        if (
            new.daemon != self.config.daemon
            or new.imports != self.config.imports
            or _database(new) != _database(self.config)
        ):
            log.warning(
                "config reloaded; changes to [daemon], imports or database apply after a restart"
            )
        new.daemon = self.config.daemon
        new.imports = self.config.imports
        self.config = new
        self.scheduler.config = new
        self.next_schedule = 0.0
        self.next_schedule_poll = 0.0
        log.info("config reloaded from %s: %d schedule(s)", path, len(new.schedules))
        return new


def _database(config: Config) -> str:
    from jobrunner.store import absolute

    return absolute(database_path(None, config))


def _mtime(path: str | None) -> float | None:
    if path is None:
        return None
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
