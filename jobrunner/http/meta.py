"""/healthz, /readyz, /metrics, /openapi.json and /schedules."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def healthz(request: Request) -> Response:
    """Liveness: the server answers. (Readiness, /readyz, also asks the database.)"""
    return JSONResponse({"ok": True})


routes = [Route("/healthz", healthz, methods=["GET"])]
