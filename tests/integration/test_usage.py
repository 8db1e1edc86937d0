"""End to end as a user sees it: pickup, logs, `logs --follow`, the Python API."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import PYTHON, Daemon, cli, env_for, wait_for
from tests.integration.conftest import (
    job,
    ledger,
    read_through_newline,
    submit,
    submit_file,
    write_module,
)

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends


def test_submit_to_idle_daemon_is_picked_up(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    job_id = submit(workdir, db, "jtasks:record", "--args", '["p"]')
    res = cli(workdir, db, "wait", str(job_id), "--timeout", "10s")
    assert res.code == 0, (res.code, res.err)
    assert json.loads(res.out) == "p"


def test_logs_show_stdout_and_stderr_of_python_and_command_jobs(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    py = submit(workdir, db, "jtasks:chatty", "--args", '["hello"]')
    cmd = submit(workdir, db, "--cmd", "--", "sh", "-c", "echo cmd-out; echo cmd-err >&2")
    for job_id in (py, cmd):
        assert cli(workdir, db, "wait", str(job_id), "--timeout", "20s").code == 0

    res = cli(workdir, db, "logs", str(py))
    assert res.code == 0, res.err
    assert "stdout says hello" in res.out
    assert "stderr says hello" in res.out
    res = cli(workdir, db, "logs", str(cmd))
    assert res.code == 0, res.err
    assert "cmd-out" in res.out
    assert "cmd-err" in res.out


def test_logs_follow_streams_until_the_job_ends(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    job_id = submit(workdir, db, "jtasks:ticker", "--args", '["tk", 6]')
    follow = subprocess.Popen(
        [PYTHON, "-m", "jobrunner", "logs", str(job_id), "--follow"],
        cwd=workdir,
        env=env_for(workdir, db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # The job holds after its first line until we let it go: seeing that line
        # while the job still runs shows the output is streamed, not dumped at the end.
        early = read_through_newline(follow.stdout, timeout=20)
        assert early.startswith(b"tk tick 0\n"), early
        assert job(workdir, db, job_id)["state"] == "running"
        assert follow.poll() is None
        (workdir / "tk.go").touch()
        rest, err = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    lines = (early + rest).decode().splitlines()
    assert lines == [f"tk tick {i}" for i in range(6)]
    assert job(workdir, db, job_id)["state"] == "succeeded"


API_MODULE = """
    from jobrunner import current_job, task


    @task(retries=0)
    def add(a, b):
        return a + b


    @task(retries=0)
    def boom(message):
        raise ValueError(message)


    @task(retries=0)
    def whoami():
        job = current_job()
        return {"id": job.id, "attempt": job.attempt, "task": job.task}
"""


@pytest.fixture
def api(workdir: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The task module imported into this test process, with JOBRUNNER_DB pointing at
    the test's database and no default client cached from elsewhere in the session."""
    name = f"apitasks_{workdir.name.replace('-', '_')}"
    write_module(workdir, name, API_MODULE)
    monkeypatch.setenv("JOBRUNNER_DB", str(db))
    monkeypatch.delenv("JOBRUNNER_CONFIG", raising=False)
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    module = importlib.import_module(name)
    # `fn.submit` uses the default client of the module that defines the Task class.
    home = sys.modules[type(module.add).__module__]
    monkeypatch.setattr(home, "_default_client", None)
    try:
        yield module
    finally:
        client = home._default_client
        if client is not None:
            client.close()
        sys.modules.pop(name, None)


def test_python_api_end_to_end(
    workdir: Path, db: Path, tasks: Path, api: ModuleType, daemons: list[Daemon]
) -> None:
    from jobrunner import JobFailed, State

    ok = api.add.submit(2, 3)
    assert ok.state() is State.QUEUED  # no daemon yet
    assert api.add(2, 3) == 5  # still a plain function too

    daemons.append(Daemon(workdir, db, "--workers", "2"))
    assert ok.result(timeout=30) == 5
    assert ok.state() is State.SUCCEEDED

    bad = api.boom.submit("no luck")
    with pytest.raises(JobFailed) as failed:
        bad.result(timeout=30)
    assert "ValueError: no luck" in str(failed.value)
    assert failed.value.job.state is State.DEAD
    assert bad.state() is State.DEAD
    assert failed.value.job.max_attempts == 1  # retries=0 from the decorator

    me = api.whoami.submit()
    assert me.result(timeout=30) == {"id": me.id, "attempt": 1, "task": f"{api.__name__}:whoami"}


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_daemon_waiting_on_busy_workers_uses_no_cpu(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """With every worker busy and jobs waiting, the supervisor sleeps until a job ends;
    it once spun on the poll interval the claim had left in the past."""
    daemon = Daemon(workdir, db, "--workers", "1")
    daemons.append(daemon)
    # One submit (several took seconds on a loaded machine), the first job long enough to
    # outlast it and the measurement, then a backlog behind the busy worker
    lines = [{"task": "jtasks:slow", "args": [tag, 0]} for tag in ("w0", "w1", "w2")]
    first, *_ = submit_file(workdir, db, [{"task": "jtasks:slow", "args": ["s1", 6]}, *lines])

    def events() -> list[tuple[str, str]]:  # read from the ledger: no slow CLI call
        return [(e.tag, e.event) for e in ledger(workdir)]

    wait_for(lambda: ("s1", "start") in events(), timeout=20, what="the first job to start")
    before = _cpu_seconds(daemon.pid)
    time.sleep(1.5)  # measuring over a span of time, not waiting for a condition
    used = _cpu_seconds(daemon.pid) - before
    assert ("s1", "end") not in events()  # the worker was busy all along
    assert job(workdir, db, first)["attempts"] == 1
    assert used < 0.15, f"the supervisor used {used:.2f}s of CPU in 1.5s while waiting"


def test_a_daemon_with_a_due_job_it_may_not_take_uses_no_cpu(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """A delayed job fallen due in a queue this daemon does not serve is not a reason
    to poll: it once made the supervisor claim in a busy loop."""
    daemon = Daemon(workdir, db, "--workers", "1", "--queues", "a")
    daemons.append(daemon)
    other = submit(
        workdir, db, "jtasks:record", "--args", '["b"]', "--queue", "b", "--delay", "0.3s"
    )
    mine = submit(
        workdir, db, "jtasks:record", "--args", '["a"]', "--queue", "a", "--delay", "0.3s"
    )
    assert cli(workdir, db, "wait", str(mine), "--timeout", "20s").code == 0
    before = _cpu_seconds(daemon.pid)
    time.sleep(1.5)  # measuring over a span of time, not waiting for a condition
    used = _cpu_seconds(daemon.pid) - before
    assert job(workdir, db, other)["state"] == "scheduled"  # due, but not this daemon's
    assert used < 0.15, f"the supervisor used {used:.2f}s of CPU in 1.5s while idle"
