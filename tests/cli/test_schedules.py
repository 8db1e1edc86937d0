"""`jobrunner schedules list|run|pause|resume`, `jobrunner config check`, and a daemon
that refuses a bad config: real CLI subprocesses in a temporary working directory,
which reads ./jobrunner.toml on its own."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.cli.support import ISO_UTC, assert_one_line_error, db_files, job_count, parse_iso, record
from tests.helpers import PYTHON, cli, env_for

CONFIG = """\
[[schedules]]
name = "nightly"
cron = "30 2 * * *"
timezone = "Europe/Berlin"
task = "tasks:ok"
args = [7]
misfire = "all"

[[schedules]]
name = "tick"
every = "10s"
command = ["true"]
overlap = "allow"
"""


@pytest.fixture
def config(workdir: Path) -> Path:
    path = workdir / "jobrunner.toml"
    path.write_text(CONFIG)
    return path


def schedules(workdir: Path, db: Path) -> dict[str, dict[str, Any]]:
    res = cli(workdir, db, "schedules", "list", "--json")
    assert res.code == 0, res.err
    rows = res.json()
    assert isinstance(rows, list)
    return {row["name"]: row for row in rows}


# -- list -----------------------------------------------------------------------------------------


def test_list_json_shape(workdir: Path, db: Path, config: Path) -> None:
    before = time.time()
    rows = schedules(workdir, db)
    assert list(rows) == ["nightly", "tick"]  # in config order
    nightly = rows["nightly"]
    assert {
        "name",
        "expression",
        "timezone",
        "next",
        "last_fire",
        "last_job",
        "paused",
        "misfire",
        "overlap",
    } <= set(nightly)
    assert (nightly["expression"], nightly["timezone"]) == ("30 2 * * *", "Europe/Berlin")
    assert (nightly["task"], nightly["command"]) == ("tasks:ok", None)
    assert (nightly["paused"], nightly["last_fire"], nightly["last_job"]) == (False, None, None)
    assert (nightly["misfire"], nightly["overlap"]) == ("all", "skip")

    # the next three fires, in local time (with the zone's offset) and in UTC
    assert len(nightly["next"]) == 3
    berlin = ZoneInfo("Europe/Berlin")
    previous = before
    for fire in nightly["next"]:
        assert set(fire) == {"local", "utc"}
        at = parse_iso(fire["utc"])
        local = dt.datetime.fromisoformat(fire["local"])
        assert local.utcoffset() is not None and local == at  # the same instant
        assert local.utcoffset() == at.astimezone(berlin).utcoffset()
        assert local.strftime("%H:%M:%S") in ("02:30:00", "03:00:00")  # 03:00 on a DST night
        assert at.timestamp() > previous
        previous = at.timestamp()
    days = [dt.datetime.fromisoformat(f["local"]).date() for f in nightly["next"]]
    assert [(b - a).days for a, b in zip(days, days[1:], strict=False)] == [1, 1]

    tick = rows["tick"]
    assert (tick["expression"], tick["timezone"], tick["command"]) == ("every 10s", "UTC", ["true"])
    times = [parse_iso(f["utc"]).timestamp() for f in tick["next"]]
    assert all(t % 10 == 0 for t in times)
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [10, 10]
    assert before < times[0] <= time.time() + 10
    assert all(ISO_UTC.match(f["utc"]) and f["local"].endswith("+00:00") for f in tick["next"])


def test_list_as_a_table(workdir: Path, db: Path, config: Path) -> None:
    res = cli(workdir, db, "schedules", "list")
    assert res.code == 0, res.err
    for text in ("nightly", "30 2 * * *", "Europe/Berlin", "tick", "every 10s", "02:30:00+0"):
        assert text in res.out


def test_list_without_schedules(workdir: Path, db: Path) -> None:
    assert schedules(workdir, db) == {}
    res = cli(workdir, db, "schedules", "list")
    assert res.code == 0, res.err
    assert "No [[schedules]]" in res.out


# -- run NAME -------------------------------------------------------------------------------------


def test_run_makes_a_job_now_marked_with_the_schedule(
    workdir: Path, db: Path, config: Path
) -> None:
    before = time.time()
    res = cli(workdir, db, "schedules", "run", "nightly")
    assert res.code == 0, res.err
    job_id = int(res.out)
    rec = record(workdir, db, job_id)
    assert rec["schedule"] == "nightly"
    assert (rec["task"], rec["args"], rec["state"]) == ("tasks:ok", [7], "queued")
    fired = parse_iso(rec["scheduled_for"]).timestamp()
    assert before - 1 <= fired <= time.time() + 1  # now, outside the timetable
    assert rec["run_at"] == rec["scheduled_for"]
    # each run is a job of its own
    again = cli(workdir, db, "schedules", "run", "nightly")
    assert again.code == 0 and int(again.out) != job_id
    assert job_count(db) == 2


def test_list_shows_the_manual_run_as_the_last_job(workdir: Path, db: Path, config: Path) -> None:
    # the schedule known to the database (as once a daemon has seen it)
    assert cli(workdir, db, "schedules", "pause", "tick").code == 0
    assert cli(workdir, db, "schedules", "resume", "tick").code == 0
    job_id = int(cli(workdir, db, "schedules", "run", "tick").out)
    last = schedules(workdir, db)["tick"]["last_job"]
    assert last is not None
    assert (last["id"], last["state"], last["manual"]) == (job_id, "queued", True)
    assert ISO_UTC.match(last["scheduled_for"])
    res = cli(workdir, db, "schedules", "list")
    assert f"{job_id} queued (manual)" in res.out


def test_list_shows_a_manual_run_of_a_schedule_no_daemon_has_seen(
    workdir: Path, db: Path, config: Path
) -> None:
    """No daemon has seen `nightly` (it has no row of its own in the database): its manual
    run is its last job all the same, in --json and in the table."""
    job_id = int(cli(workdir, db, "schedules", "run", "nightly").out)
    rows = schedules(workdir, db)
    last = rows["nightly"]["last_job"]
    assert last is not None
    assert (last["id"], last["state"], last["manual"]) == (job_id, "queued", True)
    assert (rows["nightly"]["last_fire"], rows["nightly"]["paused"]) == (None, False)
    assert rows["tick"]["last_job"] is None  # another schedule's job is not its own
    res = cli(workdir, db, "schedules", "list")
    assert res.code == 0, res.err
    assert f"{job_id} queued (manual)" in res.out


# -- pause / resume -------------------------------------------------------------------------------


def test_pause_and_resume_are_kept_and_shown(workdir: Path, db: Path, config: Path) -> None:
    res = cli(workdir, db, "schedules", "pause", "nightly")
    assert res.code == 0, res.err
    assert res.out == "schedule nightly paused\n"
    rows = schedules(workdir, db)
    assert rows["nightly"]["paused"] is True
    assert rows["tick"]["paused"] is False
    assert "[paused]" in cli(workdir, db, "schedules", "list").out
    # pausing twice is harmless
    assert cli(workdir, db, "schedules", "pause", "nightly").code == 0
    assert schedules(workdir, db)["nightly"]["paused"] is True

    res = cli(workdir, db, "schedules", "resume", "nightly")
    assert res.code == 0, res.err
    assert res.out == "schedule nightly resumed\n"
    assert schedules(workdir, db)["nightly"]["paused"] is False
    assert "[paused]" not in cli(workdir, db, "schedules", "list").out


@pytest.mark.parametrize("action", ["run", "pause", "resume"])
def test_an_unknown_schedule_is_a_one_line_error(
    workdir: Path, db: Path, config: Path, action: str
) -> None:
    res = cli(workdir, db, "schedules", action, "nigthly")
    assert_one_line_error(res, "'nigthly'", "nightly, tick")
    assert db_files(db) == []  # nothing written


def test_an_unknown_schedule_without_a_config(workdir: Path, db: Path) -> None:
    assert_one_line_error(cli(workdir, db, "schedules", "run", "x"), "'x'", "none configured")


def test_schedules_needs_an_action(workdir: Path, db: Path, config: Path) -> None:
    assert cli(workdir, db, "schedules").code == 2
    assert cli(workdir, db, "schedules", "run").code == 2


# -- config check ---------------------------------------------------------------------------------


def test_config_check_ok(workdir: Path, db: Path, config: Path) -> None:
    res = cli(workdir, db, "config", "check")
    assert res.code == 0, res.err
    assert "jobrunner.toml" in res.out and "ok" in res.out
    res = cli(workdir, db, "config", "check", "--json")
    assert res.code == 0, res.err
    parsed = res.json()
    assert parsed["path"] == "jobrunner.toml"
    assert set(parsed["schedules"]) == {"nightly", "tick"}
    nightly = parsed["schedules"]["nightly"]
    assert (nightly["cron"], nightly["timezone"], nightly["misfire"]) == (
        "30 2 * * *",
        "Europe/Berlin",
        "all",
    )
    assert parsed["schedules"]["tick"]["every"] == 10.0


def test_config_check_with_an_explicit_path(workdir: Path, db: Path) -> None:
    other = workdir / "elsewhere.toml"
    other.write_text(CONFIG)
    res = cli(workdir, db, "--config", str(other), "config", "check", "--json")
    assert res.code == 0, res.err
    assert set(res.json()["schedules"]) == {"nightly", "tick"}
    env = env_for(workdir, db)
    env["JOBRUNNER_CONFIG"] = str(other)
    res = cli(workdir, db, "schedules", "list", "--json", env=env)
    assert res.code == 0, res.err
    assert [r["name"] for r in res.json()] == ["nightly", "tick"]


BAD_CONFIGS = {
    "bad-cron": (
        '[[schedules]]\nname = "a"\ncron = "61 * * * *"\ntask = "tasks:ok"\n',
        ["jobrunner.toml:3:", "schedules[0].cron", "61 * * * *"],
    ),
    "unknown-timezone": (
        '[[schedules]]\nname = "a"\ncron = "0 2 * * *"\ntimezone = "Mars/Olympus"\n'
        'task = "tasks:ok"\n',
        ["jobrunner.toml:4:", "schedules[0].timezone", "Mars/Olympus", "IANA"],
    ),
    "neither-task-nor-command": (
        '[[schedules]]\nname = "a"\nevery = "1m"\n',
        ["jobrunner.toml:1:", "schedules[0]", "'task' or 'command'"],
    ),
    "cron-and-every": (
        '[[schedules]]\nname = "a"\ncron = "* * * * *"\nevery = "1m"\ntask = "tasks:ok"\n',
        ["jobrunner.toml:1:", "'cron' or 'every'"],
    ),
    "duplicate-name": (
        '[[schedules]]\nname = "a"\nevery = "1m"\ntask = "tasks:ok"\n\n'
        '[[schedules]]\nname = "a"\nevery = "2m"\ntask = "tasks:ok"\n',
        ["jobrunner.toml:7:", "schedules[1].name", "duplicate"],
    ),
    "wrong-type": (
        '[[schedules]]\nname = "a"\nevery = "1m"\ntask = "tasks:ok"\nmax_catchup = "lots"\n',
        ["jobrunner.toml:5:", "schedules[0].max_catchup", "whole number"],
    ),
    "unknown-key": (
        '[[schedules]]\nname = "a"\nevery = "1m"\ntask = "tasks:ok"\noverlaps = "allow"\n',
        ["jobrunner.toml:5:", "schedules[0].overlaps", "did you mean 'overlap'?"],
    ),
    "unknown-task": (
        '[[schedules]]\nname = "a"\nevery = "1m"\ntask = "tsks"\n',
        ["jobrunner.toml:4:", "schedules[0].task", "'tsks'"],
    ),
    "invalid-toml": (
        '[[schedules]]\nname = "a"\nevery = 1m\n',
        ["jobrunner.toml:3:", "invalid TOML"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_config_check_refuses_a_bad_config(workdir: Path, db: Path, case: str) -> None:
    text, fragments = BAD_CONFIGS[case]
    (workdir / "jobrunner.toml").write_text(text)
    assert_one_line_error(cli(workdir, db, "config", "check"), *fragments)
    assert_one_line_error(cli(workdir, db, "schedules", "list", "--json"), *fragments)
    assert db_files(db) == []


def test_daemon_refuses_to_start_on_a_bad_config(workdir: Path, db: Path) -> None:
    (workdir / "jobrunner.toml").write_text(BAD_CONFIGS["bad-cron"][0])
    started = time.monotonic()
    res = cli(workdir, db, "daemon", "--workers", "1", timeout=20)
    assert time.monotonic() - started < 10
    assert_one_line_error(res, "jobrunner.toml:3:", "schedules[0].cron")


def test_daemon_refuses_a_schedule_of_an_unknown_task(workdir: Path, db: Path) -> None:
    """Found when the config is read; not a crash at the first fire."""
    (workdir / "jobrunner.toml").write_text(BAD_CONFIGS["unknown-task"][0])
    proc = subprocess.Popen(
        [PYTHON, "-m", "jobrunner", "daemon", "--workers", "1"],
        cwd=workdir,
        env=env_for(workdir, db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        raise AssertionError("the daemon started on a config with an unknown task") from None
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and "jobrunner.toml:4:" in err and "'tsks'" in err
    assert out == ""
