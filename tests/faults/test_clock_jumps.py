"""Clock jumps: a wall clock stepped an hour forward and back.

Leases are judged on the observer's own monotonic clock (jobrunner/daemon/peers.py): a
peer is dead when its heartbeat value has not changed for `lease` seconds of the
observer's time.monotonic(), or, on the same host, when its pid is gone. So a stepped
wall clock rescues no live job, a daemon never rescues its own jobs, and a daemon that
really stops is still rescued after its lease. Schedules keep wall time: a clock
stepped back never fires a slot twice; stepped forward, the misfire policy decides.

Services and the Scheduler take `now` from a FakeClock (no patching); the last test runs
two real daemons whose wall clocks are stepped through the launcher in vfs_faults.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobrunner.clock import FakeClock
from jobrunner.config import Config, DaemonConfig, ScheduleConfig
from jobrunner.daemon.peers import PeerWatch
from jobrunner.daemon.scheduler import Scheduler
from jobrunner.daemon.services import Services
from jobrunner.lifecycle import State
from jobrunner.models import ClaimRequest, DaemonInfo, JobInsert
from jobrunner.node import node as this_node
from jobrunner.store import open_store
from jobrunner.store.base import Store
from tests.faults.vfs_faults import LaunchedDaemon, launcher_env
from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import jobs_in, submit_file, wait_counts, write_config

HOUR = 3600.0
LEASE = 3.0
START = 1_800_000_000.0  # a whole minute


@dataclass
class Node:
    """One daemon's services on the shared database, with a clock of its own."""

    id: str
    clock: FakeClock
    services: Services
    store: Store

    def tick(self) -> None:
        self.services.run_due(self.clock.monotonic(), stopping=False)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    opened: list[Store] = []

    def make(name: str, host: str, **schedules: ScheduleConfig) -> Node:
        store = open_store(str(tmp_path / "jobs.db"))
        opened.append(store)
        clock = FakeClock(START)
        config = Config(daemon=DaemonConfig(lease=LEASE), schedules=schedules)
        daemon_id = f"{host}:1:{name}"
        info = DaemonInfo(daemon_id, host, 1, START, START, START + LEASE, 1, None)
        services = Services(config, store, clock, info, str(tmp_path / "logs"))
        services.register()
        return Node(daemon_id, clock, services, store)

    yield make
    for store in opened:
        store.close()


def claim(n: Node) -> int:
    (job_id,) = [r.id for r in n.store.job_insert_many([JobInsert(task="a:b")], n.clock.now())]
    (got,) = n.store.job_claim(ClaimRequest(n.id, n.clock.now(), 1, None, {}))
    assert got.id == job_id
    return job_id


def test_stepped_wall_clocks_rescue_no_live_job_and_a_silent_peer_still_goes(
    node: Callable[..., Node],
) -> None:
    # other hosts than this one, so only heartbeats can tell them alive (no pid check)
    a, b = node("a", "host-a"), node("b", "host-b")
    job_a, job_b = claim(a), claim(b)
    steps = {4: (b, +HOUR), 10: (a, +HOUR), 16: (b, -2 * HOUR), 22: (a, -2 * HOUR)}
    for i in range(int(8 * LEASE / 0.5)):  # four leases each way, in half seconds
        for n in (a, b):
            n.clock.advance(0.5)
        if i in steps:
            who, by = steps[i]
            who.clock.step(by)  # an hour forward, later two back: an hour behind
        a.tick()
        b.tick()
        for job_id, owner in ((job_a, a.id), (job_b, b.id)):
            got = a.store.job_get(job_id)
            assert got is not None
            assert (got.state, got.owner, got.attempts) == (State.RUNNING, owner, 1), i
    assert {d.id for d in a.store.daemon_list()} == {a.id, b.id}

    # a stops heartbeating (it hangs): b rescues its job after a lease of b's own
    # monotonic time, however b's wall clock reads, and not before
    silent_since = b.clock.monotonic()
    rescued_at = None
    for _ in range(int(3 * LEASE / 0.5)):
        b.clock.advance(0.5)
        b.tick()
        got = b.store.job_get(job_a)
        assert got is not None
        if got.state is not State.RUNNING:
            rescued_at = b.clock.monotonic()
            break
    assert rescued_at is not None, "the silent daemon's job was never rescued"
    waited = rescued_at - silent_since
    assert LEASE <= waited <= LEASE + 2 * b.services.heartbeat_every, waited
    got = b.store.job_get(job_a)
    assert got is not None and got.state in (State.RETRYING, State.DEAD)
    still = b.store.job_get(job_b)
    assert still is not None and (still.state, still.owner) == (State.RUNNING, b.id)


