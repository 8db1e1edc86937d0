"""The daemon's log lines: the claim's jobs as data, an attempt that does not count told
apart from its re-run, the shutdown grace running out said once, "1 worker"."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from tests.cli.support import submit
from tests.helpers import Daemon, cli, wait_for

# runs for a minute the first time (until the forced drain), at once the second
ONCE_SLOW = "if [ -e ran-once ]; then exit 0; fi; touch ran-once; exec sleep 60"


def test_a_drain_that_runs_out_of_grace_and_the_rerun(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    (workdir / "jobrunner.toml").write_text(
        '[daemon]\nworkers = 1\nshutdown_grace = "200ms"\nkill_grace = "1s"\n'
    )
    job_id = submit(workdir, db, "--cmd", "--", "sh", "-c", ONCE_SLOW)
    first = Daemon(workdir, db, "--log-format", "json")
    daemons.append(first)
    wait_for(lambda: (workdir / "ran-once").exists(), timeout=30, what="the job started")
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0, first.log()
    lines: list[dict[str, Any]] = [json.loads(line) for line in first.log().splitlines()]

    ready = next(line["message"] for line in lines if " ready: " in line.get("message", ""))
    assert " ready: 1 worker, " in ready, ready
    (claim,) = [line for line in lines if line["event"] == "claim"]
    assert (claim["count"], claim["jobs"]) == (1, [{"id": job_id, "attempt": 1}])
    grace = [line for line in lines if "shutdown grace over" in line.get("message", "")]
    assert len(grace) == 1, lines
    (interrupted,) = [line for line in lines if line["event"] == "interrupted"]
    assert (interrupted["job"], interrupted["attempt"], interrupted["counted"]) == (
        job_id,
        1,
        False,
    )

    second = Daemon(workdir, db)  # text this time
    daemons.append(second)
    res = cli(workdir, db, "wait", str(job_id), "--timeout", "30s")
    assert res.code == 0, res.err
    second.stop()
    text = second.log()
    assert f" INFO claim count=1 jobs={job_id}/1\n" in text, text
    (finish,) = [ln for ln in text.splitlines() if f" finish job={job_id} " in ln]
    assert f"finish job={job_id} attempt=1 outcome=succeeded " in finish, finish
    assert "counted" not in finish  # the attempt that counts: the re-run
