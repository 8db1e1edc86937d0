"""status, list, wait, cancel, logs, prune and dlq against a database no daemon serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import (
    ISO_UTC,
    RECORD_KEYS,
    STATES,
    TIME_KEYS,
    assert_one_line_error,
    backdate,
    is_url,
    log_path,
    record,
    records,
    submit,
)
from tests.helpers import cli

pytestmark = pytest.mark.usefixtures("tasks")


MIX = (
    '{"task": "tasks:ok"}\n'
    '{"task": "tasks:ok", "args": [2]}\n'
    '{"task": "tasks:ok", "queue": "mail"}\n'
    '{"task": "tasks:ok", "delay": "1h"}\n'
    '{"task": "tasks:quiet"}\n'
)


@pytest.fixture
def mix(workdir: Path, db: Path) -> dict[str, int]:
    """Two queued jobs in `default`, one in `mail`, one scheduled, one cancelled."""
    res = cli(workdir, db, "submit", "--file", "-", input=MIX)
    assert res.code == 0, res.err
    ids = dict(zip(["a", "b", "mail", "later", "gone"], map(int, res.out.split()), strict=True))
    res = cli(workdir, db, "cancel", str(ids["gone"]))
    assert res.code == 0, res.err
    return ids


# -- status -----------------------------------------------------------------------------


def test_status_overview_says_no_daemon_is_running(
    workdir: Path, db: Path, mix: dict[str, int]
) -> None:
    res = cli(workdir, db, "status")
    assert res.code == 0, res.err
    assert "No daemon is running" in res.out
    assert "default" in res.out and "mail" in res.out
    assert "Traceback" not in res.err


def test_status_json_overview(workdir: Path, db: Path, mix: dict[str, int]) -> None:
    res = cli(workdir, db, "status", "--json")
    assert res.code == 0, res.err
    data = res.json()
    assert {"counts", "queues", "daemons", "recent_failures"} <= set(data)
    assert data["counts"] == {
        "blocked": 0,
        "scheduled": 1,
        "queued": 3,
        "running": 0,
        "retrying": 0,
        "succeeded": 0,
        "dead": 0,
        "cancelled": 1,
    }
    assert set(data["counts"]) == STATES
    assert data["queues"]["mail"] == {"queued": 1}
    assert data["queues"]["default"]["queued"] == 2
    assert data["daemons"] == []
    assert data["recent_failures"] == []


def test_status_json_on_an_empty_database(workdir: Path, db: Path) -> None:
    submit(workdir, db, "tasks:ok")
    cli(workdir, db, "cancel", "1")
    assert cli(workdir, db, "prune", "--older-than", "0s", "--yes").code == 0
    data = cli(workdir, db, "status", "--json").json()
    assert data["counts"] == dict.fromkeys(STATES, 0)
    assert data["queues"] == {}


def test_status_of_one_job_json(workdir: Path, db: Path, mix: dict[str, int]) -> None:
    rec = record(workdir, db, mix["later"])
    assert set(rec) >= RECORD_KEYS
    assert rec["id"] == mix["later"]
    assert rec["state"] == "scheduled"
    assert rec["task"] == "tasks:ok" and rec["command"] is None
    assert (rec["args"], rec["kwargs"], rec["queue"], rec["priority"]) == ([], {}, "default", 0)
    assert rec["result"] is None and rec["error"] is None
    assert rec["started_at"] is None and rec["finished_at"] is None
    assert rec["schedule"] is None and rec["scheduled_for"] is None
    assert rec["attempt_history"] == [] and rec["attempts"] == 0  # no attempt yet
    for key in ("created_at", "run_at"):
        assert ISO_UTC.match(rec[key]), rec[key]
    cancelled = record(workdir, db, mix["gone"])
    assert cancelled["state"] == "cancelled"
    assert ISO_UTC.match(cancelled["finished_at"])
    for key in TIME_KEYS:
        assert cancelled[key] is None or ISO_UTC.match(cancelled[key])


def test_status_of_one_job_human(workdir: Path, db: Path, mix: dict[str, int]) -> None:
    res = cli(workdir, db, "status", str(mix["b"]))
    assert res.code == 0, res.err
    assert "tasks:ok" in res.out and "queued" in res.out and "[2]" in res.out


@pytest.mark.parametrize("args", [["status", "99"], ["status", "99", "--json"]])
def test_status_of_an_unknown_id(workdir: Path, db: Path, args: list[str]) -> None:
    submit(workdir, db, "tasks:ok")
    assert_one_line_error(cli(workdir, db, *args), "99")


@pytest.mark.parametrize("bad", ["abc", "1.5", "-1", "0"])
def test_status_of_a_non_numeric_id(workdir: Path, db: Path, bad: str) -> None:
    submit(workdir, db, "tasks:ok")
    assert_one_line_error(cli(workdir, db, "status", bad), "JOB_ID")


# -- list -------------------------------------------------------------------------------


def test_list_json_is_newest_first(workdir: Path, db: Path, mix: dict[str, int]) -> None:
    jobs = records(workdir, db)
    assert [j["id"] for j in jobs] == sorted(mix.values(), reverse=True)
    for job in jobs:
        assert set(job) >= RECORD_KEYS
        assert isinstance(job["attempts"], int) and job["attempts"] == 0
        assert job["max_attempts"] == 4


def test_list_filters(workdir: Path, db: Path, mix: dict[str, int]) -> None:
    assert [j["id"] for j in records(workdir, db, "--state", "scheduled")] == [mix["later"]]
    assert [j["id"] for j in records(workdir, db, "--state", "cancelled")] == [mix["gone"]]
    assert [j["id"] for j in records(workdir, db, "--queue", "mail")] == [mix["mail"]]
    assert [j["id"] for j in records(workdir, db, "--state", "queued", "--queue", "default")] == [
        mix["b"],
        mix["a"],
    ]
    assert records(workdir, db, "--state", "dead") == []
    assert records(workdir, db, "--queue", "nope") == []
    res = cli(workdir, db, "list", "--json", "--limit", "2")
    assert [j["id"] for j in res.json()] == [mix["gone"], mix["later"]]


def test_list_table(workdir: Path, db: Path, mix: dict[str, int]) -> None:
    res = cli(workdir, db, "list", "--limit", "3")
    assert res.code == 0, res.err
    lines = [ln for ln in res.out.splitlines() if ln.strip()[:1].isdigit()]
    assert [int(ln.split()[0]) for ln in lines] == [mix["gone"], mix["later"], mix["mail"]]
    assert "scheduled" in res.out and "cancelled" in res.out and "tasks:ok" in res.out


# -- wait -------------------------------------------------------------------------------


def test_wait_times_out_with_124(workdir: Path, db: Path) -> None:
    job_id = submit(workdir, db, "tasks:ok")
    res = cli(workdir, db, "wait", str(job_id), "--timeout", "300ms")
    assert res.code == 124
    assert res.out == ""
    assert "still queued" in res.err and "Traceback" not in res.err


def test_wait_on_a_cancelled_job_exits_1(workdir: Path, db: Path, mix: dict[str, int]) -> None:
    res = cli(workdir, db, "wait", str(mix["gone"]), "--timeout", "5s")
    assert res.code == 1
    assert res.out == ""
    assert "cancelled" in res.err


def test_wait_on_an_unknown_id(workdir: Path, db: Path) -> None:
    submit(workdir, db, "tasks:ok")
    assert_one_line_error(cli(workdir, db, "wait", "42", "--timeout", "1s"), "42")


# -- cancel -----------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [[], ["--delay", "1h"]], ids=["queued", "scheduled"])
def test_cancel_a_waiting_job(workdir: Path, db: Path, delay: list[str]) -> None:
    job_id = submit(workdir, db, "tasks:ok", *delay)
    res = cli(workdir, db, "cancel", str(job_id))
    assert res.code == 0, res.err
    assert res.out == f"job {job_id} cancelled\n"
    rec = record(workdir, db, job_id)
    assert rec["state"] == "cancelled"
    assert ISO_UTC.match(rec["finished_at"])


def test_cancel_an_ended_job_exits_1(workdir: Path, db: Path, mix: dict[str, int]) -> None:
    before = record(workdir, db, mix["gone"])
    res = cli(workdir, db, "cancel", str(mix["gone"]))
    assert_one_line_error(res, str(mix["gone"]), "already ended cancelled", code=1)
    assert record(workdir, db, mix["gone"]) == before


def test_cancel_an_unknown_id(workdir: Path, db: Path) -> None:
    submit(workdir, db, "tasks:ok")
    assert_one_line_error(cli(workdir, db, "cancel", "77"), "77")


# -- logs -------------------------------------------------------------------------------


def test_logs_of_a_job_that_never_ran(workdir: Path, db: Path) -> None:
    job_id = submit(workdir, db, "tasks:ok")
    res = cli(workdir, db, "logs", str(job_id))
    assert (res.code, res.out, res.err) == (0, "", "")


def test_logs_of_an_unknown_id(workdir: Path, db: Path) -> None:
    submit(workdir, db, "tasks:ok")
    assert_one_line_error(cli(workdir, db, "logs", "5"), "5")


# -- prune ------------------------------------------------------------------------------


def test_prune_removes_only_ended_jobs_older_than_the_bound(workdir: Path, db: Path) -> None:
    old_done = submit(workdir, db, "tasks:ok")
    new_done = submit(workdir, db, "tasks:ok")
    old_queued = submit(workdir, db, "tasks:ok")
    old_scheduled = submit(workdir, db, "tasks:ok", "--delay", "1s")
    for job_id in (old_done, new_done):
        assert cli(workdir, db, "cancel", str(job_id)).code == 0
    for job_id in (old_done, old_queued, old_scheduled):
        backdate(db, job_id, 7200)
    # a log file as a daemon leaves it: removed with its job (PostgreSQL keeps output in
    # the database, deleted in the job's transaction)
    files = not is_url(db)
    if files:
        log_path(db, old_done).parent.mkdir(exist_ok=True)
        log_path(db, old_done).write_text("output\n")
        log_path(db, new_done).write_text("output\n")

    res = cli(workdir, db, "prune", "--older-than", "1h", "--yes")
    assert res.code == 0, res.err
    assert res.out == "pruned 1 job(s)\n"
    remaining = {j["id"]: j["state"] for j in records(workdir, db)}
    assert remaining == {new_done: "cancelled", old_queued: "queued", old_scheduled: "scheduled"}
    assert not files or not log_path(db, old_done).exists()
    assert not files or log_path(db, new_done).exists()
    assert cli(workdir, db, "status", str(old_done)).code == 2

    res = cli(workdir, db, "prune", "--older-than", "0s", "--yes")
    assert res.out == "pruned 1 job(s)\n"
    assert {j["id"] for j in records(workdir, db)} == {old_queued, old_scheduled}
    assert not files or not log_path(db, new_done).exists()


# -- dlq without dead jobs --------------------------------------------------------------


def test_dlq_list_empty(workdir: Path, db: Path, mix: dict[str, int]) -> None:
    res = cli(workdir, db, "dlq", "list")
    assert res.code == 0, res.err
    assert "empty" in res.out
    res = cli(workdir, db, "dlq", "list", "--json")
    assert res.code == 0 and res.json() == []


@pytest.mark.parametrize("action", ["show", "retry"])
def test_dlq_refuses_a_job_that_is_not_dead(
    workdir: Path, db: Path, mix: dict[str, int], action: str
) -> None:
    res = cli(workdir, db, "dlq", action, str(mix["a"]))
    assert_one_line_error(res, str(mix["a"]), "queued", "dead-letter")
    assert record(workdir, db, mix["a"])["state"] == "queued"


@pytest.mark.parametrize("action", ["show", "retry"])
def test_dlq_unknown_id(workdir: Path, db: Path, mix: dict[str, int], action: str) -> None:
    assert_one_line_error(cli(workdir, db, "dlq", action, "999"), "999")


def test_dlq_retry_all_and_purge_with_nothing_dead(
    workdir: Path, db: Path, mix: dict[str, int]
) -> None:
    res = cli(workdir, db, "dlq", "retry", "--all")
    assert (res.code, res.out) == (0, "")
    res = cli(workdir, db, "dlq", "purge", "--yes")
    assert (res.code, res.out) == (0, "purged 0 dead job(s)\n")
    assert len(records(workdir, db)) == len(mix)
