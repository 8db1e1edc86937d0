"""POST /jobs: one job (an object) or many (an array, one transaction)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobrunner import clock, ops
from jobrunner.errors import UsageError
from jobrunner.http.jobs import json_body, server
from jobrunner.store.base import Store


async def submit(request: Request) -> Response:
    """One job (an object): 202 with the record, Location and Retry-After; a key already
    used: 200 with the first job's record."""
    state = server(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise UsageError("body: expected a JSON object (one job)")
    from jobrunner.cli.submit import _parse_line  # the --file line format, checked alike

    job = _parse_line(state.client, json.dumps(body), 1, "body", check=False)

    def insert(store: Store) -> Any:
        (result,) = ops.submit(store, [job], clock.now())
        return result, ops.get_job(store, result.id)

    result, record = await state.write(insert)
    headers = {"Location": f"/jobs/{result.id}", "Retry-After": "1"}
    return JSONResponse(
        record.to_dict(), status_code=202 if result.created else 200, headers=headers
    )


routes = [Route("/jobs", submit, methods=["POST"])]
