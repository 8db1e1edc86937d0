"""The dashboard in a real browser, against a real daemon: every page opens, filters
narrow the jobs, a job's progress bar and output move without a reload, a dead job is
retried and a running one cancelled from the page."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import cli, wait_for
from tests.http.conftest import Server
from tests.integration.conftest import job, submit

SCHEDULE = """
[[schedules]]
name = "nightly"
cron = "30 2 * * *"
timezone = "Europe/Berlin"
task = "wtasks:ok"
"""


def test_every_page_opens_and_shows_the_jobs(
    page: Any, site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site(SCHEDULE)
    good = submit(workdir, db, "wtasks:ok", "--args", "[7]")
    dead = submit(workdir, db, "wtasks:fail", "--retries", "0")
    wait_for(lambda: job(workdir, db, dead)["state"] == "dead", 20, "the failing job dead")
    wait_for(lambda: job(workdir, db, good)["state"] == "succeeded", 20, "the good job")

    page.goto(server.url + "/")
    assert page.title() == "Overview · jobrunner"
    assert page.locator("[data-count=dead]").inner_text() == "1"
    assert page.locator("[data-count=succeeded]").inner_text() == "1"
    assert "No daemon is running" not in page.content()
    assert page.locator("[data-running]").inner_text() == "0"  # its workers are idle
    # the last hour's chart: the last bars hold the two jobs that ended
    bars = page.locator("svg.chart g title").evaluate_all("ts => ts.map(t => t.textContent)")
    assert len(bars) == 60
    recent = [re.search(r"(\d+) succeeded, (\d+) dead", t) for t in bars[-2:]]  # a minute may turn
    assert [sum(int(m.group(i)) for m in recent if m) for i in (1, 2)] == [1, 1], bars[-2:]

    page.get_by_role("link", name="Jobs", exact=True).click()
    page.wait_for_url(re.compile(r"/ui/jobs$"))
    rows = page.locator("table.jobs tbody tr[data-job]")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.job)")) == sorted(
        [str(good), str(dead)]
    )

    page.get_by_role("link", name="Dead letters").click()
    page.wait_for_url(re.compile(r"/ui/dlq$"))  # loaded: is_visible does not wait
    assert page.locator("[data-count=dead]").inner_text() == "1"
    assert page.locator(f"tr[data-job='{dead}']").count() == 1

    page.get_by_role("link", name="Schedules").click()
    page.wait_for_url(re.compile(r"/ui/schedules$"))  # loaded: is_visible does not wait
    assert page.get_by_role("heading", name="nightly").is_visible()
    # the next fires in Berlin time and in UTC, and around the next clock change
    assert page.get_by_text("02:30").first.is_visible()
    assert page.get_by_text("Across the next clock change in Europe/Berlin").is_visible()
    assert page.locator("table.dst tbody tr").count() == 4

    page.get_by_role("link", name="Webhooks").click()
    page.wait_for_url(re.compile(r"/ui/webhooks$"))  # loaded: is_visible does not wait
    assert page.get_by_text("No endpoints in the config").is_visible()

    page.goto(f"{server.url}/ui/jobs/{dead}")
    assert page.get_by_text("ValueError: kaput").first.is_visible()
    assert page.get_by_role("button", name="Retry").is_visible()


def test_filters_narrow_the_list(
    page: Any, site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site(daemon=False)
    a = submit(workdir, db, "wtasks:ok", "--queue", "alpha")
    b = submit(workdir, db, "wtasks:fail", "--queue", "beta")
    page.goto(server.url + "/ui/jobs")
    page.get_by_label("Queue").fill("beta")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"queue=beta"))
    ids = page.locator("tr[data-job]").evaluate_all("rs => rs.map(r => r.dataset.job)")
    assert ids == [str(b)]
    page.get_by_label("Queue").fill("")
    page.get_by_label("Task").fill("wtasks:ok")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"task=wtasks"))
    ids = page.locator("tr[data-job]").evaluate_all("rs => rs.map(r => r.dataset.job)")
    assert ids == [str(a)]
    page.get_by_label("State").select_option("running")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"state=running"))
    assert page.get_by_text("No jobs.").is_visible()

    # text in the arguments, and when jobs were made
    c = submit(workdir, db, "wtasks:ok", "--args", '["invoice-2026-17"]')
    page.goto(server.url + "/ui/jobs")
    page.get_by_label("Arguments contain").fill("invoice-2026")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"text=invoice"))
    ids = page.locator("tr[data-job]").evaluate_all("rs => rs.map(r => r.dataset.job)")
    assert ids == [str(c)]
    page.get_by_label("Arguments contain").fill("")
    page.get_by_label("Created after").fill("1h")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"since=1h"))
    ids = page.locator("tr[data-job]").evaluate_all("rs => rs.map(r => r.dataset.job)")
    assert ids == [str(c), str(b), str(a)]
    page.get_by_label("Created after").fill("2999-01-01T00:00")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"since=2999"))
    assert page.get_by_text("No jobs.").is_visible()


def test_a_jobs_progress_and_output_move_without_a_reload(
    page: Any, site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site()
    running = submit(workdir, db, "wtasks:steps", "--args", "[12, 0.4]")
    wait_for(lambda: job(workdir, db, running)["state"] == "running", 20, "the job running")
    page.goto(f"{server.url}/ui/jobs/{running}")
    page.evaluate("window.notReloaded = true")
    page.wait_for_selector("#conn.live")
    bar = page.locator(".progress[role=progressbar]")
    bar.wait_for()
    first = int(bar.get_attribute("aria-valuenow"))
    first_output = page.locator("#output").inner_text()
    # the bar moves and the output grows, on this very page
    page.wait_for_function(
        "n => Number(document.querySelector('.progress').getAttribute('aria-valuenow')) > n",
        arg=first,
    )
    page.wait_for_function(
        "n => document.getElementById('output').textContent.length > n",
        arg=len(first_output),
    )
    # at the end: succeeded, the result shown, every line of output once
    page.wait_for_selector(".state-succeeded", timeout=30_000)
    page.wait_for_selector("#result")
    assert '"steps": 12' in page.locator("#result").inner_text()
    output = page.locator("#output")
    page.wait_for_function(
        "() => document.getElementById('output').textContent.includes('step 12 of 12')"
    )
    lines = [line for line in output.inner_text().splitlines() if line]
    assert lines == [f"step {i} of 12" for i in range(1, 13)]
    assert page.evaluate("window.notReloaded") is True


def test_a_dead_job_is_retried_and_a_running_one_cancelled_from_the_page(
    page: Any, site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site()
    marker = workdir / "flaky-ran"
    dead = submit(workdir, db, "wtasks:flaky", "--args", f'["{marker}"]', "--retries", "0")
    wait_for(lambda: job(workdir, db, dead)["state"] == "dead", 20, "the job dead")
    page.on("dialog", lambda d: d.accept())  # the confirmation
    page.goto(f"{server.url}/ui/jobs/{dead}")
    page.get_by_role("button", name="Retry").click()
    page.wait_for_selector(".note")
    assert f"job {dead} queued again" in page.locator(".note").inner_text()
    wait_for(lambda: job(workdir, db, dead)["state"] == "succeeded", 20, "the retried job")
    page.wait_for_selector(".state-succeeded")  # live: the page follows the retry

    running = submit(workdir, db, "wtasks:steps", "--args", "[100, 0.3]")
    wait_for(lambda: job(workdir, db, running)["state"] == "running", 20, "the job running")
    page.goto(f"{server.url}/ui/jobs/{running}")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector(".note")
    wait_for(lambda: job(workdir, db, running)["state"] == "cancelled", 20, "the job cancelled")
    page.wait_for_selector(".state-cancelled")


def test_a_cancel_the_user_declines_changes_nothing(
    page: Any, site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site(daemon=False)
    waiting = submit(workdir, db, "wtasks:ok")
    page.on("dialog", lambda d: d.dismiss())
    page.goto(f"{server.url}/ui/jobs/{waiting}")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_timeout(500)
    assert job(workdir, db, waiting)["state"] == "queued"
    assert cli(workdir, db, "status", str(waiting)).code == 0


def test_a_bad_filter_is_a_clear_error_page(site: Callable[..., Server]) -> None:
    import httpx

    server = site(daemon=False)
    http = httpx.Client(base_url=server.url, timeout=30, headers={"Accept": "text/html"})
    answer = http.get("/ui/jobs", params={"since": "last tuesday"})
    assert answer.status_code == 400
    assert "since: &#39;last tuesday&#39; is neither a time" in answer.text
    answer = http.get("/ui/jobs", params={"state": "sleeping"})
    assert answer.status_code == 400 and "state:" in answer.text
    assert http.get("/ui/jobs/999").status_code == 404


def test_a_lost_feed_reconnects_and_catches_up_without_a_reload(
    page: Any, site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    """The server goes away (kill -9) while the overview is open; jobs end meanwhile; a
    server comes back on the same address: the page says it is reconnecting, then shows
    what happened meanwhile (the feed resumed from its Last-Event-ID), with no reload."""
    import signal

    first = site()
    port = first.url.rsplit(":", 1)[1]
    done = submit(workdir, db, "wtasks:ok")
    wait_for(lambda: job(workdir, db, done)["state"] == "succeeded", 20, "the first job")
    page.goto(first.url + "/")
    page.evaluate("window.notReloaded = true")
    page.wait_for_selector("#conn.live")
    assert page.locator("[data-count=succeeded]").inner_text() == "1"

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    page.wait_for_selector("#conn.lost")
    page.console_errors.clear()  # the stream cut short, as the browser logs it
    more = [submit(workdir, db, "wtasks:ok") for _ in range(3)]
    wait_for(
        lambda: all(job(workdir, db, i)["state"] == "succeeded" for i in more), 20, "three more"
    )
    second = Server(workdir, db, "--listen", f"127.0.0.1:{port}")
    try:
        page.wait_for_selector("#conn.live", timeout=30_000)
        page.wait_for_function(
            "() => document.querySelector('[data-count=succeeded]').textContent === '4'"
        )
        assert page.evaluate("window.notReloaded") is True
        # the browser logs each try it made while nobody listened: those only
        page.console_errors[:] = [
            e for e in page.console_errors if "ERR_CONNECTION_REFUSED" not in e
        ]
    finally:
        page.close()
        second.stop()


def test_pages_fit_a_phone_and_the_keyboard_reaches_the_content(
    page: Any, site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site(SCHEDULE, daemon=False)
    long = "a-long-argument-without-spaces-" * 10
    made = submit(workdir, db, "wtasks:ok", "--args", f'["{long}"]')
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/", "/ui/jobs", f"/ui/jobs/{made}", "/ui/dlq", "/ui/schedules", "/ui/webhooks"):
        page.goto(server.url + path)
        # wide tables scroll in their own box; the page itself never scrolls sideways
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    page.goto(server.url + "/ui/jobs")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
