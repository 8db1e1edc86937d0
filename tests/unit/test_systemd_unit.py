"""examples/systemd/jobrunner.service is a unit systemd accepts, and its stop settings let
the daemon drain: SIGTERM to the daemon alone, and time for the default graces."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobrunner.config import DEFAULT_SHUTDOWN_GRACE, KILL_GRACE
from jobrunner.durations import parse_duration

UNIT = Path(__file__).resolve().parents[2] / "examples" / "systemd" / "jobrunner.service"


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_the_unit_drains_on_stop_and_speaks_notify() -> None:
    service = _service()
    assert service["Type"] == "notify"
    assert service["KillMode"] == "mixed"  # SIGTERM to the daemon, not to every job
    assert parse_duration(service["TimeoutStopSec"] + "s") > DEFAULT_SHUTDOWN_GRACE + KILL_GRACE
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    jobrunner = Path(sys.executable).with_name("jobrunner")
    unit = tmp_path / "jobrunner.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/jobrunner", str(jobrunner)))
    res = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
