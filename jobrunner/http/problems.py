"""Errors as RFC 9457 problem details (`application/problem+json`): `type`, `title`,
`status`, `detail`; `detail` is the one-line message the CLI would print."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from jobrunner.errors import (
    DatabaseUnusable,
    JobrunnerError,
    NotFound,
    StoreUnavailable,
    UsageError,
)

MEDIA_TYPE = "application/problem+json"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(JobrunnerError):
    """An HTTP refusal with its status; the message is the detail."""

    status = 400

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        if status is not None:
            self.status = status


class Unauthorized(Problem):
    status = 401


class Forbidden(Problem):
    status = 403


class TooLarge(Problem):
    status = 413


class UnsupportedMediaType(Problem):
    status = 415


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def status_of(exc: BaseException) -> int:
    if isinstance(exc, Problem):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, StoreUnavailable | DatabaseUnusable):
        return 503
    return 500


async def on_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        if wants_page(request):
            return error_page(exc.status_code, str(exc.detail))
        return problem(exc.status_code, str(exc.detail), getattr(exc, "headers", None))
    status = status_of(exc)
    detail = str(exc) if status != 500 else "internal error; the server's log says more"
    if wants_page(request):
        return error_page(status, detail)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:  # the database is away or locked: worth asking again shortly
        headers = {"Retry-After": "1"}
    return problem(status, detail.replace("\n", " "), headers)


def wants_page(request: Request) -> bool:
    """A browser on the dashboard gets its errors as a page, not JSON."""
    path = request.url.path
    return (path == "/" or path.startswith("/ui/")) and "text/html" in request.headers.get(
        "accept", ""
    )


def error_page(status: int, detail: str) -> Response:
    from jobrunner.web.render import error_page as render

    html = render(status, TITLES.get(status, "Error"), detail.replace("\n", " "))
    return HTMLResponse(html, status_code=status)


HANDLERS: dict[Any, Any] = {HTTPException: on_error, JobrunnerError: on_error}
