"""The PostgreSQL server restarts while a daemon runs jobs on it (a private cluster of
this test's own: the machine's shared server is never touched). Meanwhile a submit fails
with one retryable line and exit 3, writing nothing; afterwards the daemon goes on by
itself, and every job whose submit printed an id runs to its end, none more than once
unless it was running when the server went away."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Daemon, cli, env_for, wait_for
from tests.http.conftest import Server
from tests.integration.conftest import (
    TASKS_SOURCE,
    job,
    ledger,
    submit,
    wait_counts,
    write_config,
    write_module,
)

BIN = Path("/usr/lib/postgresql/15/bin")
EXIT_STORE = 3


class PrivateServer:
    """A PostgreSQL cluster in a temporary folder, run as the `postgres` user (the server
    refuses root), on a free port of 127.0.0.1 with trust auth."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jr-pg-"))
        shutil.chown(self.dir, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._as_postgres("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> str:
        return str(self.dir / "data")

    def _as_postgres(self, tool: str, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(BIN / tool), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.dir / "log")
        self._as_postgres("pg_ctl", "-D", self.data, "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    if not (BIN / "initdb").exists() or shutil.which("runuser") is None:
        why = f"no PostgreSQL server binaries at {BIN} (Debian: postgresql-15)"
        if os.environ.get("CI") == "true":
            pytest.fail(why + "; CI runs every PostgreSQL test", pytrace=False)
        pytest.skip(why)
    s = PrivateServer()
    try:
        s.start()
        yield s
    finally:
        s.remove()


@pytest.fixture
def db(server: PrivateServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[override]
    monkeypatch.setenv("JOBRUNNER_PG_LOGS", str(tmp_path / "pg-logs"))
    return server.url


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_server_restart_mid_run_loses_no_acknowledged_job(
    workdir: Path, db: str, server: PrivateServer, daemons: list[Daemon], mode: str
) -> None:
    write_config(workdir, lease='"3s"', workers="2")
    write_module(workdir, "jtasks", TASKS_SOURCE)
    path = db  # a URL where the helpers take a path
    before = [
        submit(workdir, path, "jtasks:record", "--args", f'["a{i}", 150]')  # type: ignore[arg-type]
        for i in range(16)
    ]
    d = Daemon(workdir, path, "--workers", "2")  # type: ignore[arg-type]
    daemons.append(d)
    # a fatal signal in serve prints where it was (CI once found it gone, nothing said)
    env = {**env_for(workdir, path), "PYTHONFAULTHANDLER": "1"}  # type: ignore[arg-type]
    api = Server(workdir, path, env=env)  # type: ignore[arg-type]
    http = api.client(timeout=10)
    wait_for(lambda: len(ledger(workdir)) >= 4, timeout=30, what="jobs running")

    server.stop(mode)  # `immediate`: as a crash, no goodbye to the clients
    res = cli(workdir, path, "submit", "jtasks:record", "--args", '["never"]')  # type: ignore[arg-type]
    assert res.code == EXIT_STORE, (res.code, res.err)
    assert res.out == "" and res.err.count("\n") == 1 and "Traceback" not in res.err, res.err
    assert "try again" in res.err
    assert api.proc.poll() is None, api.log()
    try:
        answer = http.get(f"/jobs/{before[0]}")
    except httpx.TransportError as exc:
        raise AssertionError(f"{exc!r}; serve exited {api.proc.poll()}:\n{api.log()}") from exc
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert "cannot reach the database" in answer.json()["detail"]
    # the daemon sees it: its LISTEN connection drops, and the ends of the jobs that
    # were running cannot be written (it keeps them and backs off)
    wait_for(lambda: "wake-ups lost" in d.log(), 15, "the daemon to notice")
    wait_for(lambda: "database write failed" in d.log(), 15, "a failed write")
    assert d.proc.poll() is None, d.log()
    server.start()

    after = [
        submit(workdir, path, "jtasks:record", "--args", f'["b{i}", 50]')  # type: ignore[arg-type]
        for i in range(4)
    ]
    acknowledged = before + after
    final = wait_counts(workdir, path, timeout=60, succeeded=len(acknowledged))  # type: ignore[arg-type]
    assert sum(final.values()) == len(acknowledged), final  # nothing else, nothing stuck
    assert d.proc.poll() is None, d.log()
    assert "Traceback" not in d.log(), d.log()
    assert "wake-ups: listening again" in d.log() and "database writable again" in d.log()
    answer = http.get(f"/jobs/{after[-1]}")  # the server reads again by itself
    assert answer.status_code == 200 and answer.json()["state"] == "succeeded", answer.text
    http.close()
    api.stop()

    entries = ledger(workdir)
    assert "never" not in {e.tag for e in entries}
    assert {e.job_id for e in entries} == set(acknowledged)
    for job_id, runs in Counter(e.job_id for e in entries).items():
        if runs > 1:  # only a job cut short by the outage runs again, and says so
            history = job(workdir, path, job_id)["attempt_history"]  # type: ignore[arg-type]
            assert history[-1]["outcome"] == "succeeded", history
            assert len(history) == runs, history
