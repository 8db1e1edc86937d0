"""The dashboard's refusals: no page without the token's session, a session cookie that
cannot drive the JSON API, no action without the page's CSRF token or from another
site, nothing changed in read-only mode; and the login in a real browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import cli
from tests.http.conftest import Server
from tests.integration.conftest import job, submit

TOKEN = "s3cret-token-for-tests"
WITH_TOKEN = f'[http]\ntoken = "{TOKEN}"\n'


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


def logged_in(server: Server) -> httpx.Client:
    http = httpx.Client(base_url=server.url, timeout=30)
    answer = http.post("/ui/login", data={"token": TOKEN, "next": "/"})
    assert answer.status_code == 303, answer.text
    return http


def test_with_a_token_every_page_needs_the_login(
    site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site(WITH_TOKEN, daemon=False)
    waiting = submit(workdir, db, "wtasks:ok")
    anon = httpx.Client(base_url=server.url, timeout=30)
    for path in ("/", "/ui/jobs", f"/ui/jobs/{waiting}", "/ui/dlq", "/ui/schedules"):
        answer = anon.get(path)
        assert answer.status_code == 303, (path, answer.status_code)
        assert answer.headers["location"].startswith("/ui/login?next="), answer.headers
    for path in ("/events", f"/jobs/{waiting}", f"/jobs/{waiting}/logs"):
        assert anon.get(path).status_code == 401, path
    assert anon.get("/ui/login").status_code == 200  # the form itself, and its style
    assert anon.get("/ui/static/app.css").status_code == 200

    wrong = anon.post("/ui/login", data={"token": "guess", "next": "/"})
    assert wrong.status_code == 401
    assert "set-cookie" not in wrong.headers
    assert "not the server's token" in wrong.text

    right = anon.post("/ui/login", data={"token": TOKEN, "next": "/ui/dlq"})
    assert right.status_code == 303 and right.headers["location"] == "/ui/dlq"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert anon.get("/").status_code == 200
    assert anon.get(f"/jobs/{waiting}").status_code == 200  # reads: the live feed, logs

    # the cookie drives no JSON API change (those need the bearer token): a page of
    # another site could make a browser post there
    assert anon.post(f"/jobs/{waiting}/cancel").status_code == 401
    assert job(workdir, db, waiting)["state"] == "queued"

    # a forged or expired cookie is no session
    forged = httpx.Client(base_url=server.url, timeout=30)
    forged.cookies.set("jobrunner_session", "9999999999." + "0" * 64)
    assert forged.get("/").status_code == 303


def test_a_login_goes_back_only_to_this_server(site: Callable[..., Server]) -> None:
    server = site(WITH_TOKEN, daemon=False)
    http = httpx.Client(base_url=server.url, timeout=30)
    for target in ("//evil.example/", "https://evil.example/", "javascript:alert(1)"):
        answer = http.post("/ui/login", data={"token": TOKEN, "next": target})
        assert answer.headers["location"] == "/", target


def test_an_action_needs_the_pages_csrf_token(
    site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site(WITH_TOKEN, daemon=False)
    waiting = submit(workdir, db, "wtasks:ok")
    http = logged_in(server)
    page = http.get(f"/ui/jobs/{waiting}")
    token = csrf_of(page.text)
    url = f"/ui/jobs/{waiting}/cancel"

    assert http.post(url).status_code == 403  # none
    assert http.post(url, data={"csrf": "0" * 64}).status_code == 403  # a wrong one
    # another server's (a session of its own) does not fit this session either
    other = logged_in(server)
    their = csrf_of(other.get(f"/ui/jobs/{waiting}").text)
    if their != token:
        assert http.post(url, data={"csrf": their}).status_code == 403
    # a form another site made the browser post
    cross = http.post(url, data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    too_big = http.post(url, data={"csrf": token, "pad": "x" * 20_000})
    assert too_big.status_code == 413
    assert job(workdir, db, waiting)["state"] == "queued"  # nothing of that did anything

    done = http.post(url, data={"csrf": token})
    assert done.status_code == 303
    assert f"job+{waiting}+cancelled" in done.headers["location"]
    assert job(workdir, db, waiting)["state"] == "cancelled"


def test_without_a_token_a_page_hands_out_the_session_its_forms_need(
    site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site(daemon=False)
    waiting = submit(workdir, db, "wtasks:ok")
    http = httpx.Client(base_url=server.url, timeout=30)
    url = f"/ui/jobs/{waiting}/cancel"
    assert http.post(url).status_code == 403  # no session, no token
    page = http.get(f"/ui/jobs/{waiting}")
    assert "HttpOnly" in page.headers["set-cookie"]
    assert http.post(url, data={"csrf": "1" * 64}).status_code == 403
    assert http.post(url, data={"csrf": csrf_of(page.text)}).status_code == 303
    assert job(workdir, db, waiting)["state"] == "cancelled"


def test_the_read_only_dashboard_shows_no_actions_and_refuses_them(
    site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site('[http]\ndashboard = "read-only"\n', daemon=False)
    waiting = submit(workdir, db, "wtasks:ok")
    http = httpx.Client(base_url=server.url, timeout=30)
    page = http.get(f"/ui/jobs/{waiting}")
    assert page.status_code == 200
    assert ">Cancel<" not in page.text and "read-only" in page.text
    session = http.get("/ui/dlq")
    assert "Retry all" not in session.text
    refused = http.post(f"/ui/jobs/{waiting}/cancel", data={"csrf": "x"})
    assert refused.status_code == 403
    assert job(workdir, db, waiting)["state"] == "queued"


def test_the_dashboard_can_be_turned_off_and_a_wrong_mode_is_refused(
    site: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = site('[http]\ndashboard = "off"\n', daemon=False)
    http = httpx.Client(base_url=server.url, timeout=30)
    assert http.get("/").status_code == 404
    assert http.get("/healthz").status_code == 200  # the API is still there
    (workdir / "jobrunner.toml").write_text('[http]\ndashboard = "maybe"\n')
    res = cli(workdir, db, "serve", "--listen", "127.0.0.1:0")
    assert res.code == 2
    assert "dashboard" in res.err and "read-only" in res.err and res.err.count("\n") == 1


def test_logging_in_from_the_browser(page: Any, site: Callable[..., Server]) -> None:
    server = site(WITH_TOKEN, daemon=False)
    page.goto(server.url + "/ui/dlq")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.get_by_label("Token").fill("not it")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "That is not the server's token."
    assert page.console_errors == [  # the refusal's status, which the browser logs
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    page.console_errors.clear()
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/ui/dlq$"))
    page.wait_for_selector("#conn.live")  # the live feed takes the session cookie
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/ui/login"))
    page.goto(server.url + "/")
    page.wait_for_url(re.compile(r"/ui/login"))
