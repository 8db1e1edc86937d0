"""The Starlette app: each module's routes, the token check, problem details."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from jobrunner.http import jobs, live, meta, openapi, submit, webhooks
from jobrunner.http.problems import HANDLERS, problem
from jobrunner.http.state import ServerState


def bearer_ok(headers: list[tuple[bytes, bytes]], token: str) -> bool:
    """Whether the request carries `Authorization: Bearer TOKEN` (a constant-time
    compare: the time taken tells nothing of how much of a guess was right)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, given = value.partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(
                given.strip(), token.encode()
            )
    return False


class TokenCheck:
    """With a token, every HTTP request needs it (401 otherwise). A WebSocket may send
    it in its first message instead: the scope says whether the header had it."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        ok = bearer_ok(scope.get("headers", []), self.token)
        if scope["type"] == "websocket":
            scope.setdefault("state", {})["authorized"] = ok
            await self.app(scope, receive, send)
            return
        if not ok:
            response = problem(
                401,
                "missing or wrong token: send Authorization: Bearer TOKEN",
                {"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def make_app(state: ServerState) -> Any:
    from jobrunner.web import routes as dashboard
    from jobrunner.web.session import Sessions

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.hub.start()
        try:
            yield
        finally:
            state.hub.stop()
            state.close()

    mode = state.config.http.dashboard if state.config.http is not None else "on"
    app = Starlette(
        routes=[
            *(dashboard.routes if mode != "off" else []),
            *submit.routes,
            *jobs.routes,
            *live.routes,
            *meta.routes,
            *openapi.routes,
            *webhooks.routes,
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.state.server = state
    app.state.sessions = sessions = Sessions(state.token)
    app.state.dashboard = mode
    meta.install(app)  # /metrics: the registry, the request count
    return dashboard.SessionGate(TokenCheck(app, state.token), sessions, app)
