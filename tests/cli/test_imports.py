"""`jobrunner submit` stays lean: no rich, no daemon, no croniter.

See docs/architecture.md, "Speed".
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.support import record
from tests.helpers import PYTHON, env_for

# `ast` and `inspect` too: the task check reads the module's source with `_ast` alone
HEAVY = (
    "rich",
    "croniter",
    "jobrunner.daemon",
    "jobrunner.worker",
    "ast",
    "inspect",
    # the HTTP stack loads only in `serve`
    "starlette",
    "uvicorn",
    "httpx",
    "prometheus_client",
    "anyio",
)

PROBE = """\
import json, sys
from jobrunner.cli.main import main
code = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n")
raise SystemExit(code)
"""

# On PostgreSQL, submit imports psycopg: the driver is the price of the server.
pytestmark = pytest.mark.sqlite_only("what `submit` imports to write an SQLite file")


def _modules_after(workdir: Path, db: Path, *argv: str) -> tuple[str, set[str]]:
    proc = subprocess.run(
        [PYTHON, "-c", PROBE, *argv],
        cwd=workdir,
        env=env_for(workdir, db),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES "))
    return proc.stdout, set(json.loads(line.removeprefix("MODULES ")))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.usefixtures("tasks")
@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "tasks:ok"],
        ["submit", "tasks:ok", "--json", "--delay", "5m", "--key", "k"],
        ["submit", "--cmd", "--", "echo", "hi"],
    ],
    ids=["task", "options", "cmd"],
)
def test_submit_imports_no_heavy_modules(workdir: Path, db: Path, argv: list[str]) -> None:
    out, modules = _modules_after(workdir, db, *argv)
    assert "jobrunner.cli.submit" in modules and "apsw" in modules  # it did submit
    assert record(workdir, db, 1)["state"] in ("queued", "scheduled")
    assert out.strip()
    assert _heavy(modules) == []


@pytest.mark.usefixtures("tasks")
def test_submit_file_imports_no_heavy_modules(workdir: Path, db: Path) -> None:
    (workdir / "jobs.jsonl").write_text('{"task": "tasks:ok"}\n{"command": ["true"]}\n')
    out, modules = _modules_after(workdir, db, "submit", "--file", "jobs.jsonl")
    assert out == "1\n2\n"
    assert _heavy(modules) == []


@pytest.mark.usefixtures("tasks")
def test_probe_sees_rich_where_it_is_used(workdir: Path, db: Path) -> None:
    """The check above can fail: `list` (a rich table) does import rich."""
    _modules_after(workdir, db, "submit", "tasks:ok")
    _, modules = _modules_after(workdir, db, "list")
    assert "rich" in _heavy(modules)


@pytest.mark.usefixtures("tasks")
def test_submit_importtime_via_python_m(workdir: Path, db: Path) -> None:
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "jobrunner", "submit", "tasks:ok"],
        cwd=workdir,
        env=env_for(workdir, db),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1\n"
    imported = {
        ln.rsplit("|", 1)[1].strip()
        for ln in proc.stderr.splitlines()
        if ln.startswith("import time:") and ln.count("|") == 2
    }
    # importlib.import_module (how main loads cli.submit) is not logged; what it imports is
    assert {"jobrunner.cli.main", "jobrunner.client", "apsw"} <= imported
    assert _heavy(imported) == []
