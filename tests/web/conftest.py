"""Browser tests of the dashboard: Playwright for Python driving Debian's Chromium
(`/usr/bin/chromium`, launched by path: no browser download), against a real `jobrunner
serve` and a real daemon. Outside CI they skip, saying why, when either is missing; in CI
(`CI=true`, where .ci/run installs both) that is a failure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Daemon
from tests.http.conftest import Server
from tests.integration.conftest import write_module

CHROMIUM = os.environ.get("JOBRUNNER_TEST_CHROMIUM", "/usr/bin/chromium")

TASKS = '''
import sys
import time

from jobrunner import progress


def steps(n, pause=0.3):
    """Prints a line and reports progress at each step."""
    for i in range(n):
        print(f"step {i + 1} of {n}", flush=True)
        progress((i + 1) / n, f"step {i + 1}")
        time.sleep(pause)
    return {"steps": n}


def fail(message="kaput"):
    raise ValueError(message)


def ok(x=0):
    return x


def flaky(path):
    """Dies the first time (its marker file is missing), succeeds once it exists."""
    import os

    if not os.path.exists(path):
        open(path, "w").close()
        raise RuntimeError("first time fails")
    return "second time"
'''


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not shutil.which(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    return None


# Per module, not per session: Playwright's sync API keeps an event loop running in the
# test process while it is open, and tests of other modules (run by the same xdist
# worker between these) call asyncio.run(), which refuses to run inside one.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    why = _missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why + "; CI runs the browser tests", pytrace=False)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, site: Callable[..., Server]) -> Iterator[Any]:
    """A fresh browser context (no cookies) at 1280 px; console errors fail the test.
    (After `site`: it closes before the servers stop.)"""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # a failed request the page made itself (its live part answering 500, say)
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.console_errors = errors  # a test that expects one clears it
    yield pg
    context.close()
    assert not errors, errors


@pytest.fixture
def site(workdir: Path, db: Path, daemons: list[Daemon]) -> Iterator[Callable[..., Server]]:
    """`site(config="...", daemon=True)`: the tasks module, the config, a daemon (unless
    told not to) and a server; returns the server. Everything is stopped after."""
    servers: list[Server] = []

    def start(config: str = "", daemon: bool = True, workers: str = "2") -> Server:
        write_module(workdir, "wtasks", TASKS)
        (workdir / "jobrunner.toml").write_text(config)
        if daemon:
            daemons.append(Daemon(workdir, db, "--workers", workers))
        server = Server(workdir, db)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()
