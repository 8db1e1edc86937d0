"""`jobrunner submit`: what it prints and what it stores."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.cli.support import assert_one_line_error, db_files, parse_iso, record, records, submit
from tests.helpers import cli, env_for

pytestmark = pytest.mark.usefixtures("tasks")


def test_prints_the_id_alone(workdir: Path, db: Path) -> None:
    first = cli(workdir, db, "submit", "tasks:ok")
    second = cli(workdir, db, "submit", "tasks:ok")
    assert (first.code, second.code) == (0, 0)
    assert first.out.strip().isdigit() and first.out == first.out.strip() + "\n"
    assert first.err == "" and second.err == ""
    assert int(second.out) == int(first.out) + 1
    rec = record(workdir, db, int(first.out))
    assert (rec["id"], rec["state"], rec["task"]) == (int(first.out), "queued", "tasks:ok")


def test_json_gives_id_and_created(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "submit", "tasks:ok", "--json")
    assert res.code == 0, res.err
    assert res.json() == {"id": 1, "created": True}


def test_same_key_returns_the_first_job_and_creates_nothing(workdir: Path, db: Path) -> None:
    first = cli(workdir, db, "submit", "tasks:ok", "--key", "order-7", "--json")
    again = cli(workdir, db, "submit", "tasks:ok", "--args", "[2]", "--key", "order-7")
    again_json = cli(workdir, db, "submit", "tasks:ok", "--key", "order-7", "--json")
    other = cli(workdir, db, "submit", "tasks:ok", "--key", "order-8")
    assert first.json() == {"id": 1, "created": True}
    assert again.code == 0 and again.out == "1\n"
    assert again.err == (  # other args: said, since they were not stored
        "jobrunner: warning: key 'order-7' already names job 1, submitted with other "
        "arguments; printed its id and wrote nothing\n"
    )
    assert again_json.json() == {"id": 1, "created": False}
    assert again_json.err == ""  # the same call again: what a key is for
    assert other.code == 0 and int(other.out) > 1
    jobs = records(workdir, db)
    assert [j["id"] for j in jobs] == [int(other.out), 1]
    assert jobs[1]["key"] == "order-7" and jobs[1]["args"] == []


def test_cmd_stores_the_argv_as_a_list(workdir: Path, db: Path) -> None:
    job_id = submit(workdir, db, "--cmd", "--", "echo", "hello world", "--flag", "$HOME")
    rec = record(workdir, db, job_id)
    assert rec["command"] == ["echo", "hello world", "--flag", "$HOME"]
    assert rec["task"] is None


def test_delay_makes_it_scheduled_in_the_future(workdir: Path, db: Path) -> None:
    before = dt.datetime.now(dt.UTC)
    rec = record(workdir, db, submit(workdir, db, "tasks:ok", "--delay", "1h"))
    assert rec["state"] == "scheduled"
    run_at = parse_iso(rec["run_at"])
    created = parse_iso(rec["created_at"])
    assert before + dt.timedelta(minutes=59) < run_at < before + dt.timedelta(minutes=61)
    assert 3590 < (run_at - created).total_seconds() < 3610


@pytest.mark.parametrize(
    "at", ["2099-01-02T03:04:05Z", "2099-01-02T05:04:05+02:00", "2099-01-02T03:04:05.000Z"]
)
def test_at_sets_run_at_in_utc(workdir: Path, db: Path, at: str) -> None:
    rec = record(workdir, db, submit(workdir, db, "tasks:ok", "--at", at))
    assert rec["state"] == "scheduled"
    assert rec["run_at"] == "2099-01-02T03:04:05.000Z"


def test_at_in_the_past_is_queued(workdir: Path, db: Path) -> None:
    rec = record(workdir, db, submit(workdir, db, "tasks:ok", "--at", "2001-01-01T00:00:00Z"))
    assert rec["state"] == "queued"


def test_options_are_stored(workdir: Path, db: Path) -> None:
    job_id = submit(
        workdir,
        db,
        "tasks:ok",
        "--no-check",  # ok() takes other args: what is stored is the point here
        "--args",
        '[1, "two", {"three": 3}]',
        "--kwargs",
        '{"x": [1, 2], "ü": null}',
        "--priority",
        "7",
        "--queue",
        "emails",
        "--retries",
        "2",
        "--timeout",
        "90s",
        "--backoff",
        "250ms",
    )
    rec = record(workdir, db, job_id)
    assert rec["args"] == [1, "two", {"three": 3}]
    assert rec["kwargs"] == {"x": [1, 2], "ü": None}
    assert rec["priority"] == 7
    assert rec["queue"] == "emails"
    assert rec["max_attempts"] == 3
    assert rec["timeout"] == 90.0
    assert rec["state"] == "queued"


@pytest.mark.parametrize("retries", [0, 1, 5])
def test_retries_n_gives_n_plus_one_attempts(workdir: Path, db: Path, retries: int) -> None:
    rec = record(workdir, db, submit(workdir, db, "tasks:ok", "--retries", str(retries)))
    assert rec["max_attempts"] == retries + 1


def test_negative_priority_is_allowed(workdir: Path, db: Path) -> None:
    rec = record(workdir, db, submit(workdir, db, "tasks:ok", "--priority", "-3"))
    assert rec["priority"] == -3


JOBS_JSONL = (
    '{"task": "tasks:ok", "args": [1]}\n'
    "\n"
    '{"command": ["echo", "hi"], "queue": "shell"}\n'
    '{"task": "tasks:ok", "kwargs": {"x": 3}, "priority": 5, "retries": 0, "key": "k"}\n'
)


def _check_file_jobs(workdir: Path, db: Path, out: str) -> None:
    assert out == "1\n2\n3\n"
    jobs = {j["id"]: j for j in records(workdir, db)}
    assert jobs[1]["task"] == "tasks:ok" and jobs[1]["args"] == [1]
    assert jobs[2]["command"] == ["echo", "hi"] and jobs[2]["queue"] == "shell"
    assert jobs[3]["kwargs"] == {"x": 3} and jobs[3]["priority"] == 5
    assert jobs[3]["max_attempts"] == 1 and jobs[3]["key"] == "k"


def test_file_prints_one_id_per_line_in_order(workdir: Path, db: Path) -> None:
    (workdir / "jobs.jsonl").write_text(JOBS_JSONL)
    res = cli(workdir, db, "submit", "--file", "jobs.jsonl")
    assert res.code == 0, res.err
    _check_file_jobs(workdir, db, res.out)


def test_file_from_stdin(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "submit", "--file", "-", input=JOBS_JSONL)
    assert res.code == 0, res.err
    _check_file_jobs(workdir, db, res.out)


def test_file_line_with_a_known_key_prints_the_existing_id(workdir: Path, db: Path) -> None:
    first = submit(workdir, db, "tasks:ok", "--key", "dup")
    res = cli(
        workdir,
        db,
        "submit",
        "--file",
        "-",
        input='{"task": "tasks:ok"}\n{"task": "tasks:ok", "key": "dup"}\n',
    )
    assert res.code == 0, res.err
    assert res.out == f"{first + 1}\n{first}\n"
    assert len(records(workdir, db)) == 2
    assert res.err == ""
    res = cli(
        workdir,
        db,
        "submit",
        "--file",
        "-",
        input='\n{"task": "tasks:ok", "args": [5], "key": "dup"}\n',
    )
    assert res.out == f"{first}\n"
    assert res.err.startswith(f"jobrunner: warning: <stdin>:2: key 'dup' already names job {first}")


CONFIG = """\
[tasks.thumb]
function = "tasks:ok"
queue = "images"
retries = 5
timeout = "2m"
priority = 4

