"""GET /jobs (filters, cursor pages), cancel, retry, logs (and following them), status:
against a real server, with jobs written to the real database."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from jobrunner.models import JobInsert
from jobrunner.store import open_store
from tests.cli.support import submit
from tests.helpers import Daemon, env_for, wait_for
from tests.http.conftest import Server
from tests.store.test_conformance import make_dead

PROBLEM = "application/problem+json"


def insert(db: Path, *jobs: JobInsert) -> list[int]:
    store = open_store(str(db), create=False)
    try:
        return [r.id for r in store.job_insert_many(list(jobs), 1_700_000_000.0)]
    finally:
        store.close()


def job(**fields: object) -> JobInsert:
    fields.setdefault("task", "app.tasks:work")
    return JobInsert(**fields)  # type: ignore[arg-type]


def assert_problem(res: object, status: int, *fragments: str) -> None:
    assert res.status_code == status, res.text  # type: ignore[attr-defined]
    assert res.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    detail = res.json()["detail"]  # type: ignore[attr-defined]
    for fragment in fragments:
        assert fragment in detail, detail


def test_pages_walk_every_job_once_newest_first_while_jobs_are_added(
    serve: Callable[..., Server], db: Path
) -> None:
    server = serve()
    first = insert(db, *[job(queue="email" if i % 3 == 0 else "default") for i in range(23)])
    seen: list[int] = []
    with server.client() as http:
        page = http.get("/jobs", params={"limit": 5}).json()
        while True:
            seen += [j["id"] for j in page["jobs"]]
            insert(db, job(), job(queue="email"))  # newer: before the first page
            if page["next"] is None:
                break
            page = http.get("/jobs", params={"limit": 5, "after": page["next"]}).json()
        assert seen == sorted(first, reverse=True)

        # the filters, as `list`: several states, a queue, a task
        everything = http.get("/jobs", params={"limit": 1000}).json()
        assert everything["next"] is None and len(everything["jobs"]) == 23 + 2 * 5
        assert [j["id"] for j in everything["jobs"]] == sorted(
            (j["id"] for j in everything["jobs"]), reverse=True
        )
        default = http.get("/jobs").json()  # 50 a page unless ?limit=
        assert (len(default["jobs"]), default["next"]) == (33, None)
        cancelled = http.post(f"/jobs/{first[0]}/cancel").json()["id"]
        emails = http.get("/jobs", params={"queue": "email", "limit": 1000}).json()["jobs"]
        assert {j["queue"] for j in emails} == {"email"} and len(emails) == 8 + 5
        both = http.get("/jobs", params={"state": "cancelled,scheduled"}).json()["jobs"]
        assert [j["id"] for j in both] == [cancelled]
        insert(db, job(task="app.tasks:other"))
        other = http.get("/jobs", params={"task": "app.tasks:other"}).json()
        assert [j["task"] for j in other["jobs"]] == ["app.tasks:other"]
        assert other["next"] is None

        for params, fragment in (
            ({"limit": "0"}, "limit: expected a positive whole number"),
            ({"limit": "1001"}, "limit: at most 1000"),
            ({"limit": "ten"}, "limit"),
            ({"after": "abc"}, "after: expected the cursor"),
            ({"after": "-3"}, "after"),
            ({"state": "queud"}, "state: 'queud' is not a state: did you mean 'queued'?"),
            ({"state": "queued,"}, "state: '' is not a state"),
            ({"sate": "queued"}, "sate: not a filter"),
        ):
            assert_problem(http.get("/jobs", params=params), 400, fragment)


def test_cancel_retry_and_status_and_their_refusals(serve: Callable[..., Server], db: Path) -> None:
    server = serve()
    waiting, later = insert(db, job(), job(run_at=2e9))
    store = open_store(str(db), create=False)
    try:
        dead = make_dead(store, queue="nowhere").id
    finally:
        store.close()
    with server.client() as http:
        res = http.post(f"/jobs/{waiting}/cancel")
        assert res.status_code == 200, res.text
        assert (res.json()["id"], res.json()["state"]) == (waiting, "cancelled")
        assert http.post(f"/jobs/{later}/cancel").json()["state"] == "cancelled"
        assert_problem(
            http.post(f"/jobs/{waiting}/cancel"),
            409,
            f"job {waiting} already ended cancelled; nothing to cancel",
        )
        assert_problem(
            http.post(f"/jobs/{waiting}/retry"),
            409,
            f"job {waiting} is cancelled, not in the dead-letter queue",
        )

        status = http.get(f"/jobs/{dead}/status").json()
        assert status == {
            "id": dead,
            "state": "dead",
            "progress": None,
            "message": None,
            "error": "boom 1",
            "result": None,
        }
        res = http.post(f"/jobs/{dead}/retry")
        assert res.status_code == 200, res.text
        assert (res.json()["id"], res.json()["state"]) == (dead, "queued")
        status = http.get(f"/jobs/{dead}/status").json()
        assert status["state"] == "queued" and "result" not in status  # not done: no result

        for path in ("cancel", "retry"):
            assert_problem(http.post(f"/jobs/424242/{path}"), 404, "no job with id 424242")
            assert_problem(http.post(f"/jobs/x1/{path}"), 400, "job id")
        for path in ("status", "logs", "logs?follow=1"):
            assert_problem(http.get(f"/jobs/424242/{path}"), 404, "no job with id 424242")
        assert_problem(http.get(f"/jobs/{dead}/logs?follow=yes"), 400, "follow")
        assert http.get(f"/jobs/{dead}/logs").text == ""  # nothing written yet
        assert http.get(f"/jobs/{dead}/cancel").status_code == 405


def test_every_read_and_control_needs_the_token(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    env = env_for(workdir, db)
    env["JOBRUNNER_TOKEN"] = "read-token-value"
    server = serve(env=env)
    (job_id,) = insert(db, job())
    with server.client() as anonymous, server.client("wrong") as wrong:
        for http in (anonymous, wrong):
            for method, path in (
                ("GET", "/jobs"),
                ("GET", f"/jobs/{job_id}/status"),
                ("GET", f"/jobs/{job_id}/logs"),
                ("GET", f"/jobs/{job_id}/logs?follow=1"),
                ("POST", f"/jobs/{job_id}/cancel"),
                ("POST", f"/jobs/{job_id}/retry"),
            ):
                res = http.request(method, path)
                assert res.status_code == 401, (method, path)
    with server.client("read-token-value") as http:
        assert http.get(f"/jobs/{job_id}/status").json()["state"] == "queued"  # not cancelled
        assert http.post(f"/jobs/{job_id}/cancel").status_code == 200


CHATTY_PY = """\
import os
import time


