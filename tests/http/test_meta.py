"""/schedules (list, run, pause, resume), /readyz and /metrics against a real server:
the config's schedules, daemons registered in the real database."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from jobrunner.models import ClaimRequest, DaemonInfo, JobInsert
from jobrunner.node import node
from jobrunner.store import open_store
from tests.helpers import cli, env_for
from tests.http.conftest import Server
from tests.http.test_jobs import assert_problem

CONFIG = """\
[[schedules]]
name = "nightly"
cron = "30 2 * * *"
timezone = "Europe/Berlin"
task = "tasks:ok"

[[schedules]]
name = "tick"
every = "10s"
command = ["true"]
"""


def test_schedules_list_run_pause_resume_as_the_cli(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    (workdir / "jobrunner.toml").write_text(CONFIG)
    server = serve()
    with server.client() as http:
        rows = http.get("/schedules").json()
        assert [r["name"] for r in rows] == ["nightly", "tick"]
        assert rows[0]["paused"] is False and len(rows[0]["next"]) == 3
        assert rows[0]["last_job"] is None

        res = http.post("/schedules/nightly/run")
        assert res.status_code == 200, res.text
        record = res.json()
        assert (record["task"], record["manual"], record["schedule"]) == (
            "tasks:ok",
            True,
            "nightly",
        )
        assert res.headers["location"] == f"/jobs/{record['id']}"

        paused = http.post("/schedules/tick/pause")
        assert (paused.status_code, paused.json()["paused"]) == (200, True)
        resumed = http.post("/schedules/tick/resume").json()
        assert (resumed["name"], resumed["paused"]) == ("tick", False)
        http.post("/schedules/nightly/pause")

        # what the CLI shows is what the server said
        listed = cli(workdir, db, "schedules", "list", "--json").json()
        served = http.get("/schedules").json()
        for row in (*listed, *served):
            row.pop("next")  # later fires as time goes on
        assert listed == served
        assert served[0]["paused"] is True
        assert served[0]["last_job"]["id"] == record["id"]

        for action in ("run", "pause", "resume"):
            assert_problem(
                http.post(f"/schedules/weekly/{action}"),
                404,
                "no schedule named 'weekly' in the config (schedules: nightly, tick)",
            )
        assert http.get("/schedules/tick/run").status_code == 405


def register(db: Path, daemon_id: str, pid: int, lease_until: float) -> None:
    now = time.time()
    store = open_store(str(db), create=False)
    try:
        store.daemon_register(
            DaemonInfo(daemon_id, "here", pid, now, now, lease_until, 2, None, node())
        )
    finally:
        store.close()


def test_readyz_needs_the_database_and_a_live_daemon(
    serve: Callable[..., Server], db: Path
) -> None:
    server = serve()
    with server.client() as http:
        assert_problem(http.get("/readyz"), 503, "no daemon is alive to run jobs")
        register(db, "gone:1", 2**22 + 7, time.time() + 60)  # no such pid
        assert_problem(http.get("/readyz"), 503, "(1 registered: dead (pid gone))")
        register(db, "here:1", os.getpid(), time.time() + 60)  # this test: alive
        res = http.get("/readyz")
        assert (res.status_code, res.json()) == (200, {"ok": True, "daemons": 1})
        assert http.get("/healthz").json() == {"ok": True}
        if str(db).startswith("postgresql://"):
            return  # what follows is a file's: replaced under the server
        db.unlink()
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.write_bytes(b"this is not a database, " * 200)
        assert_problem(http.get("/readyz"), 503, f"the database {db} was replaced by another file")


def test_metrics_are_prometheus_text_read_at_each_scrape(
    serve: Callable[..., Server], db: Path
) -> None:
    server = serve()
    store = open_store(str(db), create=False)
    try:
        store.job_insert_many(
            [JobInsert(task="a:b"), JobInsert(task="a:b"), JobInsert(task="a:b", queue="email")],
            time.time(),
        )
    finally:
        store.close()
    register(db, "here:1", os.getpid(), time.time() + 60)
    with server.client() as http:
        assert http.get("/jobs/424242").status_code == 404
        res = http.get("/metrics")
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/plain; version=")
        samples = dict(
            line.rsplit(" ", 1) for line in res.text.splitlines() if not line.startswith("#")
        )
        assert float(samples['jobrunner_jobs{queue="default",state="queued"}']) == 2
        assert float(samples['jobrunner_jobs{queue="email",state="queued"}']) == 1
        assert float(samples['jobrunner_jobs{queue="email",state="dead"}']) == 0
        assert float(samples["jobrunner_daemons_alive"]) == 1
        assert float(samples["jobrunner_events_last_seq"]) == 3
        route = 'jobrunner_http_requests_total{method="GET",route="/jobs/{id}",status="404"}'
        assert float(samples[route]) == 1
        assert all(name.startswith("jobrunner_") for name in samples)
        again = http.get("/metrics").text  # the scrape before is counted; paths never are
        assert 'route="/metrics",status="200"} 1.0' in again
        assert "424242" not in again


def test_meta_endpoints_need_the_token_but_none_is_shown(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    (workdir / "jobrunner.toml").write_text(CONFIG)
    env = env_for(workdir, db)
    env["JOBRUNNER_TOKEN"] = "meta-token-value"
    server = serve(env=env)
    with server.client() as anonymous:
        for method, path in (
            ("GET", "/readyz"),
            ("GET", "/metrics"),
            ("GET", "/schedules"),
            ("POST", "/schedules/tick/run"),
            ("POST", "/schedules/tick/pause"),
            ("POST", "/schedules/tick/resume"),
        ):
            assert anonymous.request(method, path).status_code == 401, path
    with server.client("meta-token-value") as http:
        assert [r["paused"] for r in http.get("/schedules").json()] == [False, False]
        assert "meta-token-value" not in http.get("/metrics").text


def test_metrics_say_which_rated_queue_is_throttled(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    """`jobrunner_queue_throttled{queue}`: 1 while a rated queue's window is used up and
    jobs of it wait; 0 for a rated queue with room (windows of 30 days: no test run
    crosses one)."""
    (workdir / "jobrunner.toml").write_text(
        '[queues.api]\nrate = "1/30d"\n[queues.free]\nrate = "5/30d"\n'
    )
    store = open_store(str(db))
    try:
        now = time.time()
        store.job_insert_many([JobInsert(task="a:b", queue="api") for _ in range(3)], now)
        store.job_insert_many([JobInsert(task="a:b", queue="free")], now)
        rates = {"api": (1, 30 * 86400.0), "free": (5, 30 * 86400.0)}
        claimed = store.job_claim(ClaimRequest("here:1", now, 10, None, None, None, rates))
        assert sorted(j.queue for j in claimed) == ["api", "free"]  # api's one start
    finally:
        store.close()
    server = serve()
    with server.client() as http:
        samples = dict(
            line.rsplit(" ", 1)
            for line in http.get("/metrics").text.splitlines()
            if not line.startswith("#")
        )
    assert float(samples['jobrunner_queue_throttled{queue="api"}']) == 1  # 2 wait
    assert float(samples['jobrunner_queue_throttled{queue="free"}']) == 0  # room, none wait
