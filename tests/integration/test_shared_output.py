"""On PostgreSQL a job's output is read from every host: `logs` and `logs --follow` on a
machine that ran none of it (here: a reader whose own output folder is elsewhere and
empty) see what the job printed while it runs, all of it once it ended, over retries,
capped as on one host."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PYTHON, Daemon, cli, env_for, wait_for
from tests.integration.conftest import (
    job,
    read_through_newline,
    submit,
    write_config,
    write_module,
)

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

TASKS = """
import os, sys, time
from jobrunner import current_job

def ticker(lines):
    print("tick 0", flush=True)
    while not os.path.exists("go"):
        time.sleep(0.02)
    for i in range(1, lines):
        time.sleep(0.05)
        print(f"tick {i}", flush=True)
    print("done on stderr", file=sys.stderr, flush=True)

def flaky():
    attempt = current_job().attempt
    print(f"attempt {attempt} speaking")
    if attempt == 1:
        raise RuntimeError("first attempt fails")

def loud(n):
    for i in range(n):
        print(f"line {i:06d} " + "x" * 50)
"""


@pytest.fixture
def elsewhere(workdir: Path, db: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a reader on another host: its output folder is not the
    daemon's, and holds nothing."""
    env = env_for(workdir, db)
    env["JOBRUNNER_PG_LOGS"] = str(tmp_path / "another-host")
    return env


@pytest.fixture
def setup(workdir: Path) -> None:
    write_config(workdir)
    write_module(workdir, "otasks", TASKS)


def test_logs_follow_on_another_host_streams_a_running_job(
    workdir: Path, db: Path, setup: None, elsewhere: dict[str, str], daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    job_id = submit(workdir, db, "otasks:ticker", "--args", "[20]")
    follow = subprocess.Popen(
        [PYTHON, "-m", "jobrunner", "logs", str(job_id), "--follow"],
        cwd=workdir,
        env=elsewhere,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        early = read_through_newline(follow.stdout, timeout=30)
        assert early == b"tick 0\n"  # the job waits for "go": it is still running
        assert job(workdir, db, job_id)["state"] == "running"
        (workdir / "go").touch()
        rest, err = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    lines = (early + rest).decode().splitlines()
    assert lines == [f"tick {i}" for i in range(20)] + ["done on stderr"]
    assert job(workdir, db, job_id)["state"] == "succeeded"
    # and this host's copy is gone: the database holds it
    local = Path(os.environ["JOBRUNNER_PG_LOGS"])
    assert not list(local.glob(f"*/{job_id}.log"))
    again = cli(workdir, db, "logs", str(job_id), env=elsewhere)
    assert again.out.splitlines() == lines


def test_every_attempts_output_is_read_from_another_host(
    workdir: Path, db: Path, setup: None, elsewhere: dict[str, str], daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    job_id = submit(workdir, db, "otasks:flaky", "--retries", "1", "--backoff", "0.1")
    wait_for(lambda: job(workdir, db, job_id)["state"] == "succeeded", timeout=60)
    res = cli(workdir, db, "logs", str(job_id), env=elsewhere)
    assert res.code == 0, res.err
    assert res.out.splitlines() == [
        "attempt 1 speaking",
        "--- attempt 2 ---",
        "attempt 2 speaking",
    ]


def test_output_past_the_cap_keeps_its_end_as_on_one_host(
    workdir: Path, db: Path, elsewhere: dict[str, str], daemons: list[Daemon]
) -> None:
    write_config(workdir)
    with open(workdir / "jobrunner.toml", "r+") as f:  # log_max_bytes is a top-level key
        text = f.read()
        f.seek(0)
        f.write("log_max_bytes = 4096\n" + text)
    write_module(workdir, "otasks", TASKS)
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    job_id = submit(workdir, db, "otasks:loud", "--args", "[2000]")
    wait_for(lambda: job(workdir, db, job_id)["state"] == "succeeded", timeout=60)
    res = cli(workdir, db, "logs", str(job_id), env=elsewhere)
    assert res.code == 0, res.err
    assert len(res.out) < 4096 + 200
    assert "earlier bytes of output dropped" in res.out.splitlines()[0]
    assert res.out.splitlines()[-1].startswith("line 001999 ")
