"""The dashboard's routes, its login, and the gate in front of the whole server that
lets a browser in by its session cookie (a browser cannot send a bearer token)."""

from __future__ import annotations

import os
from http.cookies import SimpleCookie

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobrunner import clock
from jobrunner.web import actions, pages
from jobrunner.web.render import ENV, HERE
from jobrunner.web.session import COOKIE, MAX_AGE, Sessions

PUBLIC = ("/ui/login", "/ui/static/")  # reachable without a token or a session


def is_page(path: str) -> bool:
    return path == "/" or path.startswith("/ui/")


def session_cookie(value: str, scope: Scope, max_age: int = MAX_AGE) -> str:
    cookie: SimpleCookie = SimpleCookie()
    cookie[COOKIE] = value
    morsel = cookie[COOKIE]
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Strict"
    morsel["max-age"] = max_age
    if scope.get("scheme") == "https":
        morsel["secure"] = True
    return morsel.OutputString()


class SessionGate:
    """Who gets past, before any route:

    - with a token: a request with `Authorization: Bearer TOKEN` (the API's way); a
      browser with a valid session cookie for reads anywhere (pages, /events, logs) and
      for the dashboard's own POSTs (which also check their CSRF token); the login page
      and the static files. A page asked for without either is sent to the login page,
      anything else is 401.
    - without a token (the server listens on loopback only): everyone; a page visit
      without a session gets one, for the CSRF tokens of its forms.
    """

    def __init__(self, app: ASGIApp, sessions: Sessions, api_ok: ASGIApp) -> None:
        self.app = app  # the dashboard and the API, behind the token check
        self.sessions = sessions
        self.api_ok = api_ok  # the same app without the token check (a session let it in)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        cookie = Request(scope).cookies.get(COOKIE)
        valid = self.sessions.valid(cookie, clock.now())
        if self.sessions.token is not None:
            reading = method in ("GET", "HEAD")
            if path.startswith(PUBLIC) or valid and (reading or is_page(path)):
                await self.api_ok(scope, receive, send)
            elif is_page(path) and reading and not has_bearer(scope):
                target = path + (
                    ("?" + scope["query_string"].decode()) if scope["query_string"] else ""
                )
                await RedirectResponse(
                    "/ui/login?" + _urlencode({"next": target}), status_code=303
                )(scope, receive, send)
            else:
                await self.app(scope, receive, send)  # the bearer check decides
            return
        if is_page(path) and not valid and method in ("GET", "HEAD"):
            fresh = self.sessions.issue(clock.now())
            scope["jobrunner_session"] = fresh  # the page's forms sign with it

            async def with_cookie(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    headers.append((b"set-cookie", session_cookie(fresh, scope).encode()))
                    message["headers"] = headers
                await send(message)

            await self.app(scope, receive, with_cookie)
            return
        await self.app(scope, receive, send)


def has_bearer(scope: Scope) -> bool:
    return any(k == b"authorization" for k, _ in scope.get("headers", []))


def _urlencode(fields: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(fields)


async def login_form(request: Request) -> Response:
    sessions: Sessions = request.app.state.sessions
    if sessions.token is None:
        return RedirectResponse("/", status_code=303)  # nothing to log in to
    page = ENV.get_template("login.html").render(
        next=actions.login_target(request.query_params.get("next")), wrong=False
    )
    return HTMLResponse(page)


async def login(request: Request) -> Response:
    """The token for a session cookie; a wrong one is the form again, with 401."""
    sessions: Sessions = request.app.state.sessions
    if sessions.token is None:
        return RedirectResponse("/", status_code=303)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > actions.MAX_FORM:
            return Response("form too large", status_code=413)
    from urllib.parse import parse_qs

    fields = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    target = actions.login_target(fields.get("next"))
    if not sessions.login_ok(fields.get("token", "")):
        page = ENV.get_template("login.html").render(next=target, wrong=True)
        return HTMLResponse(page, status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.headers.append(
        "set-cookie", session_cookie(sessions.issue(clock.now()), request.scope)
    )
    return response


async def logout(request: Request) -> Response:
    await actions.form_of(request, changes=False)
    response = RedirectResponse("/ui/login", status_code=303)
    response.headers.append("set-cookie", session_cookie("", request.scope, max_age=0))
    return response


routes = [
    Route("/", pages.overview, methods=["GET"]),
    Route("/ui/jobs", pages.jobs, methods=["GET"]),
    Route("/ui/jobs/bulk", pages.bulk_confirm, methods=["GET"]),
    Route("/ui/jobs/bulk", actions.bulk, methods=["POST"]),
    Route("/ui/jobs/{id}", pages.job, methods=["GET"]),
    Route("/ui/dlq", pages.dead_letters, methods=["GET"]),
    Route("/ui/schedules", pages.schedules, methods=["GET"]),
    Route("/ui/webhooks", pages.webhooks, methods=["GET"]),
    Route("/ui/login", login_form, methods=["GET"]),
    Route("/ui/login", login, methods=["POST"]),
    Route("/ui/logout", logout, methods=["POST"]),
    Route("/ui/jobs/{id}/cancel", actions.cancel_job, methods=["POST"]),
    Route("/ui/jobs/{id}/retry", actions.retry_job, methods=["POST"]),
    Route("/ui/dlq/retry", actions.retry_dead, methods=["POST"]),
    Route("/ui/dlq/purge", actions.purge_dead, methods=["POST"]),
    Route("/ui/schedules/{name}/{verb}", actions.schedule_action, methods=["POST"]),
    Route("/ui/webhooks/deliveries/{id}/redeliver", actions.redeliver, methods=["POST"]),
    Mount("/ui/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static"),
]
