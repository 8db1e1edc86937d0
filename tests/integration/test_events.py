"""The event feed with real daemons: `jobrunner events` shows every state change in
order, a job's events replay its history (a rescue after kill -9 included), and the
readers that wait on the feed (`wait`, `events --follow`, `logs --follow`) wake when
the change is committed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jobrunner.lifecycle import State, can_move
from tests.helpers import PYTHON, Daemon, cli, env_for
from tests.integration.conftest import (
    job,
    read_file_when_present,
    read_through_newline,
    submit,
    write_config,
)

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends


def feed(workdir: Path, db: Path, *args: str) -> list[dict[str, Any]]:
    res = cli(workdir, db, "events", "--json", *args)
    assert res.code == 0, res.err
    return [json.loads(line) for line in res.out.splitlines()]


def replay(events: list[dict[str, Any]]) -> list[str]:
    """The states a job went through, by its events; each step must be allowed."""
    states: list[str] = []
    for event in events:
        if states and event["state"] == states[-1]:
            continue  # progress, a fire and its job: no change
        if states:
            assert can_move(State(states[-1]), State(event["state"])), (states, event)
        states.append(event["state"])
    return states


def test_a_jobs_history_is_replayed_from_its_events_across_a_kill_9(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """Attempt 1 runs when its daemon is killed with -9; the next daemon rescues it and
    attempt 2 succeeds: the events say exactly that, in order, and agree with the
    record."""
    write_config(workdir, lease='"2s"', workers="1")
    job_id = submit(
        workdir, db, "jtasks:crash_first", "--args", '["c"]', "--retries", "2", "--backoff", "0.1"
    )
    first = Daemon(workdir, db, "--workers", "1")
    daemons.append(first)
    read_file_when_present(workdir / "c.pids")  # attempt 1 runs
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    second = Daemon(workdir, db, "--workers", "1")
    daemons.append(second)
    assert cli(workdir, db, "wait", str(job_id), "--timeout", "30s").code == 0

    events = feed(workdir, db, "--job", str(job_id))
    assert [(e["type"], e["attempt"]) for e in events] == [
        ("job.queued", 0),
        ("job.started", 1),
        ("job.rescued", 1),
        ("job.started", 2),
        ("job.succeeded", 2),
    ]
    assert events[2]["outcome"] == "lost" and events[2]["state"] == "retrying"
    assert replay(events) == ["queued", "running", "retrying", "running", "succeeded"]
    record = job(workdir, db, job_id)
    assert record["state"] == events[-1]["state"]
    assert [a["outcome"] for a in record["attempt_history"]] == ["lost", "succeeded"]
    seqs = [e["seq"] for e in feed(workdir, db)]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


def test_events_filters_and_refusals(workdir: Path, db: Path, tasks: Path) -> None:
    a = submit(workdir, db, "jtasks:record", "--args", '["a"]')
    b = submit(workdir, db, "jtasks:record", "--args", '["b"]', "--delay", "1h")
    assert cli(workdir, db, "cancel", str(a)).code == 0
    everything = feed(workdir, db)
    assert [(e["type"], e["job"]) for e in everything] == [
        ("job.queued", a),
        ("job.scheduled", b),
        ("job.cancelled", a),
    ]
    assert [e["job"] for e in feed(workdir, db, "--type", "job.cancelled")] == [a]
    assert len(feed(workdir, db, "--type", "job.q*,job.s*")) == 2
    assert feed(workdir, db, "--since", str(everything[1]["seq"])) == everything[2:]
    text = cli(workdir, db, "events")
    assert text.code == 0 and len(text.out.splitlines()) == 3 and "job.scheduled" in text.out
    for argv, fragment in (
        (("--job", "999"), "no job with id 999"),
        (("--since", "-1"), "not an event seq"),
        (("--type", "job dead"), "not an event type"),
    ):
        res = cli(workdir, db, "events", *argv)
        assert res.code == 2 and fragment in res.err, (argv, res.err)
        assert res.err.count("\n") == 1


def _reader(workdir: Path, db: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYTHON, "-m", "jobrunner", *args],
        cwd=workdir,
        env=env_for(workdir, db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_readers_wake_on_the_commit_and_end_with_the_job(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """`events --follow --job` prints each change as it is committed and exits when the
    job ends; `wait` and `logs --follow` end with it too."""
    write_config(workdir, workers="1")
    job_id = submit(workdir, db, "jtasks:ticker", "--args", '["t", 3]')
    follow = _reader(workdir, db, "events", "--follow", "--job", str(job_id), "--json")
    waiter = _reader(workdir, db, "wait", str(job_id), "--timeout", "60s")
    logs = _reader(workdir, db, "logs", str(job_id), "--follow")
    try:
        assert follow.stdout is not None and logs.stdout is not None
        first = json.loads(read_through_newline(follow.stdout, 20))
        assert first["type"] == "job.queued"  # the job's story so far, then live
        daemons.append(Daemon(workdir, db, "--workers", "1"))
        started = read_through_newline(follow.stdout, 20)
        assert b'"job.started"' in started
        assert b"t tick 0" in read_through_newline(logs.stdout, 20)  # while it runs
        (workdir / "t.go").write_text("")
        assert follow.wait(30) == 0 and waiter.wait(30) == 0 and logs.wait(30) == 0
        rest = follow.stdout.read().decode()
        assert json.loads(rest.splitlines()[-1])["type"] == "job.succeeded"
        assert logs.stdout.read().decode().count("tick") == 2  # the two lines after
        assert waiter.stdout is not None and waiter.stdout.read() == b"3\n"
    finally:
        for p in (follow, waiter, logs):
            if p.poll() is None:
                p.kill()
                p.wait()
