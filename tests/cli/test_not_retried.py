"""A task that cannot run as named, or a call that does not fit it, fails once, for good,
saying why; `dlq retry --all` leaves it, `dlq retry ID` (or Client.retry) retries it."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner import Client
from tests.cli.support import records, submit
from tests.helpers import Daemon, cli, wait_for

pytestmark = pytest.mark.usefixtures("tasks")

BROKEN_PY = "def run(:\n"
INSIDE_PY = "def inner(x):\n    return len(x) + 'a'  # a TypeError inside is the job's own\n"


def test_permanent_failures_are_not_retried(workdir: Path, db: Path, daemons: list[Daemon]) -> None:
    (workdir / "broken_mod.py").write_text(BROKEN_PY)
    (workdir / "inside.py").write_text(INSIDE_PY)
    # Retries allowed, with an hour's backoff: a job that is retried stays `retrying`.
    options = ("--no-check", "--retries", "3", "--backoff", "1h")
    expected = {
        submit(workdir, db, "tasks:okk", *options): "module 'tasks' has no attribute 'okk'",
        submit(workdir, db, "nosuch_mod:run", *options): (
            "cannot import nosuch_mod: ModuleNotFoundError: No module named 'nosuch_mod'"
        ),
        submit(workdir, db, "broken_mod:run", *options): (
            "cannot import broken_mod: SyntaxError: "
        ),
        submit(workdir, db, "tasks:ok", "--args", "[1, 2]", *options): (
            "ok() takes from 0 to 1 positional arguments but 2 were given"
        ),
    }
    retried = submit(workdir, db, "inside:inner", "--args", "[[1]]", *options)
    daemons.append(Daemon(workdir, db, "--workers", "1"))

    def ended() -> dict[int, dict[str, object]] | None:
        jobs = {j["id"]: j for j in records(workdir, db)}
        done = all(jobs[i]["state"] in ("dead", "retrying") for i in [*expected, retried])
        return jobs if done else None

    jobs = wait_for(ended, what="every job's first attempt to end")
    for job_id, why in expected.items():
        job = jobs[job_id]
        assert (job["state"], job["attempts"]) == ("dead", 1), job
        assert job["error"].startswith("not retried: " + why), job["error"]
    assert jobs[retried]["state"] == "retrying"
    assert jobs[retried]["error"].startswith("TypeError: unsupported operand")

    shown = cli(workdir, db, "dlq", "show", str(min(expected)), "--json").json()
    assert "NotRetryable" not in str(shown)  # no internal class name, in error or traceback

    res = cli(workdir, db, "dlq", "retry", "--all")
    assert (res.code, res.out) == (0, "")
    assert res.err.startswith("jobrunner: 4 dead job(s) left: they failed for good")
    with Client(str(db)) as client:
        typo = min(expected)
        assert client.retry(typo) == [typo]  # named: retried (the code may have been fixed)

        def dead_again() -> bool:
            return client.get(typo).state == "dead" and len(client.store.attempt_list(typo)) == 2

        wait_for(dead_again, what="the retried job to fail again")
        assert (client.get(typo).error or "").startswith("not retried: ")
