"""The daemon's periodic services: lease heartbeat, rescuer, scheduler, config reload.

Each runs from `run_due(mono)` when its deadline passes and reports what the
supervisor should do next; none of them touches workers. Time comes in as arguments
or from the injected clock (invariant 9).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from jobrunner.config import Config, load_config
from jobrunner.daemon.scheduler import Scheduler
from jobrunner.models import DaemonInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.clock import Clock
    from jobrunner.store.base import Store

log = logging.getLogger("jobrunner.daemon")

CONFIG_CHECK_EVERY = 1.0


@dataclass(slots=True)
class Due:
    """What the services found that the supervisor must act on."""

    claim: bool = False  # jobs may be ready: a schedule fired or a job was rescued
    cancels: bool = False  # look for cancel requests
    config: Config | None = None  # a reloaded config to switch to


class Services:
    def __init__(self, config: Config, store: Store, clock: Clock, info: DaemonInfo) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.info = info
        self.scheduler = Scheduler(config, store)
        mono = clock.monotonic()
        self.heartbeat_every = config.daemon.lease / 3
        self.next_heartbeat = mono + self.heartbeat_every
        self.next_rescue = mono  # at start, then every lease
        self.next_schedule = 0.0  # wall time
        self.next_config_check = mono + CONFIG_CHECK_EVERY
        self.config_mtime = _mtime(config.path)
        self.reload_requested = False

    def register(self) -> None:
        """Expire dead daemons of this host, then register this one."""
        host = socket.gethostname()
        for other in self.store.daemon_list():
            if other.host != host or other.lease_until <= 0:
                continue
            try:
                os.kill(other.pid, 0)
            except ProcessLookupError:
                # Its pid is gone: dead for sure. Rescue its jobs now rather than after
                # its lease runs out, so a restart after kill -9 resumes at once.
                log.info("daemon %s (pid %d) is gone; rescuing its jobs now", other.id, other.pid)
                self.store.daemon_expire(other.id)
            except PermissionError:
                pass  # alive, someone else's
        self._renew_info()
        self.store.daemon_register(self.info)

    def _renew_info(self) -> None:
        now = self.clock.now()
        self.info.heartbeat_at = now
        self.info.lease_until = now + self.config.daemon.lease

    def deadline(self, mono: float, stopping: bool) -> float:
        """The monotonic time something here is next due."""
        deadlines = [self.next_heartbeat, self.next_rescue]
        if self.config.schedules and not stopping:
            deadlines.append(mono + self.next_schedule - self.clock.now())
        return min(deadlines)

    def run_due(self, mono: float, stopping: bool) -> Due:
        due = Due()
        if self.config.path and (self.reload_requested or mono >= self.next_config_check):
            self.next_config_check = mono + CONFIG_CHECK_EVERY
            mtime = _mtime(self.config.path)
            if self.reload_requested or mtime != self.config_mtime:
                self.reload_requested = False
                self.config_mtime = mtime
                due.config = self._reload()
        if self.config.schedules and not stopping:
            now = self.clock.now()
            if now >= self.next_schedule:
                created, upcoming = self.scheduler.run_once(now)
                due.claim |= bool(created)
                limit = now + self.config.daemon.poll_interval  # see pauses and resumes
                self.next_schedule = min(upcoming, limit) if upcoming is not None else limit
        if mono >= self.next_heartbeat:
            self.next_heartbeat = mono + self.heartbeat_every
            self._heartbeat()
            due.cancels = True
        if mono >= self.next_rescue:
            self.next_rescue = mono + self.config.daemon.lease
            for job in self.store.job_rescue(self.clock.now()):
                log.warning(
                    "job %d (%s): rescued from %s, whose lease expired",
                    job.id,
                    job.label,
                    job.owner,
                )
                due.claim = True
        return due

    def _heartbeat(self) -> None:
        now = self.clock.now()
        if not self.store.daemon_heartbeat(self.info.id, now, now + self.config.daemon.lease):
            log.error(
                "daemon %s was presumed dead and its jobs rescued; re-registering", self.info.id
            )
            self._renew_info()
            self.store.daemon_register(self.info)

    def _reload(self) -> Config | None:
        """Reread the config (SIGHUP, or the file changed). A bad config is refused and
        the running one kept. Schedules, tasks and queue limits change at once; worker
        count, queues, lease and imports need a restart."""
        path = self.config.path
        try:
            new = load_config(path)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the running config
            log.error("config reload refused, keeping the running config: %s", exc)
            return None
        if new.daemon != self.config.daemon or new.imports != self.config.imports:
            log.warning("config reloaded; changes to [daemon] or imports apply after a restart")
        new.daemon = self.config.daemon
        new.imports = self.config.imports
        self.config = new
        self.scheduler.config = new
        self.next_schedule = 0.0
        log.info("config reloaded from %s: %d schedule(s)", path, len(new.schedules))
        return new


def _mtime(path: str | None) -> float | None:
    if path is None:
        return None
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
