"""/jobs: get (and long poll), list, cancel, retry, logs, status. Submitting: submit.py."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectSendStream
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from jobrunner import clock, ops
from jobrunner.errors import JobNotFound, JobrunnerError, UsageError
from jobrunner.http import live
from jobrunner.http.problems import Problem
from jobrunner.http.state import ServerState, server_of
from jobrunner.lifecycle import FINAL, parse_states
from jobrunner.models import Job
from jobrunner.store import open_store
from jobrunner.store.base import Store

log = logging.getLogger("jobrunner.http")
LIST_LIMIT = 50  # jobs on a page of GET /jobs, unless ?limit=
MAX_LIST_LIMIT = 1000
MAX_JOB_ID = 2**63 - 1  # SQLite's largest rowid


def job_id(request: Request) -> int:
    text = request.path_params["id"]
    if not text.isdigit() or not 0 < int(text) < 1 << 63:
        raise UsageError(f"job id: expected a whole number, got {text!r}")
    return int(text)


def whole_number(text: str, where: str, most: int) -> int:
    """A positive whole number in a query parameter, up to `most`; UsageError otherwise."""
    if not text.isdigit() or int(text) == 0:
        raise UsageError(f"{where}: expected a positive whole number, got {text!r}")
    if int(text) > most:
        raise UsageError(f"{where}: at most {most}, got {text}")
    return int(text)


def states(text: str) -> list[str]:
    """?state=: one state, or several separated by commas (as `list --state`)."""
    try:
        return parse_states(text)
    except ValueError as exc:
        raise UsageError(f"state: {exc}") from None


async def get_job(request: Request) -> Response:
    """The record; `?wait=DUR` holds the request until the job ends or DUR passes (a long
    poll, woken by the event feed: live.wait_for_end)."""
    state = server_of(request)
    wait = request.query_params.get("wait")
    if wait is not None:
        from jobrunner.durations import parse_duration

        timeout = parse_duration(wait, "wait")
        job = await live.wait_for_end(state, job_id(request), timeout)
        return JSONResponse(job.to_dict())
    # one row by its key, and the jobs it runs after (an index search)
    job = state.read_now(ops.get_job, job_id(request))
    return JSONResponse(state.read_now(ops.job_record, job))


async def list_jobs(request: Request) -> Response:
    """The newest jobs first, a page at a time: `next` is the cursor of the page after
    (`?after=`), null on the last. A cursor names the last job shown, so a page stays
    the same while jobs are added (they come before the first page)."""
    query = request.query_params
    unknown = sorted(set(query) - {"state", "queue", "task", "limit", "after"})
    if unknown:
        raise UsageError(
            f"{unknown[0]}: not a filter of GET /jobs (state, queue, task, limit, after)"
        )
    wanted = states(query["state"]) if "state" in query else None
    limit = whole_number(query.get("limit", str(LIST_LIMIT)), "limit", MAX_LIST_LIMIT)
    after = query.get("after")
    before = None
    if after is not None:
        if not after.isdigit() or not 0 < int(after) <= MAX_JOB_ID:
            raise UsageError(f"after: expected the cursor a page's next gave, got {after!r}")
        before = int(after)

    def page(store: Store) -> list[Job]:
        # one more than shown: whether a page follows, without counting
        return store.job_list(wanted, query.get("queue"), limit + 1, query.get("task"), before)

    jobs = await server_of(request).read(page)
    more = len(jobs) > limit
    del jobs[limit:]
    cursor = str(jobs[-1].id) if more else None
    return JSONResponse({"jobs": [j.to_dict() for j in jobs], "next": cursor})


async def cancel(request: Request) -> Response:
    """As `cancel ID`, without waiting for the kill: a job waiting is cancelled, one
    running is told to stop (`cancel_requested`); the record either way. 409 if it had
    ended."""
    from jobrunner.ops import control

    wanted = job_id(request)

    def do(store: Store) -> tuple[control.Cancellation, Job]:
        done = control.cancel(store, wanted, clock.now())
        return done, ops.get_job(store, wanted)

    done, job = await server_of(request).write(do)
    if done.outcome is control.CancelOutcome.ALREADY_ENDED:
        raise Problem(f"job {wanted} already ended {done.state}; nothing to cancel", 409)
    return JSONResponse(job.to_dict())


async def retry(request: Request) -> Response:
    """As `dlq retry ID`: a dead job queued again with a fresh round of attempts; the
    record. 409 if it is not dead."""
    from jobrunner.ops import control

    wanted = job_id(request)

    def do(store: Store) -> tuple[control.RetryResult, Job | None]:
        retried = control.retry(store, [wanted], clock.now())
        return retried, store.job_get(wanted)

    retried, job = await server_of(request).write(do)
    if retried.unknown or job is None:
        raise JobNotFound(f"no job with id {wanted}")
    if wanted in retried.not_dead:
        raise Problem(
            f"job {wanted} is {retried.not_dead[wanted]}, not in the dead-letter queue", 409
        )
    return JSONResponse(job.to_dict())


async def status(request: Request) -> Response:
    """The status poll: state, progress and its message, the error, and the result
    once the job has ended (a smaller answer than the record)."""
    job = await server_of(request).read(ops.get_job, job_id(request))
    body: dict[str, Any] = {
        "id": job.id,
        "state": str(job.state),
        "progress": job.progress,
        "message": job.progress_message,
        "error": job.error,
    }
    if job.state in FINAL:
        body["result"] = job.result
    return JSONResponse(body)


async def logs(request: Request) -> Response:
    """The job's output as text; `?follow=1` streams it while the job runs, ending once
    it has ended and everything it wrote was sent."""
    state = server_of(request)
    wanted = job_id(request)
    follow = request.query_params.get("follow", "0")
    if follow not in ("0", "1", "true", "false"):
        raise UsageError(f"follow: expected 1 or 0, got {follow!r}")
    await state.read(ops.get_job, wanted)  # 404 before anything is sent
    if follow in ("1", "true"):
        return StreamingResponse(followed(state, wanted), media_type="text/plain")

    def read_all(store: Store) -> bytes:
        output, offset, chunks = store.output(), 0, []
        while chunk := output.read(wanted, offset):  # the log, then a running attempt's
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    return Response(await state.read(read_all), media_type="text/plain")


async def followed(state: ServerState, wanted: int) -> AsyncIterator[bytes]:
    """The job's output as it comes, from a thread of its own (it sleeps on the feed and
    on new output: ops.waiting.follow_output) with a store of its own. A client that goes
    away ends the stream; the thread sees it at its next chunk or within STOP_POLL."""
    send, receive = anyio.create_memory_object_stream[bytes](16)
    stop = threading.Event()
    token = anyio.lowlevel.current_token()
    thread = threading.Thread(
        target=follow_in_thread,
        args=(state, wanted, send, stop, token),
        name=f"logs-follow-{wanted}",
        daemon=True,  # a stream still open when the server stops does not hold it up
    )
    thread.start()
    try:
        async with receive:
            async for chunk in receive:
                yield chunk
    finally:
        stop.set()


def follow_in_thread(
    state: ServerState,
    wanted: int,
    send: MemoryObjectSendStream[bytes],
    stop: threading.Event,
    token: anyio.lowlevel.EventLoopToken,
) -> None:
    from jobrunner.ops.waiting import follow_output

    def write(chunk: bytes) -> None:
        anyio.from_thread.run(send.send, chunk, token=token)

    store = open_store(
        state.db_path,
        create=False,
        synchronous=state.config.synchronous,
        listen=state.config.postgres.listen,
    )
    try:
        follow_output(store, wanted, write, stop)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError):
        pass  # the client went away, or the server is stopping
    except JobrunnerError as exc:  # deleted meanwhile, the database gone: the stream ends
        log.warning("logs of job %d: %s", wanted, exc)
    finally:
        store.close()
        with contextlib.suppress(RuntimeError):  # the event loop has ended
            anyio.from_thread.run_sync(send.close, token=token)


routes = [
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{id}", get_job, methods=["GET"]),
    Route("/jobs/{id}/cancel", cancel, methods=["POST"]),
    Route("/jobs/{id}/retry", retry, methods=["POST"]),
    Route("/jobs/{id}/logs", logs, methods=["GET"]),
    Route("/jobs/{id}/status", status, methods=["GET"]),
]