def test_a_daemon_never_rescues_its_own_jobs_whatever_its_clock_says(
    node: Callable[..., Node],
) -> None:
    a = node("a", "host-a")
    job_id = claim(a)
    for by in (+HOUR, -2 * HOUR, +10 * HOUR):
        a.clock.step(by)
        for _ in range(int(2 * LEASE / 0.5)):
            a.clock.advance(0.5)
            a.tick()
        got = a.store.job_get(job_id)
        assert got is not None and (got.state, got.owner) == (State.RUNNING, a.id)


def test_peer_watch_judges_on_the_observers_monotonic_clock() -> None:
    me = socket.gethostname()
    here = this_node()
    assert here is not None
    watch = PeerWatch("me", here, lease=10.0)

    def peer(pid: int, beat: float, host: str = "elsewhere", lease_until: float = 1.0):
        where = here if host == me else f"{host}/boot/1"
        return DaemonInfo(f"{host}:{pid}", host, pid, 0.0, beat, lease_until, 1, None, where)

    # values from a wall clock an hour either side mean nothing; only change counts
    assert watch.dead([peer(1, START + HOUR)], 100.0) == {}
    assert watch.dead([peer(1, START - HOUR)], 109.0) == {}  # it changed: alive
    assert watch.dead([peer(1, START - HOUR)], 118.9) == {}
    assert list(watch.dead([peer(1, START - HOUR)], 119.0)) == ["elsewhere:1"]
    # a same-host daemon whose pid is gone is dead at once; an expired one too
    gone = 2**22 + 12345  # above pid_max's default: no such process
    assert list(watch.dead([peer(gone, 1.0, host=me)], 200.0)) == [f"{me}:{gone}"]
    # ... but a pid seen from another pid namespace (same hostname), or from a daemon
    # whose node is not known, means nothing: only its heartbeat counts
    for elsewhere in (f"{here}0", None):
        other = DaemonInfo(f"x:{gone}", me, gone, 0.0, 1.0, 1.0, 1, None, elsewhere)
        assert watch.dead([other], 300.0) == {}
    assert list(watch.dead([peer(3, 1.0, lease_until=0)], 200.0)) == ["elsewhere:3"]
    # never itself
    assert watch.dead([DaemonInfo("me", me, 1, 0.0, 0.0, 0.0, 1, None)], 10**6) == {}


# -- schedules ---------------------------------------------------------------------------------


