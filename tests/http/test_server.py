"""The server's first contract: it starts where it may and says where, a job submitted
over HTTP is in the database with a 202 and its Location, errors are problem details,
and a token, when set, is needed by every request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jobrunner.store import open_store
from tests.cli.support import assert_one_line_error
from tests.helpers import cli, env_for
from tests.http.conftest import Server

PROBLEM = "application/problem+json"


def test_submit_is_202_with_location_and_the_job_is_in_the_database(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    (workdir / "jobrunner.toml").write_text("[http]\nallow_commands = true\n")
    server = serve()
    with server.client() as http:
        res = http.post("/jobs", json={"command": ["echo", "hi"], "queue": "web"})
        assert res.status_code == 202, res.text
        record = res.json()
        assert res.headers["location"] == f"/jobs/{record['id']}"
        assert "retry-after" in res.headers
        assert (record["state"], record["queue"]) == ("queued", "web")
        got = http.get(res.headers["location"])
        assert (got.status_code, got.json()["id"]) == (200, record["id"])
    store = open_store(str(db), create=False)
    try:
        job = store.job_get(record["id"])
        assert job is not None and job.command == ["echo", "hi"]
    finally:
        store.close()


def test_errors_are_problem_details(serve: Callable[..., Server]) -> None:
    server = serve()
    with server.client() as http:
        missing = http.get("/jobs/424242")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == PROBLEM
        assert missing.json() == {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": "no job with id 424242",
        }
        bad = http.post("/jobs", content=b"{", headers={"content-type": "application/json"})
        assert (bad.status_code, bad.headers["content-type"]) == (400, PROBLEM)
        assert "malformed JSON" in bad.json()["detail"]
        text = http.post("/jobs", content=b"{}", headers={"content-type": "text/plain"})
        assert text.status_code == 415


def test_a_token_is_needed_by_every_request_and_never_logged(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    (workdir / "jobrunner.toml").write_text("[http]\nallow_commands = true\n")
    env = env_for(workdir, db)
    env["JOBRUNNER_TOKEN"] = "s3cret-token-value"
    server = serve(env=env)
    with server.client() as anonymous:
        for res in (anonymous.get("/healthz"), anonymous.post("/jobs", json={})):
            assert res.status_code == 401
            assert res.headers["www-authenticate"] == "Bearer"
    with server.client("wrong") as wrong:
        assert wrong.get("/healthz").status_code == 401
    with server.client("s3cret-token-value") as http:
        assert http.get("/healthz").status_code == 200
        assert http.post("/jobs", json={"command": ["true"]}).status_code == 202
    server.stop()
    assert "s3cret-token-value" not in server.log()


def test_a_non_loopback_address_without_a_token_is_refused(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "serve", "--listen", "0.0.0.0:0")
    assert_one_line_error(res, "without a token")
    res = cli(workdir, db, "serve", "--listen", "nowhere")
    assert_one_line_error(res, "HOST:PORT")
