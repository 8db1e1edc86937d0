"""Each example in examples/ runs as the README says (`bash examples/NAME/run.sh`), with a
real daemon, and does its work."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # `jobrunner` beside this Python

pytestmark = pytest.mark.sqlite_only("the examples make their own database files")


def run_example(name: str, *args: str, tmp_path: Path) -> str:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", TMPDIR=str(tmp_path))
    for key in ("JOBRUNNER_DB", "JOBRUNNER_CONFIG", "JOBRUNNER_TOKEN"):
        env.pop(key, None)
    try:
        res = subprocess.run(
            ["bash", str(REPO / "examples" / name / "run.sh"), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{name} ran over 90 s:\n{exc.stdout!r}\n{exc.stderr!r}") from None
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert list(tmp_path.iterdir()) == [], "the example left its folder behind"
    return res.stdout


def test_csv_import_reports_progress_and_imports_every_row(tmp_path: Path) -> None:
    out = run_example("csv_import", "50000", tmp_path=tmp_path)
    result = json.loads(out.split("== result\n", 1)[1].splitlines()[0])
    assert result["rows"] == 50_000 and result["table"] == "sales"
    assert "succeeded 100% 50,000 rows" in out
    assert "imported 50000 rows into sales.db:sales" in out


def test_nightly_report_schedule_shows_its_zone_and_runs_now(tmp_path: Path) -> None:
    out = run_example("nightly_report", tmp_path=tmp_path)
    assert "nightly-report" in out and "Europe/Berlin" in out and "02:30:00+0" in out
    report = out.split("== run it now\n", 1)[1]
    assert "jobs ended in the 24 hours before" in report
    assert "succeeded  true" in report


def test_backup_command_archives_and_a_timeout_kills(tmp_path: Path) -> None:
    out = run_example("backup_command", tmp_path=tmp_path)
    assert "== the archive: 204 entries" in out  # data/, 2 folders, 201 files
    assert "data/notes/todo.txt" in out or "data/photos/" in out
    assert "state: dead | outcome: timeout" in out


def test_an_application_in_bash_and_curl_submits_and_follows_events(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = run_example("http_curl", str(port), tmp_path=tmp_path)
    assert "== without the token: 401" in out
    assert "HTTP/1.1 202 Accepted" in out
    events = [line.strip() for line in out.splitlines() if line.strip().startswith("event:")]
    assert events[-1] == "event: job.succeeded" and "event: job.started" in events
    assert '"state":"succeeded"' in out
    assert "/etc/hostname" in out.split("/logs\n", 1)[1]


def test_thumbnails_with_pillow_each_a_job_under_a_memory_limit(tmp_path: Path) -> None:
    out = run_example("thumbnails", "6", tmp_path=tmp_path)
    assert "== 6 thumbnails made by 2 workers" in out
    assert "succeeded" in out.split("the last job's attempt:", 1)[1]
    images = [line for line in out.splitlines() if line.startswith("images ")]
    assert images and images[0].split()[-1] == "6"  # succeeded, in the images queue


def test_fan_out_counts_parts_in_parallel_then_merges_after_them_all(tmp_path: Path) -> None:
    out = run_example("fan_out", "40000", "4", tmp_path=tmp_path)
    split = json.loads(out.split("== split (job 2)\n", 1)[1].splitlines()[0])
    assert len(split["parts"]) == 4
    merged = json.loads(out.split(f"== merged (job {split['merge']})\n", 1)[1].splitlines()[0])
    assert merged["words"] == 40_000 * 12  # every word of every part, counted once
    assert merged["top"][0][0] == "the"
    every = out.split("== every job\n", 1)[1]
    assert every.count("succeeded") == 7  # the text, the split, 4 parts, the merge
    assert f"after     {split['parts'][0]} " in out  # status of the merge: what it waits for
