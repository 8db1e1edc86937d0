"""POST /jobs: one job or a batch, idempotency keys, the refusals (each writing nothing),
and the group commit under load: every acknowledged job is in the database once, even
when the server is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobrunner.store import open_store
from tests.helpers import wait_for
from tests.http.conftest import Server

PROBLEM = "application/problem+json"
CONFIG = """\
imports = ["tasks"]

[tasks.hello]
command = ["echo", "hello"]

[http]
{http}
"""


def write_app(workdir: Path, http: str = "") -> None:
    (workdir / "tasks.py").write_text("def add(a, b):\n    return a + b\n")
    (workdir / "other.py").write_text("def run():\n    pass\n")
    (workdir / "jobrunner.toml").write_text(CONFIG.format(http=http))


def stored_ids(db: Path) -> list[int]:
    store = open_store(str(db), create=False)
    try:
        return sorted(job.id for job in store.job_list(limit=1_000_000))
    finally:
        store.close()


def refused(res: httpx.Response, status: int, *fragments: str) -> None:
    assert res.status_code == status, res.text
    assert res.headers["content-type"] == PROBLEM
    detail = res.json()["detail"]
    assert "\n" not in detail
    for fragment in fragments:
        assert fragment in detail, detail


def test_one_job_is_202_and_a_key_used_again_is_200_with_the_first_job(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    write_app(workdir)
    server = serve()
    with server.client() as http:
        res = http.post("/jobs", json={"task": "tasks:add", "args": [1, 2], "delay": "1h"})
        assert res.status_code == 202, res.text
        record = res.json()
        assert res.headers["location"] == f"/jobs/{record['id']}"
        assert res.headers["retry-after"] == "1"
        assert (record["task"], record["args"], record["state"]) == (
            "tasks:add",
            [1, 2],
            "scheduled",
        )
        first = http.post("/jobs", json={"task": "hello", "key": "k1"})
        again = http.post("/jobs", json={"task": "hello", "key": "k1", "priority": 5})
        header = http.post("/jobs", json={"task": "hello"}, headers={"Idempotency-Key": "k1"})
        assert first.status_code == 202
        assert (again.status_code, header.status_code) == (200, 200)
        assert again.json() == header.json() == first.json()
        assert header.headers["location"] == f"/jobs/{first.json()['id']}"
        clash = http.post(
            "/jobs", json={"task": "hello", "key": "a"}, headers={"idempotency-key": "b"}
        )
        refused(clash, 400, "Idempotency-Key")
    assert stored_ids(db) == [record["id"], first.json()["id"]]


def test_a_batch_is_one_transaction_and_one_bad_job_writes_nothing(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    write_app(workdir)
    server = serve()
    with server.client() as http:
        batch = [{"task": "hello"}, {"task": "tasks:add", "args": [1, 2], "key": "b1"}]
        res = http.post("/jobs", json=batch)
        assert res.status_code == 202, res.text
        records = res.json()
        assert [r["task"] for r in records] == [None, "tasks:add"]
        assert [r["command"] for r in records] == [["echo", "hello"], None]
        again = http.post("/jobs", json=[{"task": "hello", "key": "b1"}, {"task": "hello"}])
        assert again.status_code == 202
        assert again.json()[0]["id"] == records[1]["id"]  # the key's first job
        assert http.post("/jobs", json=[]).json() == []
        written = stored_ids(db)
        bad = [{"task": "hello"}, {"task": "hello"}, {"task": "hello", "delay": "soon"}]
        refused(http.post("/jobs", json=bad), 400, "body[2]: delay")
        refused(
            http.post("/jobs", json=[{"task": "hello"}, 7]), 400, "body[1]: expected a JSON object"
        )
        refused(http.post("/jobs", json=[{"task": "tasks:nope"}]), 400, "body[0]: task tasks:nope")
        refused(http.post("/jobs", json={"task": "hello", "colour": 1}), 400, "body: unknown key")
        refused(http.post("/jobs", json=3), 400, "body: expected a JSON object")
        refused(http.post("/jobs", json={"task": "hello", "callback": "http://x"}), 400, "callback")
        refused(
            http.post("/jobs", json=[{"task": "hello"}], headers={"Idempotency-Key": "x"}),
            400,
            "Idempotency-Key",
        )
        refused(http.post("/jobs", json=[{"task": "hello"}] * 10_001), 413, "at most 10000")
        assert stored_ids(db) == written


def test_the_records_answered_are_the_records_stored(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    """POST /jobs answers with records built from what it inserted, not read back: each
    must be the record GET /jobs/ID then gives, whatever options the job had."""
    write_app(workdir)
    server = serve()
    batch: list[dict[str, Any]] = [
        {"task": "hello"},
        {"task": "tasks:add", "args": [1, 2], "queue": "q", "priority": -3, "retries": 0},
        {"task": "tasks:add", "kwargs": {"a": 1.5, "b": "é"}, "delay": "1h", "key": "rk"},
        {"task": "hello", "at": "2099-01-01T00:00:00Z", "timeout": "5m", "backoff": "2s"},
        {"task": "hello", "memory_limit": "64MB", "cpu_limit": "10s", "nice": 5},
        {"task": "tasks:add", "args": [[1, {"x": None}], True]},
    ]
    with server.client() as http:
        answered = http.post("/jobs", json=batch).json()
        answered.append(http.post("/jobs", json={"task": "hello", "delay": "2s"}).json())
        answered.append(http.post("/jobs", json={"task": "hello", "key": "rk"}).json())  # 200
        stored = [http.get(f"/jobs/{record['id']}").json() for record in answered]
    assert answered == stored


def test_prefer_return_minimal_answers_ids_only(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    write_app(workdir)
    server = serve()
    minimal = {"Prefer": "respond-async, return=minimal"}
    with server.client() as http:
        res = http.post("/jobs", json=[{"task": "hello"}, {"task": "hello"}], headers=minimal)
        assert res.status_code == 202
        assert res.headers["preference-applied"] == "return=minimal"
        first, second = res.json()
        assert first == {"id": first["id"], "created": True}
        assert second["id"] == first["id"] + 1
        one = http.post("/jobs", json={"task": "hello", "key": "m"}, headers=minimal)
        again = http.post("/jobs", json={"task": "hello", "key": "m"}, headers=minimal)
        assert (one.status_code, again.status_code) == (202, 200)
        assert one.json() == {"id": one.json()["id"], "created": True}
        assert again.json() == {"id": one.json()["id"], "created": False}
        assert again.headers["location"] == f"/jobs/{one.json()['id']}"
        full = http.post(
            "/jobs", json={"task": "hello"}, headers={"Prefer": "return=representation"}
        )
        assert full.json()["state"] == "queued" and "preference-applied" not in full.headers
    assert stored_ids(db) == [first["id"], second["id"], one.json()["id"], full.json()["id"]]


def test_a_wrong_content_type_or_an_oversized_body_writes_nothing(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    write_app(workdir, "max_body = 4096")
    server = serve()
    job = b'{"task": "hello", "args": ["' + b"x" * 5000 + b'"]}'
    with server.client() as http:
        refused(http.post("/jobs", content=b'{"task": "hello"}'), 415, "application/json")
        text = {"content-type": "text/plain"}
        refused(http.post("/jobs", content=b'{"task": "hello"}', headers=text), 415)
        as_json = {"content-type": "application/json"}
        refused(http.post("/jobs", content=job, headers=as_json), 413, "max_body")

        def chunks() -> Any:  # no Content-Length: counted while read
            for i in range(0, len(job), 1000):
                yield job[i : i + 1000]

        streamed = http.post("/jobs", content=chunks(), headers=as_json)
        assert "content-length" not in streamed.request.headers
        refused(streamed, 413, "max_body")
        assert http.post("/jobs", json={"task": "hello"}).status_code == 202
    assert len(stored_ids(db)) == 1


def test_only_allowed_tasks_and_commands_run_over_http(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    write_app(workdir)
    server = serve()
    with server.client() as http:
        refused(http.post("/jobs", json={"task": "os:system", "args": ["id"]}), 403, "'os'")
        refused(http.post("/jobs", json={"task": "other:run"}), 403, "allow_tasks")
        refused(http.post("/jobs", json={"command": ["sh", "-c", "id"]}), 403, "allow_commands")
        # one forbidden job refuses the whole batch, whatever comes before it
        batch = [{"task": "hello"}, {"task": "tasks:add", "args": []}, {"task": "os:system"}]
        refused(http.post("/jobs", json=batch), 403, "body[2]: task 'os:system'")
        assert stored_ids(db) == []
        assert http.post("/jobs", json={"task": "tasks:add", "args": [1, 2]}).status_code == 202
    server.stop()
    write_app(workdir, 'allow_tasks = ["oth*"]\nallow_commands = true')
    server = serve()
    with server.client() as http:
        assert http.post("/jobs", json={"task": "other:run"}).status_code == 202
        assert http.post("/jobs", json={"command": ["true"]}).status_code == 202
        assert http.post("/jobs", json={"task": "hello"}).status_code == 202
        refused(http.post("/jobs", json={"task": "tasks:add", "args": [1, 2]}), 403, "'tasks'")
    assert len(stored_ids(db)) == 4


async def hammer(url: str, seconds: float, connections: int = 64) -> list[int]:
    """`connections` clients submitting one job a request for `seconds`; the ids of the
    acknowledged (202) jobs. Errors (a server killed) end a client."""
    acked: list[int] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def one_client() -> None:
            while time.monotonic() < deadline:
                try:
                    res = await http.post("/jobs", json={"task": "hello"})
                except httpx.HTTPError:
                    return
                assert res.status_code == 202, res.text
                acked.append(res.json()["id"])

        await asyncio.gather(*(one_client() for _ in range(connections)))
    return acked


def test_under_load_every_acknowledged_job_is_stored_once(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    write_app(workdir)
    server = serve()
    acked = asyncio.run(hammer(server.url, 2.0))
    assert acked and len(acked) == len(set(acked))
    assert stored_ids(db) == sorted(acked)


@pytest.mark.slow
def test_a_server_killed_under_load_lost_no_acknowledged_job(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    write_app(workdir)
    server = serve()
    acked: list[int] = []
    done = threading.Event()

    def load() -> None:
        acked.extend(asyncio.run(hammer(server.url, 20.0)))
        done.set()

    thread = threading.Thread(target=load)
    thread.start()
    try:
        wait_for(lambda: len(stored_ids(db)) >= 200, timeout=30, what="jobs under load")
    finally:
        os.killpg(server.proc.pid, signal.SIGKILL)
        thread.join(60)
    assert done.is_set()
    stored = set(stored_ids(db))
    assert acked and len(acked) == len(set(acked))
    assert set(acked) <= stored


def test_a_job_after_others_over_http(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    """`after` / `after_ended` in the body; GET /jobs/ID says what it waits for; an id
    that names no job, or not an array of ids, is 400 and writes nothing."""
    write_app(workdir)
    server = serve()
    with server.client() as http:
        first, second = (r["id"] for r in http.post("/jobs", json=[{"task": "hello"}] * 2).json())
        res = http.post("/jobs", json={"task": "hello", "after": [first], "after_ended": [second]})
        assert res.status_code == 202, res.text
        assert res.json()["state"] == "blocked"
        record = http.get(res.headers["Location"]).json()
        assert record["after"] == [
            {"id": first, "needs": "succeeded", "state": "queued"},
            {"id": second, "needs": "ended", "state": "queued"},
        ]
        assert "after" not in http.get(f"/jobs/{first}").json()  # runs after nothing
        written = stored_ids(db)
        batch = [{"task": "hello"}, {"task": "hello", "after": [first, 999]}]
        refused(http.post("/jobs", json=batch), 400, "body[1]: after: no job with id 999")
        refused(http.post("/jobs", json={"task": "hello", "after": first}), 400, "body: after")
        refused(http.post("/jobs", json={"task": "hello", "after": ["1"]}), 400, "body: after")
        refused(http.post("/jobs", json={"task": "hello", "after_ended": [0]}), 400, "after")
        assert stored_ids(db) == written
