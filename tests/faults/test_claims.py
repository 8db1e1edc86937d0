"""Claims that outlive what their daemon knows: a daemon stopped or frozen past its lease,
one killed with jobs waiting in its workers' batches, and peers in another pid namespace.

Each job writes `id attempt event tag pid ppid` to a ledger (tests/integration/conftest.py)
and the daemons are real processes stopped, continued and killed with real signals.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import apsw
import pytest

from tests.helpers import Daemon, cli, env_for, wait_for
from tests.integration.conftest import (
    job,
    jobs_in,
    ledger,
    submit,
    submit_file,
    wait_counts,
    write_config,
)

pytestmark = pytest.mark.slow


def _stop(pids: list[int], sig: int) -> None:
    for pid in pids:
        os.kill(pid, sig)


def _in_a_transaction(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        busy = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
        ).fetchone()[0]
    return bool(busy)


def _freeze_outside_a_write(pids: list[int], db: Path) -> None:
    """SIGSTOP `pids`, at a moment none of them holds the database's write lock: a
    writer frozen inside a transaction blocks every other writer (SQLite), which is not
    what these tests are about (on PostgreSQL: none of their connections is inside a
    transaction, where it would hold the feed lock every writer takes)."""
    if str(db).startswith("postgresql://"):
        for _ in range(50):
            _stop(pids, signal.SIGSTOP)
            if not _in_a_transaction(str(db)):
                return
            _stop(pids, signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError("the daemon was inside a transaction at every try")
    probe = apsw.Connection(str(db))
    probe.setbusytimeout(100)
    try:
        for _ in range(50):
            _stop(pids, signal.SIGSTOP)
            try:
                probe.execute("BEGIN IMMEDIATE")
            except apsw.BusyError:
                _stop(pids, signal.SIGCONT)
                continue
            probe.execute("ROLLBACK")
            return
        raise AssertionError("the daemon held the write lock at every try")
    finally:
        probe.close()


def test_a_stopped_daemons_late_result_is_never_recorded_as_a_later_attempt(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """A is stopped while its worker runs attempt 1; B rescues the job; A goes on. The
    job's result is the one its recorded attempt produced, never attempt 1's."""
    write_config(workdir, lease='"2s"', workers="1")
    a = Daemon(workdir, db, "--workers", "1")
    daemons.append(a)
    job_id = submit(
        workdir, db, "jtasks:slow", "--args", '["j", 8]', "--retries", "3", "--backoff", "50ms"
    )
    wait_for(lambda: any(e.event == "start" for e in ledger(workdir)), timeout=20, what="attempt 1")
    _freeze_outside_a_write([a.pid], db)  # the supervisor only: its worker runs on
    try:
        b = Daemon(workdir, db, "--workers", "1", "--queues", "none")  # rescues, runs nothing
        daemons.append(b)
        wait_for(
            lambda: job(workdir, db, job_id)["state"] != "running",
            timeout=20,
            what="B to rescue the job",
        )
        assert b.stop() == 0
    finally:
        os.kill(a.pid, signal.SIGCONT)
    res = cli(workdir, db, "wait", str(job_id), "--timeout", "40s")
    assert res.code == 0, res.err
    ends = [e.attempt for e in ledger(workdir) if e.event == "end"]
    record = job(workdir, db, job_id)
    outcomes = [h["outcome"] for h in record["attempt_history"]]
    assert outcomes[0] == "lost" and outcomes[-1] == "succeeded", outcomes
    winner = len(outcomes)
    # The success recorded is the attempt that really ended when it was recorded (the
    # old supervisor recorded attempt 1's late result as attempt 2's, while attempt 2
    # had only just started); attempt 1 was killed once A learned its claim was
    # rescued, so it never ended at all.
    assert ends == [winner], ends
    assert record["attempts"] == winner
    assert "its claim was rescued" in a.log()


def test_a_frozen_daemon_never_starts_what_a_peer_finished(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """A and its workers frozen (docker pause) past the lease with a batch in hand; B
    rescues and finishes every job; thawed, A starts none of them: its workers check the
    lease before each start, and A drops the claims it learns were rescued."""
    write_config(workdir, lease='"2s"')
    lines = [
        {"task": "jtasks:record", "args": [f"t{i}", 2], "retries": 5, "backoff": "100ms"}
        for i in range(400)
    ]
    ids = submit_file(workdir, db, lines)
    a = Daemon(workdir, db, "--workers", "1")
    daemons.append(a)
    wait_for(lambda: len(ledger(workdir)) >= 100, timeout=30, what="A to be running jobs")
    frozen = [a.pid, *a.children()]
    # The case needs A frozen with a batch in hand: a moment between two batches (one
    # job held; frequent on a loaded machine) is thawed and tried again
    for _ in range(20):
        _freeze_outside_a_write(frozen, db)
        held = {j["id"] for j in jobs_in(workdir, db, "running")}
        if len(held) > 1:
            break
        _stop(frozen, signal.SIGCONT)
        time.sleep(0.05)
    try:
        assert len(held) > 1, "A held no batch when frozen, 20 times"
        b = Daemon(workdir, db, "--workers", "1")
        daemons.append(b)
        wait_counts(workdir, db, 60, succeeded=len(ids))  # B ran A's claims and the rest
        assert b.stop() == 0
        thawed_at = len(ledger(workdir))  # nothing runs now: A is frozen, B stopped
    finally:
        _stop(frozen, signal.SIGCONT)
    last = submit(workdir, db, "jtasks:record", "--args", '["last"]')
    res = cli(workdir, db, "wait", str(last), "--timeout", "30s")  # A is past its old batch
    assert res.code == 0, res.err + a.log()
    assert a.stop() == 0
    after_thaw = [e.tag for e in ledger(workdir)[thawed_at:]]
    assert after_thaw == ["last"], f"A ran jobs B had finished: {after_thaw[:10]}"
    assert "presumed dead" in a.log()


def test_claims_that_never_started_go_back_without_using_an_attempt(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """kill -9 of a daemon while its worker has a batch: the jobs of the batch that had not
    started go back to the queue (no attempt used; `not_started` in their history)."""
    write_config(workdir, lease='"2s"')
    # jobs of a millisecond: the daemon sends them in batches (several at a time, for
    # about 20 ms of work). One in the middle sleeps: once it runs, the jobs sent to its
    # worker after it wait there unstarted, and A is killed then (killed at a random
    # moment of fast jobs, a loaded machine once had the whole batch begun)
    lines = [{"task": "jtasks:record", "args": [f"t{i}", 1], "retries": 0} for i in range(3000)]
    lines[400] = {"task": "jtasks:record", "args": ["slow", 60_000], "retries": 0}
    ids = submit_file(workdir, db, lines)
    a = Daemon(workdir, db, "--workers", "1")
    daemons.append(a)
    wait_for(lambda: any(e.tag == "slow" for e in ledger(workdir)), 30, what="the slow one")
    time.sleep(0.5)  # the supervisor tops the worker's batch up behind it
    os.killpg(a.pid, signal.SIGKILL)
    a.wait(10)
    claimed = {j["id"] for j in jobs_in(workdir, db, "running")}
    assert len(claimed) > 1, "A held no batch when it died"

    b = Daemon(workdir, db, "--workers", "2")
    daemons.append(b)
    wait_counts(workdir, db, 90, running=0, queued=0, retrying=0)
    ran = Counter(e.job_id for e in ledger(workdir))
    dead = {j["id"] for j in jobs_in(workdir, db, "dead")}
    # Only a job that really started (the one running, or one that ended before A could
    # record it) can have used up its one attempt with A.
    assert all(ran[i] >= 1 for i in dead), [i for i in dead if not ran[i]]
    not_started = []
    for job_id in sorted(claimed - dead):
        record = job(workdir, db, job_id)
        outcomes = [h["outcome"] for h in record["attempt_history"]]
        if outcomes[0] == "not_started":
            not_started.append(job_id)
            assert record["state"] == "succeeded" and record["attempts"] == 1, record
            assert outcomes == ["not_started", "succeeded"], outcomes
            assert "before the job started" in record["attempt_history"][0]["error"]
            assert ran[job_id] == 1  # it ran once, under B
    assert not_started, f"no claim of A's batch was returned unstarted: {claimed}"
    assert set(ran) == set(ids)


def _can_unshare() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare"
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, text=True
    )
    return None if probe.returncode == 0 else f"unshare --pid not permitted: {probe.stderr}"


def test_a_peer_in_another_pid_namespace_is_judged_by_heartbeat_alone(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """Two daemons, one hostname, two pid namespaces (a container with the host's
    network): B cannot see A's pids, so it must neither rescue A's running job nor take
    A's live output spool for a dead worker's."""
    why = _can_unshare()
    if why:
        pytest.skip(why)
    write_config(workdir, lease='"30s"')
    job_id = submit(workdir, db, "jtasks:ticker", "--args", '["t", 8]')
    a = Daemon(workdir, db, "--workers", "1")
    daemons.append(a)
    wait_for(
        lambda: job(workdir, db, job_id)["state"] == "running", timeout=20, what="the job to run"
    )
    log = open(workdir / "b.log", "wb")  # noqa: SIM115
    b = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
        + [sys.executable, "-m", "jobrunner", "daemon", "--workers", "1"],
        cwd=workdir,
        env=env_for(workdir, db),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: b" ready: " in (workdir / "b.log").read_bytes(), timeout=30, what="B ready"
        )
        (workdir / "t.go").write_text("")  # B has looked at A's daemon and spools by now
        res = cli(workdir, db, "wait", str(job_id), "--timeout", "40s")
        assert res.code == 0, res.err
    finally:
        os.killpg(b.pid, signal.SIGTERM)
        b.wait(30)
        log.close()
    record = job(workdir, db, job_id)
    assert [h["outcome"] for h in record["attempt_history"]] == ["succeeded"], record
    out = cli(workdir, db, "logs", str(job_id))
    assert out.out.splitlines() == [f"t tick {i}" for i in range(8)], out.out
    b_log = (workdir / "b.log").read_text()
    assert "rescued" not in b_log and "is gone" not in b_log, b_log
    assert "could not be kept" not in a.log(), a.log()


def test_a_stalled_daemon_that_kept_its_claims_runs_each_job_once(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """The supervisor alone stalls past two thirds of its lease, with no peer to rescue
    its claims: its worker stops starting the jobs of its batch (their claims might be
    rescued) and reports them stale; the supervisor, still their owner at its next
    heartbeat, sends them again. Each job runs once, on its first attempt."""
    write_config(workdir, lease='"3s"')
    a = Daemon(workdir, db, "--workers", "1")
    daemons.append(a)
    batches: list[int] = []
    done = 0
    # The case needs the worker to hold a batch deep enough to reach past the lease's
    # trusted part: the batch's depth follows how fast the warm-up jobs ran, and on a
    # loaded machine it can come out too shallow. Then the round proves nothing, and
    # another is run (at most three).
    for round_ in range(3):
        # no-op jobs (no ledger fsync): a short average, deep batches
        warm = [{"task": "jtasks:noop", "args": [f"w{round_}-{i}"]} for i in range(200)]
        done += len(submit_file(workdir, db, warm, f"warm{round_}"))
        wait_counts(workdir, db, 30, succeeded=done)  # fast jobs: deep batches now
        slow = [{"task": "jtasks:record", "args": [f"b{round_}-{i}", 200]} for i in range(30)]
        batch = submit_file(workdir, db, slow, f"slow{round_}")
        batches += batch
        first = f"b{round_}-0"
        wait_for(lambda f=first: any(e.tag == f for e in ledger(workdir)), 20, what="the batch")
        _freeze_outside_a_write([a.pid], db)
        try:
            time.sleep(2.6)  # the stall itself: past 2/3 of the lease, short of the lease
        finally:
            os.kill(a.pid, signal.SIGCONT)
        done += len(batch)
        wait_counts(workdir, db, 60, succeeded=done)
        if "the lease had run out" in a.log():
            break
    assert "the lease had run out" in a.log()  # the case this test is about happened
    ran = Counter(e.job_id for e in ledger(workdir))
    assert all(ran[i] == 1 for i in batches), {i: ran[i] for i in batches if ran[i] != 1}
    assert {job(workdir, db, i)["attempts"] for i in batches} == {1}
    assert "presumed dead" not in a.log()
