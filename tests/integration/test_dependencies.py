"""Jobs that run after others, with real daemons: a dependent starts only after what it
waits for, a failure cancels it, and the hand-over survives a kill -9 of the daemon
between the parent's end and the dependent's claim (the same commit made it ready)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.helpers import Daemon, cli, wait_for
from tests.integration.conftest import job, submit, submit_file, write_config

pytestmark = pytest.mark.both_backends


def state_of(workdir: Path, db: Path, job_id: int) -> str:
    return str(job(workdir, db, job_id)["state"])


def test_the_dependent_is_ready_through_a_kill_9_between_the_parents_end_and_its_claim(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    """Daemon A serves only the parent's queue, so the dependent, ready the moment the
    parent succeeded, waits unclaimed; A is killed with SIGKILL; B, serving the
    dependent's queue, runs it. Nothing polls for it: B's claim finds it queued."""
    write_config(workdir)
    parent = submit(workdir, db, "--cmd", "--queue", "a", "--", "sh", "-c", "echo made > part")
    child = submit(
        workdir, db, "--cmd", "--queue", "b", "--after", str(parent), "--", "cp", "part", "out"
    )
    assert state_of(workdir, db, child) == "blocked"
    a = Daemon(workdir, db, "--queues", "a")
    daemons.append(a)
    wait_for(
        lambda: state_of(workdir, db, parent) == "succeeded", timeout=30, what="parent succeeded"
    )
    record = job(workdir, db, child)
    assert record["state"] == "queued"  # made ready by the parent's end, unclaimed: queue b
    assert record["after"] == [{"id": parent, "needs": "succeeded", "state": "succeeded"}]
    a.signal(signal.SIGKILL)
    a.wait()
    daemons.append(Daemon(workdir, db, "--queues", "b"))
    res = cli(workdir, db, "wait", str(child), "--timeout", "30s")
    assert res.code == 0, res.err
    assert (workdir / "out").read_text() == "made\n"


def test_fan_out_then_fan_in_and_a_failed_part_cancels_the_merge(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, workers="3")
    parts = submit_file(
        workdir,
        db,
        [
            {"command": ["sh", "-c", f"sleep 0.3; echo {n} > part{n}"], "retries": 0}
            for n in range(4)
        ],
    )
    listed = ",".join(str(p) for p in parts)
    merge = submit(workdir, db, "--cmd", "--after", listed, "--", "sh", "-c", "cat part* > all")
    broken = submit(workdir, db, "--cmd", "--retries", "0", "--", "false")
    doomed = submit(workdir, db, "--cmd", "--after", f"{merge},{broken}", "--", "true")
    cleanup = submit(workdir, db, "--cmd", "--after-ended", str(doomed), "--", "touch", "clean")
    daemons.append(Daemon(workdir, db))

    assert cli(workdir, db, "wait", str(merge), "--timeout", "30s").code == 0
    assert (workdir / "all").read_text() == "0\n1\n2\n3\n"
    merged = job(workdir, db, merge)
    assert merged["started_at_epoch"] >= max(
        job(workdir, db, p)["finished_at_epoch"] for p in parts
    )

    res = cli(workdir, db, "wait", str(doomed), "--timeout", "30s")
    assert res.code == 1  # ended cancelled: `broken` did not succeed
    record = job(workdir, db, doomed)
    assert record["state"] == "cancelled"
    assert record["error"] == f"cancelled: job {broken} it runs after ended dead"
    assert record["attempt_history"] == []  # it never ran
    assert cli(workdir, db, "wait", str(cleanup), "--timeout", "30s").code == 0
    assert (workdir / "clean").exists()


def test_dlq_retry_of_a_dead_part_brings_back_the_merge_it_cancelled(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    """The fix for a failed part of a fan-out is `dlq retry` of it: the merge its death
    cancelled waits for it again and runs once it succeeds, with nothing submitted anew."""
    write_config(workdir)
    part = submit(workdir, db, "--cmd", "--retries", "0", "--", "sh", "-c", "test -e fixed")
    merge = submit(workdir, db, "--cmd", "--after", str(part), "--", "touch", "merged")
    daemons.append(Daemon(workdir, db))
    assert cli(workdir, db, "wait", str(merge), "--timeout", "30s").code == 1
    assert state_of(workdir, db, merge) == "cancelled"
    (workdir / "fixed").touch()
    assert cli(workdir, db, "dlq", "retry", str(part)).code == 0
    assert cli(workdir, db, "wait", str(merge), "--timeout", "30s").code == 0
    assert (workdir / "merged").exists()
    record = job(workdir, db, merge)
    assert record["state"] == "succeeded" and record["error"] is None
    printed = cli(workdir, db, "events", "--job", str(merge), "--json").out
    types = [json.loads(line)["type"] for line in printed.splitlines()]
    assert types == ["job.blocked", "job.cancelled", "job.blocked", "job.queued"] + types[4:]


def test_bad_dependencies_are_refused_and_nothing_is_written(workdir: Path, db: Path) -> None:
    write_config(workdir)
    parent = submit(workdir, db, "--cmd", "--", "true")
    for flags, message in (
        (["--after", "99"], "jobrunner: error: after: no job with id 99"),
        (["--after", f"{parent},x"], "jobrunner: error: --after: 'x' is not a job id"),
        (["--after-ended", "-3"], "jobrunner: error: --after-ended: '-3' is not a job id"),
    ):
        res = cli(workdir, db, "submit", "--cmd", *flags, "--", "true")
        assert (res.code, res.err.strip()) == (2, message)
    lines = [{"command": ["true"]}, {"command": ["true"], "after": [parent, 99]}]
    (workdir / "jobs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    res = cli(workdir, db, "submit", "--file", "jobs.jsonl")
    assert (res.code, res.err.strip()) == (
        2,
        "jobrunner: error: jobs.jsonl:2: after: no job with id 99",
    )
    listed = cli(workdir, db, "list", "--json").json()
    assert [j["id"] for j in listed] == [parent]


def test_status_says_what_a_blocked_job_waits_for(workdir: Path, db: Path) -> None:
    write_config(workdir)
    first = submit(workdir, db, "--cmd", "--", "true")
    second = submit(workdir, db, "--cmd", "--", "true")
    blocked = submit(
        workdir, db, "--cmd", "--after", str(first), "--after-ended", str(second), "--", "true"
    )
    shown = cli(workdir, db, "status", str(blocked))
    assert shown.code == 0
    assert "blocked" in shown.out
    assert f"after     {first} queued (must succeed), {second} queued (must end)" in shown.out
    listed = cli(workdir, db, "list", "--state", "blocked", "--json").json()
    assert [j["id"] for j in listed] == [blocked]
    table = cli(workdir, db, "list").out
    assert f"waits for {first}, {second}" in table, table
    assert cli(workdir, db, "cancel", str(second)).code == 0  # it only had to end
    assert state_of(workdir, db, blocked) == "blocked"
    table = cli(workdir, db, "list", "--state", "blocked").out
    assert f"waits for {first}\n" in table, table
    res = cli(workdir, db, "cancel", "--state", "blocked", "--yes")
    assert res.code == 0, res.err
    assert state_of(workdir, db, blocked) == "cancelled"
