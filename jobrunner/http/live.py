"""/events (Server-Sent Events) and /ws (WebSocket) from the event feed, and the waits
other endpoints make on it (a long poll of GET /jobs/ID?wait=).

Every live reader takes its events from the feed hub (hub.py): it subscribes first, then
reads from the store what came before its starting point, then goes on with the hub's
batches, dropping what it already sent (seq <= the last it sent). So a resume misses
nothing and repeats nothing, and no reader polls.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from jobrunner import clock, ops
from jobrunner.errors import JobrunnerError, UsageError
from jobrunner.http.hub import BATCH, CLOSED, KEEPALIVE, LAGGED, Subscription
from jobrunner.http.problems import TooLarge, status_of
from jobrunner.http.settings import DEFAULT_MAX_BODY
from jobrunner.http.state import ServerState, server_of
from jobrunner.lifecycle import EVENT_TYPES, FINAL
from jobrunner.models import Event, Job
from jobrunner.store.base import Store

MAX_WAIT = 60.0  # seconds a long poll may hold a request (a longer ?wait= is cut to this)
AUTH_WAIT = 10.0  # seconds a WebSocket without the token in its header has to send it
KNOWN_TYPES = frozenset({*EVENT_TYPES.values(), "job.rescued", "job.progress"})


# -- the long poll ----------------------------------------------------------------------


async def wait_for_end(state: ServerState, job_id: int, timeout: float) -> Job:
    """The job once it has ended, or as it is when `timeout` seconds (at most MAX_WAIT)
    passed. Woken by the hub when the job has a new event; its row is read only then."""
    deadline = clock.monotonic() + min(max(timeout, 0.0), MAX_WAIT)
    with state.hub.subscribe(jobs={job_id}) as sub:
        job = await state.read(ops.get_job, job_id)  # after subscribing: nothing slips by
        while job.state not in FINAL:
            left = deadline - clock.monotonic()
            if left <= 0:
                break
            item = await sub.get(left)
            if item is None:
                break
            if item is CLOSED:
                break
            if item is LAGGED or isinstance(item, list):
                job = await state.read(ops.get_job, job_id)
        return job


# -- filters ----------------------------------------------------------------------------


class Filter:
    """Which events a reader wants: of some jobs, of some types, of jobs in some queues
    (a job's queue is read once and remembered by the hub)."""

    def __init__(
        self, jobs: set[int] | None, types: set[str] | None, queues: set[str] | None
    ) -> None:
        self.jobs = jobs
        self.types = types
        self.queues = queues

    async def select(self, state: ServerState, events: list[Event]) -> list[Event]:
        chosen = [
            e
            for e in events
            if (self.jobs is None or e.job_id in self.jobs)
            and (self.types is None or e.type in self.types)
        ]
        if self.queues is None or not chosen:
            return chosen
        known = state.hub.queues
        missing = {e.job_id for e in chosen if e.job_id not in known}
        if missing:
            found = await state.read(queues_of, sorted(missing))
            state.hub.remember_queues(found)
        return [e for e in chosen if known.get(e.job_id) in self.queues]


def queues_of(store: Store, job_ids: list[int]) -> list[tuple[int, str]]:
    """The queue of each of the jobs that still exist."""
    found = []
    for job_id in job_ids:
        job = store.job_get(job_id)
        if job is not None:
            found.append((job_id, job.queue))
    return found


def split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return parts or None


def parse_seq(text: str, where: str) -> int:
    text = text.strip()
    if not text.isdigit() or int(text) >= 1 << 63:
        raise UsageError(f"{where}: expected an event sequence number, got {text!r}")
    return int(text)


def parse_filter(request: Request) -> Filter:
    params = request.query_params
    jobs = split(params.get("job"))
    types = split(params.get("type"))
    for name in types or []:
        if name not in KNOWN_TYPES:
            raise UsageError(
                f"type: unknown event type {name!r}; known: {', '.join(sorted(KNOWN_TYPES))}"
            )
    queues = split(params.get("queue"))
    job_ids = None
    if jobs is not None:
        job_ids = set()
        for text in jobs:
            if not text.isdigit() or not 0 < int(text) < 1 << 63:
                raise UsageError(f"job: expected a job id, got {text!r}")
            job_ids.add(int(text))
    return Filter(
        job_ids,
        set(types) if types is not None else None,
        set(queues) if queues is not None else None,
    )


# -- Server-Sent Events -----------------------------------------------------------------


def sse(event: Event) -> str:
    data = json.dumps(event.to_dict(), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n"


def events_after(store: Store, seq: int, job_id: int | None) -> list[Event]:
    return store.events_after(seq, job_id, BATCH)


async def read_after(
    state: ServerState, seq: int, jobs: set[int] | None
) -> AsyncIterator[list[Event]]:
    """The stored events after `seq` (of `jobs`, when it is one job: its own index), a
    batch at a time, up to the newest."""
    one = next(iter(jobs)) if jobs is not None and len(jobs) == 1 else None
    while True:
        batch = await state.read(events_after, seq, one)
        if batch:
            seq = batch[-1].seq
            yield batch
        if len(batch) < BATCH:
            return


async def event_stream(
    state: ServerState, sub: Subscription, after: int, wanted: Filter
) -> AsyncIterator[str]:
    """The SSE body: a comment first (the stream is open and subscribed), the stored
    events after `after`, then the hub's, and a comment each keep-alive period."""
    try:
        yield ": jobrunner events\n\n"
        last = after
        behind = after < sub.start  # there are stored events to read first
        while True:
            if behind:
                async for batch in read_after(state, last, wanted.jobs):
                    chosen = await wanted.select(state, batch)
                    if chosen:
                        yield "".join(sse(e) for e in chosen)
                    last = batch[-1].seq
                behind = False
            item = await sub.get()
            if item is CLOSED:
                return
            if item is KEEPALIVE:
                yield ": keep-alive\n\n"
            elif item is LAGGED:
                behind = True
            elif isinstance(item, list):
                fresh = [e for e in item if e.seq > last]
                if fresh:
                    last = fresh[-1].seq
                    chosen = await wanted.select(state, fresh)
                    if chosen:
                        yield "".join(sse(e) for e in chosen)
    finally:
        sub.close()


async def events(request: Request) -> StreamingResponse:
    """GET /events: the feed as Server-Sent Events. Starts after `Last-Event-ID` (or
    `?after=SEQ`); without either, with `?job=`, at the job's first event, else at the
    next one committed."""
    state = server_of(request)
    wanted = parse_filter(request)
    resume = request.headers.get("last-event-id")
    after_text = request.query_params.get("after")
    after: int | None = None
    if resume is not None and resume.strip():
        after = parse_seq(resume, "Last-Event-ID")
    elif after_text is not None:
        after = parse_seq(after_text, "after")
    sub = state.hub.subscribe(jobs=wanted.jobs, keepalive=True)
    if after is None:
        after = 0 if wanted.jobs is not None else sub.start
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        event_stream(state, sub, after, wanted), media_type="text/event-stream", headers=headers
    )


# -- WebSocket --------------------------------------------------------------------------


async def submit_one(state: ServerState, body: dict[str, Any]) -> Job:
    """One job from a POST /jobs body, checked as POST /jobs checks it (the allow list
    first: 403) and written through the same group commit."""
    from jobrunner.http.submit import check_jobs

    (job,) = check_jobs(state, [body], batch=False)
    results, _ = await state.group_commit.submit([job], records=False)
    return await state.read(ops.get_job, results[0].id)


class Watcher:
    """One WebSocket's jobs: sends each watched job's events once, in order, then its
    final record (`{"type": "end", "job": RECORD}`), and stops watching it."""

    def __init__(self, state: ServerState, ws: WebSocket, sub: Subscription) -> None:
        self.state = state
        self.ws = ws
        self.sub = sub
        self.jobs: set[int] = set()
        sub.jobs = self.jobs  # the hub wakes this socket only for its jobs
        self.last: dict[int, int] = {}  # job id -> the last seq sent
        self.lock = anyio.Lock()  # a catch-up and the live batches never interleave

    async def watch(self, job_id: int) -> None:
        async with self.lock:
            self.jobs.add(job_id)  # before the read: later batches include this job
            self.last[job_id] = 0
            await self._catch_up(job_id)
            if job_id in self.jobs:
                job = await self.state.read(ops.get_job, job_id)
                if job.state in FINAL:  # ended before (its events may have been pruned)
                    await self._end(job)

    async def _catch_up(self, job_id: int) -> None:
        async for batch in read_after(self.state, self.last[job_id], {job_id}):
            await self._send(batch)
            if job_id not in self.jobs:
                return

    async def _send(self, events: list[Event]) -> None:
        for e in events:
            if e.job_id not in self.jobs or e.seq <= self.last[e.job_id]:
                continue
            self.last[e.job_id] = e.seq
            await self.ws.send_text(json.dumps(e.to_dict()))
            if e.state in FINAL:
                await self._end(await self.state.read(ops.get_job, e.job_id))

    async def _end(self, job: Job) -> None:
        self.jobs.discard(job.id)
        self.last.pop(job.id, None)
        await self.ws.send_json({"type": "end", "job": job.to_dict()})

    async def pump(self) -> None:
        """The hub's batches to the socket, until the server stops (or the client
        went: the reader sees that and ends the connection)."""
        try:
            await self._pump()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return

    async def _pump(self) -> None:
        while True:
            item = await self.sub.get()
            if item is CLOSED:
                await self.ws.close(1001)
                return
            async with self.lock:
                if item is LAGGED:
                    for job_id in list(self.jobs):
                        await self._catch_up(job_id)
                elif isinstance(item, list):
                    await self._send(item)


async def authorized(state: ServerState, ws: WebSocket) -> bool:
    """With a token: the Authorization header had it (app.TokenCheck), or the first
    message is `{"type": "auth", "token": TOKEN}` (within AUTH_WAIT seconds)."""
    if state.token is None or ws.scope.get("state", {}).get("authorized"):
        return True
    with anyio.move_on_after(AUTH_WAIT):
        try:
            message = json.loads(await ws.receive_text())
        except (ValueError, RecursionError, KeyError):
            return False
        given = message.get("token") if isinstance(message, dict) else None
        if (
            message.get("type") == "auth"
            and isinstance(given, str)
            and hmac.compare_digest(given.encode(), state.token.encode())
        ):
            await ws.send_json({"type": "auth", "ok": True})
            return True
    return False


async def handle(state: ServerState, watcher: Watcher, text: str) -> None:
    """One message from the client: submit, subscribe (or a repeated auth)."""
    limit = state.config.http.max_body if state.config.http is not None else DEFAULT_MAX_BODY
    if len(text) > limit:
        raise TooLarge(f"message: {len(text)} bytes, more than max_body ({limit})")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"message: malformed JSON: {exc}") from None
    if not isinstance(message, dict):
        raise UsageError("message: expected a JSON object")
    kind = message.pop("type", None)
    if kind == "submit":
        job = await submit_one(state, message)
        await watcher.ws.send_json({"type": "submitted", "job": job.to_dict()})
        await watcher.watch(job.id)
    elif kind == "subscribe":
        job_id = message.get("job")
        if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id <= 0:
            raise UsageError(f"job: expected a job id, got {job_id!r}")
        job = await state.read(ops.get_job, job_id)
        await watcher.ws.send_json({"type": "subscribed", "job": job.to_dict()})
        await watcher.watch(job_id)
    elif kind == "auth":
        await watcher.ws.send_json({"type": "auth", "ok": True})
    else:
        raise UsageError(f"type: expected submit or subscribe, got {kind!r}")


async def websocket(ws: WebSocket) -> None:
    """GET /ws: send `{"type": "submit", ...POST /jobs body}` or `{"type": "subscribe",
    "job": ID}`; receive the job's events (as SSE's data) and then its final record. A
    bad message gets `{"type": "error", "status", "detail"}`; the socket stays open."""
    state = server_of(ws)
    await ws.accept()
    try:
        ok = await authorized(state, ws)
    except WebSocketDisconnect:
        return
    if not ok:
        await ws.close(1008, "missing or wrong token")
        return
    with state.hub.subscribe(jobs=set()) as sub:
        watcher = Watcher(state, ws, sub)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watcher.pump)
            try:
                while True:
                    text = await ws.receive_text()
                    try:
                        await handle(state, watcher, text)
                    except JobrunnerError as exc:
                        detail = str(exc).replace("\n", " ")
                        await ws.send_json(
                            {"type": "error", "status": status_of(exc), "detail": detail}
                        )
            except (WebSocketDisconnect, KeyError):
                pass  # the client went away (KeyError: it sent bytes, not text)
            finally:
                tasks.cancel_scope.cancel()


routes: list[Any] = [
    Route("/events", events, methods=["GET"]),
    WebSocketRoute("/ws", websocket),
]
