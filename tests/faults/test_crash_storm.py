"""A crash storm: kill -9 the daemon five times while 2,000 jobs run; nothing is lost.

Each job appends `id attempt ...` to a ledger (O_APPEND + fsync, see the `record` task),
so the ledger is what really ran. After each kill the daemon's whole process group is
gone, its workers (PR_SET_PDEATHSIG) and its group guard with them; the next daemon
rescues the jobs the dead one held as `lost` attempts. At the end every job succeeded,
every id is in the ledger, and an id appears at most once more than the number of its
attempts that a kill cut short — at-least-once, and no more than the kills explain.

The kill moments are random but seeded: a failure prints the seed, and
`STORM_SEED=N pytest tests/faults/test_crash_storm.py` replays the same moments.
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobrunner.lifecycle import Outcome, State
from jobrunner.store import open_store
from jobrunner.store.base import Store
from tests.helpers import Daemon, wait_for
from tests.integration.conftest import (
    alive,
    processes_of_test,
    submit_file,
    write_config,
)
from tests.integration.conftest import (
    ledger as ledger_entries,
)

N_JOBS = 2000
KILLS = 5
WORKERS = 4


@contextmanager
def seed_on_failure(
    seed: int, what: str = "crash storm", env: str = "STORM_SEED"
) -> Iterator[None]:
    """A failure says how to replay it: `{env}=N pytest ...`."""
    try:
        yield
    except BaseException as exc:
        exc.add_note(f"{what} seed {seed}: rerun with {env}={seed}")
        raise


def ledger_ids(workdir: Path) -> list[int]:
    """The job id of every ledger line (the `record` task's first field)."""
    path = workdir / "ledger"
    if not path.exists():
        return []
    return [int(line.split(b" ", 1)[0]) for line in path.read_bytes().splitlines()]


def ledger_lines(workdir: Path) -> int:
    path = workdir / "ledger"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def ended(store: Store) -> int:
    """How many jobs ended succeeded or dead."""
    counts = Counter[str]()
    for (state, _queue), n in store.job_counts().items():
        counts[state] += n
    return counts[State.SUCCEEDED.value] + counts[State.DEAD.value]


def running_jobs(db: Path) -> dict[int, str | None]:
    """Running job id -> owning daemon, straight from the store (faster than the CLI)."""
    store = open_store(str(db), create=False)
    try:
        return {j.id: j.owner for j in store.job_list(State.RUNNING.value, None, N_JOBS)}
    finally:
        store.close()


def kill_daemon(d: Daemon, workdir: Path) -> None:
    """kill -9 the daemon's process group, then wait until nothing of it lives on: its
    workers die with it (PR_SET_PDEATHSIG), its guard kills the jobs' groups and exits."""
    workers, guard = d.worker_pids(), d.guard_pid()
    assert workers, "the daemon had no workers to kill"
    os.killpg(d.pid, signal.SIGKILL)
    assert d.wait(10) == -signal.SIGKILL
    leftovers = [*workers, *([guard] if guard else [])]
    wait_for(
        lambda: not any(alive(p) for p in leftovers),
        timeout=10,
        what=f"workers {workers} and guard {guard} to die with the daemon",
    )


@pytest.mark.slow
def test_crash_storm_loses_nothing_and_reruns_only_what_a_kill_cut_short(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    seed = int(os.environ.get("STORM_SEED") or random.SystemRandom().randrange(1 << 32))
    rng = random.Random(seed)
    with seed_on_failure(seed):
        # each daemon is killed after this many more ledger lines: while jobs run, and
        # with work left for the next one (at most 1,500 of the 2,000 jobs before the last)
        gaps = [rng.randint(20, 300) for _ in range(KILLS)]
        write_config(workdir, workers=str(WORKERS), lease='"2s"')
        lines = [
            {
                "task": "jtasks:record",
                "args": [f"t{i}", rng.randint(1, 8)],  # a few ms: kills land mid-job
                "retries": KILLS + 1,  # every kill may cut the same job short
                "backoff": "10ms",
            }
            for i in range(N_JOBS)
        ]
        ids = submit_file(workdir, db, lines)

        # job id -> daemon id, for the jobs running when that daemon was killed
        running_at_kill: list[dict[int, str | None]] = []
        for gap in gaps:
            d = Daemon(workdir, db, "--workers", str(WORKERS))
            daemons.append(d)
            k = ledger_lines(workdir) + gap
            wait_for(
                lambda k=k: ledger_lines(workdir) >= k, timeout=30, every=0.002, what=f"{k} lines"
            )
            kill_daemon(d, workdir)
            assert not processes_of_test(db), "a process of the killed daemon lives on"
            running = running_jobs(db)
            assert running, f"no job was running at the kill after {k} ledger lines"
            running_at_kill.append(running)

        last = Daemon(workdir, db, "--workers", str(WORKERS))
        daemons.append(last)
        store = open_store(str(db), create=False)
        try:
            wait_for(lambda: ended(store) == N_JOBS, timeout=60, every=0.1, what="every job to end")
            counts = Counter[str]()
            for (state, _queue), n in store.job_counts().items():
                counts[state] += n
            assert counts == {State.SUCCEEDED.value: N_JOBS}, counts  # none dead, stuck, lost

            lost: Counter[int] = Counter()
            rescued_by_owner: dict[str | None, set[int]] = {}
            not_started: set[tuple[int, int, str | None]] = set()
            for job_id in ids:
                for a in store.attempt_list(job_id):
                    if a.outcome in (Outcome.LOST, Outcome.NOT_STARTED):
                        rescued_by_owner.setdefault(a.owner, set()).add(job_id)
                    if a.outcome is Outcome.LOST:
                        lost[job_id] += 1
                    elif a.outcome is Outcome.NOT_STARTED:
                        not_started.add((job_id, a.attempt, a.owner))
        finally:
            store.close()

        # What each kill cut short is exactly what the next daemon rescued: `lost` when
        # it had started, `not_started` when it only waited in a worker's batch.
        for running in running_at_kill:
            (owner,) = set(running.values())
            assert rescued_by_owner.get(owner) == set(running), owner
        assert sum(lost.values()) + len(not_started) == sum(len(r) for r in running_at_kill)
        # ... and a claim recorded as never started never ran under that daemon.
        ran_under = {(e.job_id, e.attempt, e.ppid) for e in ledger_entries(workdir)}
        for job_id, attempt, owner in not_started:
            daemon_pid = int((owner or "::").split(":")[1])
            assert (job_id, attempt, daemon_pid) not in ran_under, (job_id, attempt, owner)

        ran = Counter(ledger_ids(workdir))
        assert set(ran) == set(ids), f"never ran: {sorted(set(ids) - set(ran))[:20]}"
        too_often = {i: (ran[i], lost[i]) for i in ids if ran[i] > lost[i] + 1}
        assert not too_often, f"ran more often than lost attempts + 1: {too_often}"
        assert any(ran[i] > 1 for i in ids) or sum(lost.values()) > 0

        assert last.stop() == 0, last.log()
        wait_for(lambda: not processes_of_test(db), timeout=10, what="every process to exit")
