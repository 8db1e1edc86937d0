from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Daemon


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


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
