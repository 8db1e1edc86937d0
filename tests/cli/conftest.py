from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import write_tasks


@pytest.fixture
def tasks(workdir: Path) -> Path:
    """A tasks.py with ok/quiet/fail/say in the working directory."""
    write_tasks(workdir)
    return workdir / "tasks.py"
