"""Acting on every job a filter matches, from the dashboard: the confirmation says how
many jobs the action applies to, and the action takes exactly those (not only the
page shown), in a real browser against a real server."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import Daemon, cli, wait_for
from tests.http.conftest import Server
from tests.integration.conftest import job, submit_file


def test_cancel_every_match_after_a_confirmation_that_says_how_many(
    page: Any, site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site(daemon=False)
    # 60 in queue "bulk" (more than a page of 50), 5 elsewhere
    bulk = submit_file(workdir, db, [{"task": "wtasks:ok", "queue": "bulk"}] * 60, "bulk")
    other = submit_file(workdir, db, [{"task": "wtasks:ok"}] * 5, "other")
    page.goto(server.url + "/ui/jobs?queue=bulk")
    assert page.locator("tr[data-job]").count() == 50  # one page shown
    page.get_by_role("link", name="Cancel…").click()
    page.wait_for_url(re.compile(r"/ui/jobs/bulk\?"))
    assert "60 jobs not yet ended match" in page.locator("#bulk-count").inner_text()
    page.get_by_role("button", name="Cancel 60 jobs").click()
    page.wait_for_url(re.compile(r"/ui/jobs\?queue=bulk"))
    assert page.locator(".note").inner_text() == "60 jobs cancelled"
    assert {job(workdir, db, i)["state"] for i in bulk} == {"cancelled"}
    assert {job(workdir, db, i)["state"] for i in other} == {"queued"}


def test_retry_and_delete_take_only_the_jobs_they_apply_to(
    site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site()
    dead = submit_file(
        workdir,
        db,
        [{"task": "wtasks:fail", "args": [f"order-{i}"], "retries": 0} for i in range(3)],
    )
    wait_for(lambda: {job(workdir, db, i)["state"] for i in dead} == {"dead"}, 30, "dead jobs")
    http = httpx.Client(base_url=server.url, timeout=30)
    confirm = http.get("/ui/jobs/bulk", params={"action": "delete", "text": "order-1"})
    assert "<strong>1</strong> job ended matches" in confirm.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', confirm.text).group(1)  # type: ignore[union-attr]
    done = http.post(
        "/ui/jobs/bulk", data={"csrf": csrf, "action": "delete", "text": "order-1", "expect": "1"}
    )
    assert done.status_code == 303 and "1+job+deleted" in done.headers["location"]
    gone = cli(workdir, db, "status", str(dead[1]))
    assert gone.code == 2 and f"no job with id {dead[1]}" in gone.err
    # a retry of "all dead" that match the text: the other two
    confirm = http.get("/ui/jobs/bulk", params={"action": "retry", "text": "order-"})
    assert "<strong>2</strong> jobs dead match" in confirm.text
    done = http.post(
        "/ui/jobs/bulk", data={"csrf": csrf, "action": "retry", "text": "order-", "expect": "5"}
    )
    assert "2+jobs+queued+again" in done.headers["location"]
    assert "jobs+changed+meanwhile" in done.headers["location"]  # it said 5
    # nothing to act on, and a wrong action
    none = http.get("/ui/jobs/bulk", params={"action": "cancel", "state": "dead"})
    assert "No job that matches can be cancelled" in none.text
    assert http.get("/ui/jobs/bulk", params={"action": "explode"}).status_code == 400
    assert http.post("/ui/jobs/bulk", data={"action": "delete"}).status_code == 403  # no csrf


def test_the_overview_shows_each_queues_limits_and_a_blocked_job_what_it_waits_for(
    site: Callable[..., Server], workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    server = site(
        '[queues.api]\nrate = "2/h"\n[queues.sync]\nconcurrency = 3\nper_key = 1\n', daemon=False
    )
    submit_file(workdir, db, [{"task": "wtasks:ok", "queue": "api"}] * 3, "api")
    http = httpx.Client(base_url=server.url, timeout=30)
    before = http.get("/").text
    assert "concurrency 3 (0 running) · 1 per key" in before
    assert "rate 2/h</td>" in before  # nothing started yet: not throttled
    (first,) = submit_file(workdir, db, [{"task": "wtasks:ok"}], "first")
    (blocked,) = submit_file(workdir, db, [{"task": "wtasks:ok", "after": [first]}], "blocked")
    shown = http.get(f"/ui/jobs/{blocked}").text
    assert "runs after" in shown and f'href="/ui/jobs/{first}"' in shown
    daemons.append(Daemon(workdir, db))
    wait_for(lambda: job(workdir, db, blocked)["state"] == "succeeded", 30, "the blocked job")
    wait_for(lambda: "rate 2/h, throttled" in http.get("/").text, 30, "the api queue throttled")
