from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Daemon


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_backends` run once on an SQLite file and once on a fresh
    PostgreSQL database: their `db` is then the file's path or the database's URL (the
    CLI and the daemon take either through JOBRUNNER_DB)."""
    marked = metafunc.definition.get_closest_marker
    if "db" in metafunc.fixturenames and marked("both_backends") and not marked("sqlite_only"):
        # a run on PostgreSQL (below) has run them on a file already
        both = BACKENDS if DEFAULT_BACKEND == "sqlite" else ("postgresql",)
        metafunc.parametrize("backend", both, indirect=True)


# `JOBRUNNER_TEST_BACKEND=postgresql pytest` runs every test that takes `db` on a fresh
# PostgreSQL database, but those marked sqlite_only (what only a file has)
DEFAULT_BACKEND = os.environ.get("JOBRUNNER_TEST_BACKEND", "sqlite")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    if hasattr(request, "param"):
        return str(request.param)
    if request.node.get_closest_marker("sqlite_only"):
        return "sqlite"
    return DEFAULT_BACKEND


@pytest.fixture
def db(tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if backend == "sqlite":
        yield tmp_path / "jobs.db"
        return
    from tests.store.pg_support import fresh_database

    # this host's staging of jobs' output (the database holds it): in the test's folder
    monkeypatch.setenv("JOBRUNNER_PG_LOGS", str(tmp_path / "pg-logs"))
    with fresh_database() as url:
        yield url  # type: ignore[misc]  # a URL where the others get a path


@pytest.fixture
def daemons(workdir: Path, db: Path) -> Iterator[list[Daemon]]:
    """Start daemons with `daemons.append(Daemon(workdir, db, ...))`; all stopped after."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()
        # nothing a test started may outlive it: kill the daemon's group and its workers'
        for pid in d.worker_pids():
            try:
                import os
                import signal

                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
