"""pg_terminate_backend of every connection of one daemon, mid-run, twice: it connects
again (its store and its wake-up listener), loses nothing, and every job ends succeeded.

A daemon's connections are found by their application_name (PGAPPNAME, set per host by
the test: jobrunner sets none) and checked against the client ports of the sockets the
daemon's process holds, so that none is missed."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

from tests.helpers import wait_for
from tests.integration.conftest import ledger, submit_file
from tests.multihost.conftest import (
    Host,
    attempts,
    no_tracebacks,
    socket_ports,
    sql,
    wait_all_succeeded,
    write_setup,
)

JOBS = 40
SECONDS = 0.5


def connections(host: Host) -> dict[int, tuple[int, str]]:
    """backend pid -> (client port, last query) of the host's connections."""
    rows = sql(
        host.db,
        "SELECT pid, client_port, query FROM pg_stat_activity "
        "WHERE application_name = %s AND datname = current_database()",
        (host.app,),
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def terminate(host: Host) -> set[int]:
    """Terminate every connection the daemon holds; returns their backend pids."""
    found = connections(host)
    ports = {port for port, _ in found.values()}
    # By name and by socket: the same connections (the daemon's own; its workers hold none).
    assert ports and ports <= socket_ports(host.pid), (found, socket_ports(host.pid))
    assert any(q.startswith("LISTEN") for _, q in found.values()), found
    done = sql(
        host.db, "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (list(found),)
    )
    assert all(r[0] for r in done), done
    return set(found)


def running_of(db: str, owner: str) -> int:
    return int(
        sql(db, "SELECT count(*) FROM jobs WHERE state = 'running' AND owner = %s", (owner,))[0][0]
    )


def test_terminated_connections_are_made_again_and_nothing_is_lost(
    hosts: Callable[..., Host], workdir: Path, db: str
) -> None:
    write_setup(workdir, workers=2)
    a = hosts("host-a")
    b = hosts("host-b")
    ids: list[int] = []
    for round in range(2):
        ids += submit_file(
            workdir,
            db,  # type: ignore[arg-type]
            [{"task": "jtasks:slow", "args": [f"r{round}-{i}", SECONDS]} for i in range(JOBS)],
            name=f"jobs{round}",
        )
        wait_for(lambda: running_of(db, a.id) > 0, timeout=60, every=0.02, what="a running jobs")
        gone = terminate(a)
        # It connects again: its store and its listener, on new backends.
        wait_for(
            lambda gone=gone: (
                (now := connections(a))
                and not (now.keys() & gone)
                and any(q.startswith("LISTEN") for _, q in now.values())
            ),
            timeout=30,
            what="host-a connected again, listening",
        )
        wait_all_succeeded(db, set(ids), timeout=120)
        assert a.alive() and b.alive()

    no_tracebacks(a, b)
    # host-a went on running jobs after each termination, and nobody presumed it dead.
    assert {r[0] for r in sql(db, "SELECT id FROM daemons")} == {a.id, b.id}
    history = attempts(db)
    assert all(tried == [(1, "succeeded", tried[0][2], None)] for tried in history.values()), [
        t for t in history.values() if len(t) > 1
    ]
    owners = collections.Counter(tried[0][2] for tried in history.values())
    assert owners[a.id] > 0, owners
    entries = ledger(workdir)
    assert collections.Counter(
        e.job_id for e in entries if e.event == "end"
    ) == collections.Counter(ids)
    assert collections.Counter(
        e.job_id for e in entries if e.event == "start"
    ) == collections.Counter(ids)
