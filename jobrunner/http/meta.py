"""/healthz, /readyz, /metrics, /openapi.json and /schedules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobrunner import clock
from jobrunner.errors import UsageError
from jobrunner.http.problems import Problem
from jobrunner.http.state import server_of
from jobrunner.lifecycle import State
from jobrunner.models import DaemonInfo
from jobrunner.store.base import Store


async def healthz(request: Request) -> Response:
    """Liveness: the server answers. (Readiness, /readyz, also asks the database.)"""
    return JSONResponse({"ok": True})


async def readyz(request: Request) -> Response:
    """Readiness: the database answers a read and a daemon is alive to run what is
    submitted; else 503 saying which is missing."""
    from jobrunner.ops.daemons import why_dead

    state = server_of(request)

    def look(store: Store) -> tuple[str | None, list[DaemonInfo]]:
        maintenance = store.maintenance()
        moved = maintenance.moved() if maintenance is not None else None
        store.events_last_seq()
        return moved, store.daemon_list()

    try:
        moved, daemons = await state.read(look)
    except Exception as exc:  # whatever it is, the database cannot be read: not ready
        said = " ".join(str(exc).split()) or type(exc).__name__
        raise Problem(f"the database {state.db_path} cannot be read: {said}", 503) from None
    if moved is not None:  # the server's connections still read the file that was there
        raise Problem(f"the database {state.db_path} was {moved} after the server opened it", 503)
    now = clock.now()
    dead = [why for d in daemons if (why := why_dead(d, now)) is not None]
    if len(dead) == len(daemons):
        seen = f" ({len(dead)} registered: {', '.join(sorted(set(dead)))})" if dead else ""
        raise Problem(f"no daemon is alive to run jobs{seen}", 503)
    return JSONResponse({"ok": True, "daemons": len(daemons) - len(dead)})


# -- /schedules: as `jobrunner schedules list --json|run|pause|resume` -----------------


def schedule_name(request: Request) -> str:
    """The schedule in the path; 404 if the config has none of that name."""
    from jobrunner.ops.schedules import find_schedule

    name: str = request.path_params["name"]
    try:
        find_schedule(server_of(request).config, name)
    except UsageError as exc:
        raise Problem(str(exc), 404) from None
    return name


async def list_schedules(request: Request) -> Response:
    from jobrunner.ops import schedules

    state = server_of(request)
    rows = await state.read(schedules.listing, state.config, clock.now())
    return JSONResponse(rows)


async def run_schedule(request: Request) -> Response:
    """Fire the schedule once now (a job marked manual): the job's record."""
    from jobrunner import ops
    from jobrunner.ops import schedules

    state = server_of(request)
    name = schedule_name(request)

    def fire(store: Store) -> dict[str, Any]:
        job_id = schedules.run(store, state.config, name, clock.now())
        return ops.get_job(store, job_id).to_dict()

    record = await state.write(fire)
    return JSONResponse(record, headers={"Location": f"/jobs/{record['id']}"})


async def pause_schedule(request: Request) -> Response:
    return await set_paused(request, True)


async def resume_schedule(request: Request) -> Response:
    return await set_paused(request, False)


async def set_paused(request: Request, paused: bool) -> Response:
    """Pause or resume: the schedule's row as GET /schedules shows it after."""
    from jobrunner.ops import schedules

    state = server_of(request)
    name = schedule_name(request)

    def change(store: Store) -> dict[str, Any]:
        now = clock.now()
        (schedules.pause if paused else schedules.resume)(store, state.config, name, now)
        return next(r for r in schedules.listing(store, state.config, now) if r["name"] == name)

    return JSONResponse(await state.write(change))


# -- /metrics: Prometheus text format -------------------------------------------------


class Metrics:
    """One registry per app: the requests it answered (counted as they go), and what
    the database holds, read at each scrape (a snapshot taken just before rendering)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter

        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "jobrunner_http_requests",
            "HTTP requests answered, by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.snapshot: tuple[dict[tuple[str, str], int], int, int, int] = ({}, 0, 0, 0)
        self.deliveries: dict[str, int] = {}
        self.throttled: dict[str, bool] = {}  # each rated queue of the server's config
        self.registry.register(self)  # collect() is what a collector needs

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        counts, alive, registered, last_seq = self.snapshot
        jobs = GaugeMetricFamily(
            "jobrunner_jobs", "Jobs in the database, by state and queue", labels=["state", "queue"]
        )
        for queue in sorted({q for _, q in counts}):  # every state of each queue, 0 too
            for state in State:
                jobs.add_metric([state.value, queue], counts.get((state.value, queue), 0))
        yield jobs
        yield GaugeMetricFamily(
            "jobrunner_daemons_alive", "Daemons alive (registered and not presumed dead)", alive
        )
        yield GaugeMetricFamily(
            "jobrunner_daemons_registered", "Daemons registered, alive or not", registered
        )
        yield GaugeMetricFamily(
            "jobrunner_events_last_seq", "The newest event's sequence number", last_seq
        )
        deliveries = GaugeMetricFamily(
            "jobrunner_webhook_deliveries",
            "Webhook deliveries in the database, by state (pending, delivered, failed)",
            labels=["state"],
        )
        for outcome in ("pending", "delivered", "failed"):
            deliveries.add_metric([outcome], self.deliveries.get(outcome, 0))
        yield deliveries
        throttled = GaugeMetricFamily(
            "jobrunner_queue_throttled",
            "1 while a rated queue's window is used up and jobs of it wait, else 0",
            labels=["queue"],
        )
        for queue, held in sorted(self.throttled.items()):
            throttled.add_metric([queue], 1 if held else 0)
        yield throttled

    async def render(self, request: Request) -> bytes:
        from prometheus_client import generate_latest

        from jobrunner.ops import queues
        from jobrunner.ops.daemons import alive

        config = server_of(request).config

        def look(store: Store) -> tuple[Any, dict[str, int], dict[str, bool]]:
            now = clock.now()
            daemons = store.daemon_list()
            live = len(alive(daemons, now))
            counts = store.job_counts()
            jobs = (counts, live, len(daemons), store.events_last_seq())
            throttled = queues.throttled(store, config, counts, now)
            held = {q: q in throttled for q in config.queue_rate}
            return jobs, store.webhook_counts(), held

        snapshot, deliveries, held = await server_of(request).read(look)
        # no await from here to the render: no other scrape between
        self.snapshot, self.deliveries, self.throttled = snapshot, deliveries, held
        return generate_latest(self.registry)


async def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    registry: Metrics = request.app.state.metrics
    return Response(await registry.render(request), media_type=CONTENT_TYPE_LATEST)


class CountRequests:
    """Counts each answered request by method, route (its template, never the path
    asked: the labels stay few) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            metrics: Metrics = scope["app"].state.metrics
            metrics.requests.labels(scope["method"], path, str(status[0])).inc()


def install(app: Starlette) -> None:
    """What /metrics needs of the app: its registry, and the request count."""
    app.state.metrics = Metrics()
    app.add_middleware(CountRequests)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/schedules", list_schedules, methods=["GET"]),
    Route("/schedules/{name}/run", run_schedule, methods=["POST"]),
    Route("/schedules/{name}/pause", pause_schedule, methods=["POST"]),
    Route("/schedules/{name}/resume", resume_schedule, methods=["POST"]),
]
