"""Crashes: kill -9 of the daemon, of a worker, and of a job that kills its own worker."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import apsw
import pytest

from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import (
    alive,
    counts,
    group_members,
    job,
    jobs_in,
    ledger,
    overview,
    read_file_when_present,
    submit,
    submit_file,
    wait_counts,
    write_config,
)

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends

N_JOBS = 200


@pytest.mark.slow
def test_kill_9_daemon_mid_run_loses_nothing(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, lease='"2s"', workers="2")
    lines = [
        {"task": "jtasks:record", "args": [f"t{i}", 20 + (i * 7) % 31], "backoff": "100ms"}
        for i in range(N_JOBS)
    ]
    ids = submit_file(workdir, db, lines)

    first = Daemon(workdir, db, "--workers", "2")
    daemons.append(first)
    wait_for(lambda: len(ledger(workdir)) >= 30, timeout=30, what="30 jobs run")
    workers = first.worker_pids()
    assert len(workers) == 2, workers

    os.killpg(first.pid, signal.SIGKILL)  # the daemon's own group; workers lead their own
    assert first.wait(10) == -signal.SIGKILL

    # PR_SET_PDEATHSIG: the workers die with their daemon, so no orphan runs on.
    wait_for(lambda: not any(alive(p) for p in workers), timeout=10, what="workers to die")

    after_kill = counts(workdir, db)
    assert after_kill["succeeded"] < N_JOBS, "the kill came too late to test anything"
    orphaned = {j["id"] for j in jobs_in(workdir, db, "running")}
    assert orphaned, f"no job was running when the daemon died: {after_kill}"

    second = Daemon(workdir, db, "--workers", "2")
    daemons.append(second)
    final = wait_counts(workdir, db, timeout=60, succeeded=N_JOBS)
    assert sum(final.values()) == N_JOBS, final  # none lost, none stuck

    entries = ledger(workdir)
    assert {e.tag for e in entries} == {f"t{i}" for i in range(N_JOBS)}
    ran_twice = {tag for tag, n in Counter(e.tag for e in entries).items() if n > 1}
    rescued_tags = {f"t{ids.index(i)}" for i in orphaned}
    assert ran_twice <= rescued_tags  # only a rescued attempt may run again

    for job_id in orphaned:
        record = job(workdir, db, job_id)
        assert record["state"] == "succeeded", record
        outcomes = [a["outcome"] for a in record["attempt_history"]]
        # `lost` if it had started when the daemon died; `not_started` if it was claimed
        # and killed before its worker began it (then it ran only once, after the rescue)
        assert outcomes[0] in ("lost", "not_started"), outcomes
        if outcomes[0] == "not_started":
            assert f"t{ids.index(job_id)}" not in ran_twice, outcomes
        assert outcomes[-1] == "succeeded", outcomes
        assert "stopped heartbeating" in record["attempt_history"][0]["error"]
    lost = [job(workdir, db, i)["attempt_history"][0]["outcome"] for i in orphaned]
    assert "lost" in lost, lost  # the kill caught at least one job mid-run


def test_kill_9_worker_retries_the_job_and_replaces_the_worker(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    d = Daemon(workdir, db, "--workers", "2")
    daemons.append(d)
    victim = submit(
        workdir, db, "jtasks:crash_first", "--args", '["v"]', "--retries", "2", "--backoff", "50ms"
    )
    worker, child = (int(p) for p in read_file_when_present(workdir / "v.pids").split())
    assert worker in d.worker_pids()
    assert child in group_members(worker)

    os.kill(worker, signal.SIGKILL)

    res = cli(workdir, db, "wait", str(victim), "--timeout", "30s")
    assert res.code == 0, res.err
    assert res.out.strip() == '"attempt 2"'
    record = job(workdir, db, victim)
    assert record["state"] == "succeeded"
    attempts = record["attempt_history"]
    assert [a["outcome"] for a in attempts] == ["crashed", "succeeded"]
    assert "SIGKILL" in attempts[0]["error"]
    assert [a["attempt"] for a in attempts] == [1, 2]

    # What the killed attempt started in its process group must not run on beside
    # the retry: the daemon kills the dead worker's group.
    wait_for(
        lambda: not group_members(worker) and not alive(child),
        timeout=10,
        what="the crashed attempt's child process to be killed",
    )

    # The daemon forked a replacement and keeps running other jobs.
    wait_for(
        lambda: len(d.worker_pids()) == 2 and worker not in d.worker_pids(),
        timeout=10,
        what="a replacement worker",
    )
    submit_file(workdir, db, [{"task": "jtasks:record", "args": [f"o{i}"]} for i in range(10)])
    wait_counts(workdir, db, timeout=30, succeeded=11)
    assert d.proc.poll() is None


def test_job_that_kills_its_worker_every_time_ends_dead(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    d = Daemon(workdir, db, "--workers", "2")
    daemons.append(d)
    bad = submit(workdir, db, "jtasks:suicide", "--retries", "2", "--backoff", "50ms")
    good = submit_file(
        workdir, db, [{"task": "jtasks:record", "args": [f"g{i}", 20]} for i in range(20)]
    )

    res = cli(workdir, db, "wait", str(bad), "--timeout", "30s")
    assert res.code == 1, (res.code, res.out, res.err)
    record = job(workdir, db, bad)
    assert record["state"] == "dead"
    assert "signal 9" in record["error"]
    assert [a["outcome"] for a in record["attempt_history"]] == ["crashed"] * 3
    assert [a["attempt"] for a in record["attempt_history"]] == [1, 2, 3]
    assert len([e for e in ledger(workdir) if e.tag == "suicide"]) == 3

    wait_counts(workdir, db, timeout=30, succeeded=len(good), dead=1)
    assert d.proc.poll() is None


@pytest.mark.slow
def test_kill_9_daemon_kills_the_jobs_whole_process_group(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    d = Daemon(workdir, db, "--workers", "1")
    daemons.append(d)
    pidfile = workdir / "grandchild.pid"
    submit(
        workdir,
        db,
        "--cmd",
        "--",
        "sh",
        "-c",
        'sleep 999 & echo $! > "$1.tmp"; mv "$1.tmp" "$1"; wait',
        "sh",
        str(pidfile),
    )
    grandchild = int(read_file_when_present(pidfile))
    (worker,) = d.worker_pids()
    assert grandchild in group_members(worker)

    os.killpg(d.pid, signal.SIGKILL)
    d.wait(10)
    wait_for(lambda: not alive(worker), timeout=10, what="the worker to die")
    wait_for(
        lambda: not alive(grandchild),
        timeout=3,
        what="the job's grandchild to die with the daemon",
    )


@pytest.mark.sqlite_only(
    "reads the file's daemons table with apsw (tests/multihost does it on PostgreSQL)"
)
@pytest.mark.slow
def test_surviving_daemon_rescues_the_jobs_of_a_killed_peer(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, lease='"2s"')
    a = Daemon(workdir, db, "--workers", "1")
    daemons.append(a)
    b = Daemon(workdir, db, "--workers", "1")
    daemons.append(b)
    lines = [
        {"task": "jtasks:record", "args": [f"t{i}", 50], "backoff": "100ms"} for i in range(100)
    ]
    submit_file(workdir, db, lines)
    wait_for(
        lambda: {a.pid, b.pid} <= {e.ppid for e in ledger(workdir)},
        timeout=30,
        what="both daemons to run jobs",
    )

    (a_id,) = [d["id"] for d in overview(workdir, db)["daemons"] if d["pid"] == a.pid]
    os.killpg(a.pid, signal.SIGKILL)
    # Read at once, not through the CLI: B sees A's pid gone and rescues within a
    # heartbeat period, and a slow CLI call on a busy machine would find nothing left.
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    held = conn.execute("SELECT id FROM jobs WHERE state = 'running' AND owner = ?", (a_id,))
    orphaned = {job_id for (job_id,) in held}
    conn.close()
    a.wait(10)
    assert orphaned, "the killed daemon held no running job"

    final = wait_counts(workdir, db, timeout=60, succeeded=100)
    assert sum(final.values()) == 100, final
    assert [d["pid"] for d in overview(workdir, db)["daemons"]] == [b.pid]
    for job_id in orphaned:
        attempts = job(workdir, db, job_id)["attempt_history"]
        assert [x["outcome"] for x in attempts] == ["lost", "succeeded"], attempts
        assert attempts[0]["owner"] == a_id
        assert attempts[1]["owner"] != a_id
