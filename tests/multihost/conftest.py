"""Daemons on many hosts sharing one PostgreSQL database, and the faults between them.

Every daemon runs on a host of its own: `unshare --uts --pid --fork --mount-proc` gives it
its own hostname and pid namespace (the network stays shared, so all reach the server on
127.0.0.1). Its peers cannot see its pid and judge it by heartbeat alone, as daemons on
two machines do (docs/architecture.md, "Liveness"). The daemon is the namespace's init:
`kill -9` of it ends every process in the namespace (its workers, their jobs) at once,
as a host that dies takes its processes with it. Each host keeps jobs' output and start
journals in a folder of its own (JOBRUNNER_PG_LOGS), as separate machines would, and its
connections carry its name (PGAPPNAME, libpq's: jobrunner sets no application_name).

Each test gets a fresh database on the local server (tests/store/pg_support.py), or
(test_server_restart.py) one on a private cluster it may stop and kill.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import PYTHON, env_for, wait_for
from tests.integration.conftest import TASKS_SOURCE, processes_of_test
from tests.store.pg_support import fresh_database

LEASE = 2.0  # [daemon] lease: peers are presumed dead after this long without a heartbeat
READY = re.compile(r"daemon (\S+) ready: ")


# -- the database -----------------------------------------------------------------------


@pytest.fixture
def db() -> Iterator[str]:
    """A fresh database on the local server: its URL is JOBRUNNER_DB for every process the
    test starts (and marks them as this test's: processes_of_test)."""
    with fresh_database() as url:
        yield url


def sql(url: str, query: str, params: Any = ()) -> list[Any]:
    """Rows of one query, on a connection of its own (the test's view of the database)."""
    with psycopg.connect(url, autocommit=True, application_name="jr-test") as conn:
        return list(conn.execute(query, params).fetchall())


# -- the task module and the config -----------------------------------------------------


def write_setup(workdir: Path, workers: int = 2, extra: str = "") -> None:
    """jtasks.py (the integration tests' ledger tasks) and ./jobrunner.toml: a short lease,
    short graces, and `extra` TOML after [daemon] ([[schedules]], [http] ...)."""
    (workdir / "jtasks.py").write_text(TASKS_SOURCE)
    (workdir / "jobrunner.toml").write_text(
        'imports = ["jtasks"]\n\n'
        "[daemon]\n"
        f'lease = "{LEASE:g}s"\n'
        f"workers = {workers}\n"
        'shutdown_grace = "5s"\n'
        'kill_grace = "1s"\n' + extra
    )


# -- processes --------------------------------------------------------------------------


def pid_namespace(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/pid")
    return None


def in_namespace(ns: str) -> list[int]:
    """The live processes of the pid namespace `ns` (seen from ours)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and pid_namespace(int(name)) == ns:
            with contextlib.suppress(OSError):
                state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(name))
    return found


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def socket_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process `pid` holds open (its connections)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Host:
    """`jobrunner daemon` on a host of its own: its hostname `name`, its pid namespace
    (the daemon is the namespace's init), its output folder, its connections named
    `jr-<name>`. `pid` is the daemon's pid as seen from the test."""

    def __init__(self, workdir: Path, db: str, name: str, *args: str) -> None:
        self.name = name
        self.workdir = workdir
        self.db = db
        self.log_path = workdir / f"daemon-{name}-{time.monotonic_ns()}.log"
        env = env_for(workdir, db)  # type: ignore[arg-type]
        env["JOBRUNNER_PG_LOGS"] = str(workdir / f"{name}.output")
        env["PGAPPNAME"] = self.app
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--uts",
                "--pid",
                "--fork",
                "--mount-proc",
                "sh",
                "-c",
                'hostname "$0" && exec "$@"',
                name,
                PYTHON,
                "-m",
                "jobrunner",
                "daemon",
                *args,
            ],
            cwd=workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            found = wait_for(self._ready, timeout=60, what=f"the daemon on {name} ready")
        except AssertionError:
            self.kill9(check=False)
            raise
        self.id: str = found
        self.pid: int = wait_for(
            lambda: (children_of(self.proc.pid) or [None])[0], timeout=10, what="the daemon's pid"
        )
        ns = pid_namespace(self.pid)
        assert ns is not None and ns != pid_namespace(os.getpid()), "not a pid namespace of its own"
        self.namespace: str = ns

    @property
    def app(self) -> str:
        return f"jr-{self.name}"

    def _ready(self) -> str | None:
        text = self.log()
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the daemon on {self.name} exited {self.proc.returncode}:\n{text}"
            )
        m = READY.search(text)
        return m.group(1) if m else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def processes(self) -> list[int]:
        """Every live process on this host: the daemon, its workers and guard, jobs."""
        return in_namespace(self.namespace)

    def backends(self) -> list[int]:
        """The server's backend pids of this host's connections (by their name)."""
        rows = sql(
            self.db,
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = "
            "current_database()",
            (self.app,),
        )
        return sorted(r[0] for r in rows)

    def kill9(self, check: bool = True) -> None:
        """SIGKILL the daemon, the namespace's init: the kernel kills everything else on
        the host with it. Returns once none of them is left."""
        before = self.processes() if check else []
        with contextlib.suppress(ProcessLookupError):
            if getattr(self, "pid", None) is not None:
                os.kill(self.pid, signal.SIGKILL)
            else:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        if check:
            assert len(before) >= 3, f"a daemon with workers and a guard: {before}"
            wait_for(
                lambda: not self.processes() and not any(_alive(p) for p in before),
                timeout=30,
                what=f"every process on {self.name} gone after kill -9",
            )
        self._log.close()

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (the daemon's handler takes it, init or not) and wait; kill -9 after
        `timeout`."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9(check=False)
        self._log.close()
        return self.proc.returncode


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def hosts(workdir: Path, db: str) -> Iterator[Callable[..., Host]]:
    """`hosts(name, *daemon args)` starts a daemon on a host of its own; every one is
    stopped after the test (and its namespace emptied), and anything else the test
    started that carries its database is killed."""
    started: list[Host] = []

    def start(name: str, *args: str) -> Host:
        host = Host(workdir, db, name, *args)
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()
    for host in started:
        if host.processes():
            host.kill9(check=False)
    for _ in range(50):
        left = processes_of_test(db)  # type: ignore[arg-type]
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


# -- reading the outcome ----------------------------------------------------------------


def job_states(db: str) -> dict[int, str]:
    return {r[0]: r[1] for r in sql(db, "SELECT id, state FROM jobs")}


def wait_all_succeeded(db: str, ids: set[int], timeout: float = 90) -> None:
    last: dict[int, str] = {}

    def done() -> bool:
        last.clear()
        last.update(job_states(db))
        return ids <= last.keys() and all(last[i] == "succeeded" for i in ids)

    try:
        wait_for(done, timeout=timeout, every=0.2, what=f"{len(ids)} jobs succeeded")
    except AssertionError as exc:
        left = {i: last.get(i) for i in ids if last.get(i) != "succeeded"}
        raise AssertionError(f"{exc}; not succeeded: {dict(list(left.items())[:20])}") from None


def attempts(db: str) -> dict[int, list[tuple[int, str, str | None, str | None]]]:
    """job id -> its attempts: (attempt, outcome, owner, error), in order."""
    by_job: dict[int, list[tuple[int, str, str | None, str | None]]] = {}
    for job_id, attempt, outcome, owner, error in sql(
        db, "SELECT job_id, attempt, outcome, owner, error FROM attempts ORDER BY job_id, attempt"
    ):
        by_job.setdefault(job_id, []).append((attempt, outcome, owner, error))
    return by_job


def no_tracebacks(*hosts: Host) -> None:
    for host in hosts:
        assert "Traceback" not in host.log(), f"{host.name}:\n{host.log()}"
