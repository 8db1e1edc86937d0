"""Warnings, not errors: a submit to a queue no running daemon serves, a daemon with far
more workers than cores. The command does what it was asked and says so on stderr."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli.support import record
from tests.helpers import Daemon, cli


def test_submit_to_an_unserved_queue_and_too_many_workers_warn(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    # nobody runs: a job waits for a daemon, which is no mistake
    res = cli(workdir, db, "submit", "--cmd", "--queue", "emails", "--", "true")
    assert (res.code, res.err) == (0, "")
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # the daemon inherits one core
    try:
        daemons.append(Daemon(workdir, db, "--queues", "email,sms", "--workers", "5"))
    finally:
        os.sched_setaffinity(0, cores)
    log = daemons[0].log()
    assert "WARNING" in log and "--workers = 5 is far above the 1 CPU core(s)" in log

    res = cli(workdir, db, "submit", "--cmd", "--queue", "emails", "--", "true")
    assert res.code == 0 and record(workdir, db, int(res.out))["state"] == "queued"
    assert res.err == (
        "jobrunner: warning: no running daemon serves queue 'emails': its jobs wait until "
        "one does (daemon --queues, [daemon] queues)\n"
    )
    res = cli(workdir, db, "submit", "--cmd", "--queue", "sms", "--", "true")
    assert (res.code, res.err) == (0, "")
    res = cli(workdir, db, "submit", "--file", "-", input='{"command": ["true"]}\n')
    assert res.code == 0 and "'default'" in res.err