[tasks.shell]
command = ["echo", "from config"]
queue = "shell"
retries = 0
"""


def test_named_task_from_jobrunner_toml(workdir: Path, db: Path) -> None:
    (workdir / "jobrunner.toml").write_text(CONFIG)
    rec = record(workdir, db, submit(workdir, db, "thumb", "--args", "[9]"))
    assert rec["task"] == "tasks:ok"
    assert rec["args"] == [9]
    assert (rec["queue"], rec["max_attempts"], rec["timeout"], rec["priority"]) == (
        "images",
        6,
        120.0,
        4,
    )
    cmd = record(workdir, db, submit(workdir, db, "shell"))
    assert cmd["command"] == ["echo", "from config"]
    assert (cmd["queue"], cmd["max_attempts"]) == ("shell", 1)


def test_flags_override_a_named_task(workdir: Path, db: Path) -> None:
    conf = workdir / "conf"
    conf.mkdir()
    (conf / "other.toml").write_text(CONFIG)
    job_id = submit_with_config(workdir, db, "conf/other.toml", "thumb", "--queue", "fast")
    rec = record(workdir, db, job_id)
    assert (rec["queue"], rec["max_attempts"], rec["timeout"]) == ("fast", 6, 120.0)
    job_id = submit_with_config(workdir, db, "conf/other.toml", "thumb", "--retries", "1")
    assert record(workdir, db, job_id)["max_attempts"] == 2


def submit_with_config(workdir: Path, db: Path, config: str, *args: str) -> int:
    res = cli(workdir, db, "--config", config, "submit", *args)
    assert res.code == 0, res.err
    return int(res.out)


def test_named_task_needs_the_config(workdir: Path, db: Path) -> None:
    """Without jobrunner.toml in the working directory, `thumb` is not a task."""
    res = cli(workdir, db, "submit", "thumb")
    assert res.code == 2
    assert db_files(db) == []


def test_no_check_lets_an_unknown_module_through(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "submit", "nosuch.mod:fn", "--no-check")
    assert res.code == 0, res.err
    assert record(workdir, db, int(res.out))["task"] == "nosuch.mod:fn"


def test_module_found_in_a_package_without_importing_it(workdir: Path, db: Path) -> None:
    pkg = workdir / "app"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise SystemExit('imported the package')\n")
    (pkg / "jobs.py").write_text("def run():\n    return 1\n")
    res = cli(workdir, db, "submit", "app.jobs:run")
    assert res.code == 0, res.err
    assert record(workdir, db, int(res.out))["task"] == "app.jobs:run"


def test_at_without_offset_is_local_time(workdir: Path, db: Path) -> None:
    env = env_for(workdir, db)
    env["TZ"] = "Asia/Tokyo"  # UTC+9, no daylight saving
    res = cli(workdir, db, "submit", "tasks:ok", "--at", "2099-01-02T12:04:05", env=env)
    assert res.code == 0, res.err
    assert record(workdir, db, int(res.out))["run_at"] == "2099-01-02T03:04:05.000Z"


def test_named_task_from_jobrunner_config_env(workdir: Path, db: Path) -> None:
    (workdir / "elsewhere.toml").write_text(CONFIG)
    env = env_for(workdir, db)
    env["JOBRUNNER_CONFIG"] = str(workdir / "elsewhere.toml")
    res = cli(workdir, db, "submit", "thumb", env=env)
    assert res.code == 0, res.err
    assert record(workdir, db, int(res.out))["queue"] == "images"


def test_a_function_the_module_does_not_define_is_refused(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "submit", "tasks:okk")
    assert_one_line_error(
        res, "task tasks:okk: module 'tasks' has no attribute 'okk'", "--no-check"
    )
    assert db_files(db) == []


def test_a_call_that_does_not_fit_the_function_is_refused(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "submit", "tasks:ok", "--args", "[1, 2]")
    assert_one_line_error(res, "ok() takes 1 positional argument but 2 were given", "--no-check")
    res = cli(workdir, db, "submit", "tasks:say", "--kwargs", '{"txt": "hi"}')
    assert_one_line_error(res, "say() got an unexpected keyword argument 'txt'")
    (workdir / "jobs.jsonl").write_text(
        '{"task": "tasks:ok"}\n{"task": "tasks:fail", "args": [1]}\n'
    )
    res = cli(workdir, db, "submit", "--file", "jobs.jsonl")
    assert_one_line_error(res, "jobs.jsonl:2: task tasks:fail: fail() takes 0 positional")
    assert db_files(db) == []
