"""kill -9 of one of three daemons, each on a host of its own, while it runs jobs: the
others judge it by heartbeat alone (its pid means nothing to them), rescue its jobs
within the lease and a margin, and every job ends succeeded, run to its end once.

The ledger (tests/integration/conftest.py, `slow`): a `start` line when an attempt
begins, an `end` line when it ends; a line written is a line kept."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.integration.conftest import ledger, submit_file
from tests.multihost.conftest import (
    LEASE,
    Host,
    attempts,
    no_tracebacks,
    sql,
    wait_all_succeeded,
    write_setup,
)

JOBS = 24
SECONDS = 2.0  # each job's run: long enough to be cut in the middle
RESCUE_MARGIN = 30.0  # past the lease; generous, for a loaded machine: no speed asserted


def leader(db: str) -> str | None:
    rows = sql(db, "SELECT owner FROM leases WHERE name = 'leader'")
    return rows[0][0] if rows else None


def running_of(db: str, owner: str) -> dict[int, int]:
    """The running jobs claimed by `owner`: id -> attempt."""
    rows = sql(db, "SELECT id, attempts FROM jobs WHERE state = 'running' AND owner = %s", (owner,))
    return {r[0]: r[1] for r in rows}


@pytest.mark.parametrize("victim", ["follower", "leader"])
def test_kill9_of_a_host_running_jobs_loses_nothing(
    hosts: Callable[..., Host], workdir: Path, db: str, victim: str
) -> None:
    write_setup(workdir, workers=2)
    started = [hosts(name) for name in ("host-a", "host-b", "host-c")]
    assert len({h.namespace for h in started}) == 3
    daemons = {r[0]: r[1] for r in sql(db, "SELECT id, host FROM daemons")}
    assert daemons == {h.id: h.name for h in started}, daemons

    ids = submit_file(
        workdir,
        db,  # type: ignore[arg-type]
        [{"task": "jtasks:slow", "args": [f"t{i}", SECONDS]} for i in range(JOBS)],
    )
    holder = wait_for(lambda: leader(db), timeout=30, what="a leader")
    if victim == "leader":
        dead = next(h for h in started if h.id == holder)
    else:
        dead = next(h for h in started if h.id != holder)
    survivors = [h for h in started if h is not dead]

    def mid_run() -> bool:
        """The victim has jobs running whose attempts began (a `start` line)."""
        claims = running_of(db, dead.id)
        began = {(e.job_id, e.attempt) for e in ledger(workdir) if e.event == "start"}
        return bool(claims) and all((j, a) in began for j, a in claims.items())

    wait_for(mid_run, timeout=60, every=0.05, what=f"{dead.name} running jobs")
    dead.kill9()
    killed_at = time.monotonic()
    # Dead now, nothing of it can commit: these are its claims, cut in the middle.
    cut = running_of(db, dead.id)
    assert cut, "the victim held no claim when it died"

    wait_for(
        lambda: not running_of(db, dead.id),
        timeout=LEASE + RESCUE_MARGIN,
        every=0.05,
        what=f"the jobs of {dead.name} rescued",
    )
    rescued_after = time.monotonic() - killed_at
    print(
        f"{dead.name} ({victim}) killed holding {sorted(cut)}; rescued {rescued_after:.1f}s later"
    )

    wait_all_succeeded(db, set(ids), timeout=120)
    assert all(h.alive() for h in survivors)
    no_tracebacks(*survivors)
    if victim == "leader":
        assert leader(db) in {h.id for h in survivors}
    # The dead daemon is forgotten; its peers remain.
    assert {r[0] for r in sql(db, "SELECT id FROM daemons")} == {h.id for h in survivors}

    # The attempts: each cut job's attempt shows it was lost with its daemon, and a
    # survivor ran it again to success; every other job succeeded at its first attempt
    # unless it too was cut (a survivor presumed dead under load would show here).
    history = attempts(db)
    for job_id, attempt in cut.items():
        tried = history[job_id]
        lost = next(a for a in tried if a[0] == attempt)
        assert lost[1] == "lost", tried
        assert lost[2] == dead.id, tried
        assert lost[3] is not None and f"daemon {dead.id} stopped heartbeating" in lost[3], tried
        last = tried[-1]
        assert last[1] == "succeeded" and last[2] in {h.id for h in survivors}, tried
    for job_id in ids:
        tried = history[job_id]
        assert tried[-1][1] == "succeeded", tried
        assert all(a[1] in ("succeeded", "lost") for a in tried), tried
        assert [a[0] for a in tried] == list(range(1, len(tried) + 1)), tried
    events = sql(db, "SELECT job_id, data FROM job_events WHERE type = 'job.rescued' ORDER BY seq")
    assert {e[0] for e in events} >= set(cut), events

    # The ledger: every attempt began once; every job ran to its end exactly once, in the
    # attempt recorded as succeeded; the cut attempts never ended.
    entries = ledger(workdir)
    starts = collections.Counter((e.job_id, e.attempt) for e in entries if e.event == "start")
    ends = collections.Counter(e.job_id for e in entries if e.event == "end")
    assert all(n == 1 for n in starts.values()), starts
    assert ends == collections.Counter(ids), ends
    for e in entries:
        if e.event == "end":
            assert history[e.job_id][-1][:2] == (e.attempt, "succeeded"), (e, history[e.job_id])
    for job_id, attempt in cut.items():
        assert (job_id, attempt) in starts
        assert not any(
            e.event == "end" and (e.job_id, e.attempt) == (job_id, attempt) for e in entries
        )
