"""Snapshots of the human output of `status ID` and `dlq show ID`.

The parts that change from run to run (ISO times, "3s ago", durations, peak RSS)
are replaced by placeholders, and the columns rich pads with spaces are compared as
cells, so the snapshots are deterministic while still pinning every field name,
value and the attempt table's layout.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.support import record, submit
from tests.helpers import Daemon, cli, env_for, wait_for

TASKS = """
import os
import time

import jobrunner

HERE = os.path.dirname(os.path.abspath(__file__))


def explode(message="boom"):
    raise ValueError(message)


def halfway(tag):
    jobrunner.progress(0.4, "halfway")
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(HERE, tag + ".go")) and time.monotonic() < deadline:
        time.sleep(0.01)
    return tag
"""

CONFIG = '[daemon]\nworkers = 1\nshutdown_grace = "5s"\nkill_grace = "1s"\n'

# human times: local as TZ says (`2026-12-02 15:03:07+01:00`), or UTC with --utc (`...Z`)
ISO = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)")
# format_duration: 850ms, 12.3s, 4m05s, 2h10m, 3d04h
DURATION = re.compile(r"(?<![\w.])(?:\d+ms|\d+\.\d+s|\d+m\d\ds|\d+h\d\dm|\d+d\d\dh)(?![\w.])")
AGO = re.compile(r"\((?:<DUR> ago|in <DUR>)\)")
RSS = re.compile(r"\b\d+\.\d MiB\b")
RULE = re.compile(r"^[─━-]+$")


@pytest.fixture
def render_tasks(workdir: Path) -> Path:
    (workdir / "jobrunner.toml").write_text(CONFIG)
    path = workdir / "render_tasks.py"
    path.write_text(TASKS)
    return path


def plain_env(workdir: Path, db: Path) -> dict[str, str]:
    """The CLI's environment with nothing that would make rich think it has a terminal;
    COLUMNS=80 too, which piped output must not follow (nothing is cut)."""
    env = env_for(workdir, db)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "LINES", "JUPYTER_COLUMNS"):
        env.pop(name, None)
    env["COLUMNS"] = "80"
    env["TERM"] = "xterm-256color"
    return env


def render(workdir: Path, db: Path, *args: str) -> str:
    res = cli(workdir, db, *args, env=plain_env(workdir, db))
    assert res.code == 0, (res.code, res.err)
    assert res.err == ""
    assert "\x1b[" not in res.out  # no colours or cursor moves when not a terminal
    for line in res.out.splitlines():
        assert line == line.rstrip(), f"padded: {line!r}"  # piped: no trailing spaces
    return res.out


def normalise(text: str) -> list[list[str]]:
    """Each non-blank line as its cells (split at runs of 2+ spaces), times masked."""
    rows = []
    for line in text.splitlines():
        line = ISO.sub("<TIME>", line)
        line = DURATION.sub("<DUR>", line)
        line = AGO.sub("(<AGO>)", line)
        line = RSS.sub("<RSS>", line)
        stripped = line.strip()
        if not stripped:
            continue
        if RULE.match(stripped):
            rows.append(["<RULE>"])
            continue
        rows.append(re.split(r"\s{2,}", stripped))
    return rows


def dead_job(workdir: Path, db: Path, *args: str) -> int:
    job_id = submit(
        workdir, db, "render_tasks:explode", *args, "--retries", "1", "--backoff", "10ms"
    )
    res = cli(workdir, db, "wait", str(job_id), "--timeout", "30s")
    assert res.code == 1, (res.code, res.err)
    rec = record(workdir, db, job_id)
    assert rec["state"] == "dead"
    assert [a["outcome"] for a in rec["attempt_history"]] == ["failed", "failed"]
    return job_id


def detail_snapshot(job_id: int, error: str) -> list[list[str]]:
    return [
        ["id", str(job_id)],
        ["state", "dead"],
        ["task", "render_tasks:explode"],
        ["args", "[]"],
        ["kwargs", "{}"],
        ["queue", "default"],
        ["priority", "0"],
        ["attempts", "2 of 2"],
        ["created", "<TIME> (<AGO>)"],
        ["run at", "<TIME> (<AGO>)"],
        ["started", "<TIME> (<AGO>)"],
        ["finished", "<TIME> (<AGO>)"],
        ["took", "<DUR>"],
        ["error", error],
        ["Attempts"],
        ["#", "outcome", "started", "took", "cpu", "peak rss", "error"],
        ["<RULE>"],
        ["1", "failed", "<TIME>", "<DUR>", "<DUR>", "<RSS>", error],
        ["2", "failed", "<TIME>", "<DUR>", "<DUR>", "<RSS>", error],
    ]


def test_status_of_a_dead_job(
    workdir: Path, db: Path, render_tasks: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    job_id = dead_job(workdir, db)

    out = render(workdir, db, "status", str(job_id))
    assert normalise(out) == detail_snapshot(job_id, "ValueError: boom"), out
    assert "Traceback" not in out  # tracebacks are for `dlq show`


def test_dlq_show_of_a_dead_job_adds_every_tracebacks(
    workdir: Path, db: Path, render_tasks: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    job_id = dead_job(workdir, db)

    out = render(workdir, db, "dlq", "show", str(job_id))
    rows = normalise(out)
    head = detail_snapshot(job_id, "ValueError: boom")
    assert rows[: len(head)] == head, out

    tail = [" ".join(cells) for cells in rows[len(head) :]]
    assert tail[0] == "attempt 1 traceback:", out
    second = tail.index("attempt 2 traceback:")
    for attempt in (tail[1:second], tail[second + 1 :]):
        assert attempt[0] == "Traceback (most recent call last):", out
        assert attempt[-1] == "ValueError: boom", out
        assert any(
            re.fullmatch(r'File ".*render_tasks\.py", line \d+, in explode', line)
            for line in attempt
        ), out
        assert "raise ValueError(message)" in attempt, out


def test_piped_output_is_neither_cut_nor_padded(
    workdir: Path, db: Path, render_tasks: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    message = "the quick brown fox jumps over the lazy dog " * 6  # 263 characters
    job_id = dead_job(workdir, db, "--args", f'["{message}"]')
    error = f"ValueError: {message}".strip()

    out = render(workdir, db, "status", str(job_id))
    # the whole error, in the detail and in the attempts table, although COLUMNS says 80
    snapshot = detail_snapshot(job_id, error)
    snapshot[3] = ["args", f'["{message}"]']
    assert normalise(out) == snapshot, out
    listed = render(workdir, db, "list")
    assert error in listed and "…" not in listed, listed


def test_status_of_a_running_job_shows_its_progress(
    workdir: Path, db: Path, render_tasks: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    job_id = submit(workdir, db, "render_tasks:halfway", "--args", '["rp"]')
    wait_for(
        lambda: record(workdir, db, job_id)["progress_message"] == "halfway",
        timeout=20,
        every=0.05,
        what="the job's progress report",
    )
    try:
        rows = normalise(render(workdir, db, "status", str(job_id)))
        assert ["state", "running"] in rows
        assert ["progress", "[####------]", "40%", "halfway"] in rows
        assert ["attempts", "1 of 4"] in rows
        assert ["Attempts"] not in rows  # no attempt has ended yet
    finally:
        (workdir / "rp.go").touch()
    res = cli(workdir, db, "wait", str(job_id), "--timeout", "30s")
    assert res.code == 0, res.err
    rows = normalise(render(workdir, db, "status", str(job_id)))
    assert not any(cells[0] == "progress" for cells in rows)  # shown while running only
    assert ["1", "succeeded", "<TIME>", "<DUR>", "<DUR>", "<RSS>"] in rows
