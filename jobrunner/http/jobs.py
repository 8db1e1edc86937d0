"""/jobs: get (and long poll), list, cancel, retry, logs, status. Submitting: submit.py."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobrunner import ops
from jobrunner.errors import UsageError
from jobrunner.http import live
from jobrunner.http.problems import UnsupportedMediaType
from jobrunner.http.state import ServerState


def server(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def job_id(request: Request) -> int:
    text = request.path_params["id"]
    if not text.isdigit() or not 0 < int(text) < 1 << 63:
        raise UsageError(f"job id: expected a whole number, got {text!r}")
    return int(text)


async def json_body(request: Request) -> Any:
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json":
        raise UnsupportedMediaType(f"Content-Type: expected application/json, got {kind!r}")
    body = await request.body()
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"body: malformed JSON: {exc}") from None


async def get_job(request: Request) -> Response:
    """The record; `?wait=DUR` holds the request until the job ends or DUR passes (a long
    poll, woken by the event feed: live.wait_for_end)."""
    state = server(request)
    wait = request.query_params.get("wait")
    if wait is not None:
        from jobrunner.durations import parse_duration

        timeout = parse_duration(wait, "wait")
        job = await live.wait_for_end(state, job_id(request), timeout)
    else:
        job = await state.read(ops.get_job, job_id(request))
    return JSONResponse(job.to_dict())


routes = [
    Route("/jobs/{id}", get_job, methods=["GET"]),
]