def talk(gate):
    print("first line", flush=True)
    while not os.path.exists(gate):  # the test opens the gate once the stream has begun
        time.sleep(0.01)
    print("second line", flush=True)
    return "done"
"""


def test_logs_follow_streams_a_running_jobs_output_and_ends_when_it_ends(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    (workdir / "chatty.py").write_text(CHATTY_PY)
    gate = workdir / "gate"
    server = serve()
    daemon = Daemon(workdir, db)
    try:
        job_id = submit(workdir, db, "chatty:talk", "--args", json.dumps([str(gate)]))
        with server.client() as http:
            # a client that goes away while the job runs: the server carries on
            with http.stream("GET", f"/jobs/{job_id}/logs", params={"follow": "1"}) as early:
                assert early.headers["content-type"].startswith("text/plain")
                assert next(early.iter_lines()) == "first line"
            with http.stream("GET", f"/jobs/{job_id}/logs", params={"follow": "1"}) as res:
                assert res.status_code == 200
                lines = res.iter_lines()
                assert next(lines) == "first line"
                assert http.get(f"/jobs/{job_id}/status").json()["state"] == "running"
                gate.touch()
                assert list(lines) == ["second line"]  # and the stream ended
            status = http.get(f"/jobs/{job_id}/status").json()
            assert (status["state"], status["result"]) == ("succeeded", "done")
            plain = http.get(f"/jobs/{job_id}/logs")
            assert plain.text == "first line\nsecond line\n"
            # once ended, following gives what there is and ends at once
            assert http.get(f"/jobs/{job_id}/logs?follow=1").text == plain.text
            assert http.get("/readyz").json() == {"ok": True, "daemons": 1}

            # cancelling a running job answers at once: the daemon kills it after
            stuck = submit(workdir, db, "chatty:talk", "--args", json.dumps([str(gate) + "x"]))
            wait_for(lambda: http.get(f"/jobs/{stuck}/logs").text, what="the job running")
            # a follower whose client went away stops, though the job writes nothing more
            threads = len(os.listdir(f"/proc/{server.proc.pid}/task"))
            with http.stream("GET", f"/jobs/{stuck}/logs", params={"follow": "1"}) as gone:
                assert next(gone.iter_lines()) == "first line"
                assert len(os.listdir(f"/proc/{server.proc.pid}/task")) > threads
            wait_for(
                lambda: len(os.listdir(f"/proc/{server.proc.pid}/task")) <= threads,
                what="the follower's thread ended",
            )
            res = http.post(f"/jobs/{stuck}/cancel")
            assert res.status_code == 200, res.text
            # the record read just after the request: still running, asked to stop, or
            # already cancelled when the daemon (woken by the request) was that quick
            assert (res.json()["state"], res.json()["cancel_requested"]) in (
                ("running", True),
                ("cancelled", False),
            )
            wait_for(
                lambda: http.get(f"/jobs/{stuck}/status").json()["state"] == "cancelled",
                what="the job killed",
            )
    finally:
        daemon.stop()
    assert "Traceback" not in server.log(), server.log()