def fires(store: Store) -> list[float]:
    jobs = [j for j in store.job_list(limit=10_000) if j.schedule is not None]
    return sorted(j.scheduled_for for j in jobs if j.scheduled_for is not None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(str(tmp_path / "jobs.db"))
    yield s
    s.close()


@pytest.mark.parametrize(
    "timetable", [{"every": 60.0}, {"cron": "* * * * *"}], ids=["every", "cron"]
)
def test_a_clock_stepped_back_never_fires_a_slot_twice(
    store: Store, timetable: dict[str, Any]
) -> None:
    sc = ScheduleConfig(name="tick", task="app:tick", overlap="allow", **timetable)
    config = Config(schedules={"tick": sc})
    clock = FakeClock(START)
    first, behind = Scheduler(config, store), Scheduler(config, store)  # two daemons
    first.run_once(clock.now())
    clock.advance(150)  # fires START+60, START+120
    first.run_once(clock.now())
    assert fires(store) == [START + 60, START + 120]

    clock.step(-HOUR)  # this host's clock goes back an hour and walks forward again
    for _ in range(int((HOUR + 240) / 90)):
        clock.advance(90)
        first.run_once(clock.now())
        behind.run_once(clock.now() - HOUR)  # and another daemon's is an hour behind
    # every slot once, in order; none before START+180 again
    got = fires(store)
    assert got == sorted(set(got))
    assert got[:3] == [START + 60, START + 120, START + 180]
    assert got[-1] <= clock.now()


def test_the_daemon_keeps_scheduling_after_its_clock_steps_back(
    node: Callable[..., Node],
) -> None:
    """Stepped back an hour, the slots already fired are not due again for an hour; but
    the scheduler still runs every poll interval of monotonic time, so a schedule resumed
    meanwhile (its timetable restarts from the stepped-back now) fires on time."""
    sc = ScheduleConfig(name="tick", task="app:tick", every=60.0, overlap="allow")
    a = node("a", "host-a", tick=sc)
    a.tick()
    a.clock.advance(61)
    a.tick()
    assert fires(a.store) == [START + 60]
    a.clock.step(-HOUR)
    a.store.schedule_set_paused("tick", True, a.clock.now())
    a.store.schedule_set_paused("tick", False, a.clock.now())  # `schedules resume`
    resumed = a.clock.now()
    for _ in range(70):
        a.clock.advance(1)
        a.tick()
    due = (resumed // 60 + 1) * 60
    assert fires(a.store) == [due, START + 60], "no fire after the resume for an hour"


@pytest.mark.parametrize(
    ("misfire", "expected"),
    [("skip", []), ("once", [HOUR - 60]), ("all", [HOUR - 240, HOUR - 180, HOUR - 120, HOUR - 60])],
)
def test_a_clock_stepped_forward_obeys_the_misfire_policy(
    store: Store, misfire: str, expected: list[float]
) -> None:
    sc = ScheduleConfig(
        name="tick",
        task="app:tick",
        every=60.0,
        overlap="allow",
        misfire=misfire,
        max_catchup=4,
        misfire_grace=30.0,
    )
    scheduler = Scheduler(Config(schedules={"tick": sc}), store)
    clock = FakeClock(START)
    scheduler.run_once(clock.now())
    clock.step(HOUR + 10)  # an hour forward: the fire at START+HOUR is on time
    scheduler.run_once(clock.now())
    assert fires(store) == [START + t for t in [*expected, HOUR]]
    scheduler.run_once(clock.now())  # and nothing more for the same instant
    assert len(fires(store)) == len(expected) + 1


# -- real daemons ------------------------------------------------------------------------------


def heartbeats(db: Path) -> dict[str, float]:
    s = open_store(str(db), create=False)
    try:
        return {d.id: d.heartbeat_at for d in s.daemon_list()}
    finally:
        s.close()


@pytest.mark.slow
def test_real_daemons_with_stepped_wall_clocks_keep_their_jobs(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, lease='"2s"', workers="1")
    clocks = {"a": workdir / "clock-a", "b": workdir / "clock-b"}
    for path in clocks.values():
        path.write_text("0")
        env = launcher_env(workdir, db, JR_CLOCK=str(path))
        daemons.append(LaunchedDaemon(workdir, db, env=env))
    # two jobs that run until their `.go` file appears (at most 60 s)
    ids = submit_file(
        workdir, db, [{"task": "jtasks:ticker", "args": [f"u{i}", 1]} for i in range(2)]
    )

    def owners() -> set[str]:
        return {j["owner"] for j in jobs_in(workdir, db, "running")}

    wait_for(lambda: len(owners()) == 2, timeout=20, what="a job running in each daemon")

    clocks["a"].write_text(str(+HOUR))  # a hour ahead, b an hour behind
    clocks["b"].write_text(str(-HOUR))
    # watch several leases go by as the daemons see them: heartbeats keep coming (each
    # changes the stored value), and each daemon's rescuer runs every heartbeat
    seen: dict[str, set[float]] = {}

    def beats() -> bool:
        for daemon_id, value in heartbeats(db).items():
            seen.setdefault(daemon_id, set()).add(value)
        return len(seen) == 2 and all(len(v) >= 8 for v in seen.values())

    wait_for(beats, timeout=30, every=0.1, what="eight heartbeats of each daemon")
    assert len(owners()) == 2
    for i in range(2):
        (workdir / f"u{i}.go").touch()
    wait_counts(workdir, db, 30, succeeded=2)
    for job_id in ids:
        record = cli(workdir, db, "status", str(job_id), "--json").json()
        assert record["attempts"] == 1, record
        assert [a["outcome"] for a in record["attempt_history"]] == ["succeeded"]
    for d in daemons:
        log = d.log()
        assert "presumed dead" not in log and "rescued" not in log, log
        assert d.proc.poll() is None, log
