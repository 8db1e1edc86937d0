"""/webhooks: the endpoints, deliveries, redelivery and a test send, as `jobrunner
webhooks` (docs/webhooks.md)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobrunner import clock
from jobrunner.errors import UsageError
from jobrunner.http.jobs import MAX_JOB_ID, whole_number
from jobrunner.http.problems import Problem
from jobrunner.http.state import server_of
from jobrunner.http.submit import parse_body, read_body
from jobrunner.ops import webhooks
from jobrunner.store.base import Store

LIST_LIMIT = 50
MAX_LIST_LIMIT = 1000
SMALL_BODY = 4096  # a body of {"url": ...}


def delivery_id(request: Request) -> int:
    text = request.path_params["id"]
    if not text.isdigit() or not 0 < int(text) <= MAX_JOB_ID:
        raise UsageError(f"delivery id: expected a whole number, got {text!r}")
    return int(text)


async def url_of(request: Request) -> str:
    body = parse_body(await read_body(request, SMALL_BODY))
    if not isinstance(body, dict) or set(body) != {"url"} or not isinstance(body["url"], str):
        raise UsageError('body: expected {"url": "https://..."}')
    return str(body["url"])


async def list_endpoints(request: Request) -> Response:
    server = server_of(request)
    webhooks.webhooks_of(server.config)

    def read(store: Store) -> dict[str, Any]:
        return {
            "endpoints": webhooks.endpoints(server.config, store),
            "deliveries": store.webhook_counts(),
        }

    return JSONResponse(await server.read(read))


async def list_deliveries(request: Request) -> Response:
    """Newest first, a page at a time (`next`: the cursor for `?after=`)."""
    query = request.query_params
    unknown = sorted(set(query) - {"job", "state", "limit", "after"})
    if unknown:
        raise UsageError(
            f"{unknown[0]}: not a filter of GET /webhooks/deliveries (job, state, limit, after)"
        )
    job = whole_number(query["job"], "job", MAX_JOB_ID) if "job" in query else None
    limit = whole_number(query.get("limit", str(LIST_LIMIT)), "limit", MAX_LIST_LIMIT)
    before = whole_number(query["after"], "after", MAX_JOB_ID) if "after" in query else None
    state = query.get("state")

    def page(store: Store) -> list[Any]:
        return webhooks.deliveries(store, job, state, limit + 1, before)

    found = await server_of(request).read(page)
    more = len(found) > limit
    del found[limit:]
    return JSONResponse(
        {
            "deliveries": [webhooks.delivery_dict(d) for d in found],
            "next": str(found[-1].id) if more else None,
        }
    )


async def get_delivery(request: Request) -> Response:
    wanted = delivery_id(request)
    found, attempts = await server_of(request).read(webhooks.delivery, wanted)
    return JSONResponse(webhooks.delivery_dict(found, attempts))


async def redeliver(request: Request) -> Response:
    wanted = delivery_id(request)

    def do(store: Store) -> Any:
        return webhooks.redeliver(store, wanted, clock.now())

    try:
        found = await server_of(request).write(do)
    except webhooks.BeingSent as exc:
        raise Problem(str(exc), 409) from None
    return JSONResponse(webhooks.delivery_dict(found), status_code=202)


async def enable(request: Request) -> Response:
    url = await url_of(request)
    server = server_of(request)
    enabled = await server.write(lambda store: webhooks.enable(server.config, store, url))
    return JSONResponse({"url": url, "enabled": True, "was_disabled": enabled})


async def test(request: Request) -> Response:
    """A signed webhook.test to one of the configured endpoints. Only those: any other
    URL would make the server a tool for reaching hosts on a caller's behalf."""
    url = await url_of(request)
    server = server_of(request)
    settings = webhooks.webhooks_of(server.config)
    if url not in {e.url for e in settings.endpoints}:
        raise Problem(
            "url: not a [[webhooks.endpoints]] url; over HTTP only configured endpoints "
            "are tested (the CLI's `webhooks test` takes any)",
            403,
        )
    attempt = await webhooks.send_test(server.config, url, clock.now())
    return JSONResponse(
        {
            "outcome": attempt.outcome,
            "status": attempt.status,
            "error": attempt.error,
            "body": attempt.body,
            "duration": round(attempt.duration, 6),
        }
    )


routes = [
    Route("/webhooks", list_endpoints, methods=["GET"]),
    Route("/webhooks/deliveries", list_deliveries, methods=["GET"]),
    Route("/webhooks/deliveries/{id}", get_delivery, methods=["GET"]),
    Route("/webhooks/deliveries/{id}/redeliver", redeliver, methods=["POST"]),
    Route("/webhooks/enable", enable, methods=["POST"]),
    Route("/webhooks/test", test, methods=["POST"]),
]
