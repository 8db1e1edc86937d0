"""dist/jobrunner (`make dist`) on a machine with no Python: every interpreter and Python
library folder is hidden in a private mount namespace (unshare, as root), then
tests/dist/smoke.sh submits a Python task of the user's own and a command, runs the daemon,
waits, sees a schedule fire and stops the daemon. Outside CI a missing build skips; in CI
(which builds it first) it fails."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist" / "jobrunner"
SMOKE = Path(__file__).with_name("smoke.sh")

# Run inside `unshare --mount`: hide each folder of a Python (empty tmpfs over it) and each
# python executable (/dev/null over it), then the smoke test with a PATH of system folders.
HIDE_PYTHON = r"""
set -eu
mount --make-rprivate /
for dir in "$@"; do
    [ -d "$dir" ] && mount -t tmpfs -o size=1m hidden "$dir"
done
for exe in /usr/bin/python* /usr/local/bin/python* /bin/python*; do
    [ -e "$exe" ] && [ ! -d "$exe" ] && mount --bind /dev/null "$exe"
done
exec env -i PATH=/usr/bin:/bin HOME="$SMOKE_HOME" JOBRUNNER_CACHE="$SMOKE_CACHE" \
    sh "$SMOKE" "$DIST" "$SMOKE_DIR"
"""


def _python_folders() -> list[str]:
    found = {sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix)}
    found.update(glob.glob("/usr/lib/python3*") + glob.glob("/usr/local/lib/python3*"))
    found.update(p for p in ("/root/.pyenv", str(REPO / "build")) if os.path.isdir(p))
    # never the folders the smoke test needs
    return sorted(p for p in found if p not in ("/usr", "/usr/local", "/"))


def test_the_single_file_runs_every_step_with_no_python_installed(tmp_path: Path) -> None:
    if not DIST.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{DIST} is missing: CI builds it (make dist) before the tests")
        pytest.skip(f"{DIST} is not built (make dist)")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding the interpreters needs root and unshare(1)")
    work = tmp_path / "work"
    work.mkdir()
    env = dict(
        os.environ,
        SMOKE=str(SMOKE),
        DIST=str(DIST),
        SMOKE_DIR=str(work),
        SMOKE_HOME=str(tmp_path),
        SMOKE_CACHE=str(tmp_path / "cache"),
    )
    res = subprocess.run(
        ["unshare", "--mount", "--fork", "sh", "-c", HIDE_PYTHON, "hide", *_python_folders()],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    log = work / "daemon.log"
    assert res.returncode == 0, (
        f"exit {res.returncode}\n{res.stdout}\n{res.stderr}\n"
        + (log.read_text() if log.exists() else "(no daemon log)")
    )
    assert res.stdout.strip().endswith("smoke: ok")
    # unpacked once into the cache, and only there
    assert len(list((tmp_path / "cache" / "jobrunner").glob("dist-*"))) == 1
