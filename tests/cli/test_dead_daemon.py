"""`status` tells a daemon killed on this machine from a live one at once.

Its row stays (and its lease runs on) until a live daemon rescues its jobs; the pid is
gone, and on the same node that is proof, as the rescue takes it (daemon/peers.py).
"""

from __future__ import annotations

import signal
from pathlib import Path

from tests.cli.support import record, submit
from tests.helpers import Daemon, cli, wait_for


def test_status_calls_a_killed_daemon_dead_and_its_jobs_awaiting_rescue(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    (workdir / "jobrunner.toml").write_text('[daemon]\nlease = "1h"\n')  # its lease runs on
    d = Daemon(workdir, db, "--workers", "1")
    daemons.append(d)
    job_id = submit(workdir, db, "--cmd", "--", "sleep", "60")
    wait_for(lambda: record(workdir, db, job_id)["state"] == "running", what="running")
    res = cli(workdir, db, "status", "--json")
    assert [x["alive"] for x in res.json()["daemons"]] == [True]
    assert res.json()["awaiting_rescue"] == []

    d.signal(signal.SIGKILL)
    assert d.wait(10) == -signal.SIGKILL
    overview = cli(workdir, db, "status", "--json").json()
    (info,) = overview["daemons"]
    assert (info["alive"], info["dead"]) == (False, "dead (pid gone)")
    assert overview["awaiting_rescue"] == [job_id]
    assert overview["counts"]["running"] == 1  # still running in the database
    res = cli(workdir, db, "status")
    assert "dead (pid gone)" in res.out
    assert "1 running job(s) awaiting rescue" in res.out and f": {job_id}" in res.out
    res = cli(workdir, db, "status", str(job_id))
    assert f"awaiting rescue: its daemon {info['id']} is dead (pid gone)" in res.out
