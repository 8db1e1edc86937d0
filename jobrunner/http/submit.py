"""POST /jobs: one job (an object) or many (an array, one transaction).

The body is a `submit --file` line (jobrunner/jobspec.py), or an array of them. Every
check comes before anything is written: the content type (415), the size (413, from
Content-Length and again while reading), the JSON, what may run over HTTP (403,
security.py), each job (400). Then the jobs join the group commit (commit.py) and the
answer is sent once they are committed."""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobrunner.errors import UsageError
from jobrunner.http.problems import TooLarge, UnsupportedMediaType
from jobrunner.http.security import check_allowed
from jobrunner.http.state import ServerState, server_of
from jobrunner.jobspec import job_from_object
from jobrunner.models import JobInsert
from jobrunner.store.dependencies import UnknownDependency

MAX_BATCH = 10_000  # jobs in one request
RETRY_AFTER = "1"  # seconds before a first poll of the job is worth making
# arrays at least this long are checked in a worker thread, not on the event loop
THREAD_BATCH = 64


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused before it is read when it says it is too long (Content-Length),
    and while it is read when it turns out to be (chunked)."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json":
        raise UnsupportedMediaType(f"Content-Type: expected application/json, got {kind!r}")
    too_large = f"body: larger than {limit} bytes ([http] max_body)"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise TooLarge(too_large)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # ValueError: also bytes not UTF-8
        raise UsageError(f"body: malformed JSON: {exc}") from None


def with_header_key(obj: Any, header: str | None) -> Any:
    """The job object with the Idempotency-Key header's key (the same as a body `key`)."""
    if header is None:
        return obj
    if isinstance(obj, list):
        raise UsageError("Idempotency-Key: a batch takes a key per job, as each job's key")
    if isinstance(obj, dict):
        if obj.get("key") not in (None, header):
            raise UsageError("Idempotency-Key: differs from the body's key; give one")
        return {**obj, "key": header}
    return obj


def check_jobs(state: ServerState, items: list[Any], batch: bool) -> list[JobInsert]:
    """Every job checked, or the first refusal: 403 for what may not run over HTTP
    (before anything else, whatever the other jobs hold), else 400."""
    places = [f"body[{i}]: " if batch else "body: " for i in range(len(items))]
    for item, where in zip(items, places, strict=True):
        check_allowed(state.config, item, where)
    not_object = "expected a JSON object (one job)" + ("" if batch else " or an array of them")
    jobs = []
    for item, where in zip(items, places, strict=True):
        jobs.append(job_from_object(state.client, item, where, True, not_object, hint=""))
    return jobs


def wants_minimal(request: Request) -> bool:
    """Whether the request says `Prefer: return=minimal` (RFC 7240): answer with each
    job's id and whether it was created, not its whole record (a batch's answer is then
    a tenth of the size, and nothing is read back)."""
    for header in request.headers.getlist("prefer"):
        for preference in header.split(","):
            name, _, value = preference.partition(";")[0].partition("=")
            if name.strip().lower() == "return" and value.strip().strip('"').lower() == "minimal":
                return True
    return False


async def submit(request: Request) -> Response:
    """One job (an object): 202 with the record, Location and Retry-After; a key already
    used: 200 with the first job's record. An array: 202 with a list of records. With
    `Prefer: return=minimal`, `{"id", "created"}` in place of each record."""
    state = server_of(request)
    limit = state.config.http.max_body if state.config.http is not None else 1 << 20
    body = with_header_key(
        parse_body(await read_body(request, limit)), request.headers.get("idempotency-key")
    )
    batch = isinstance(body, list)
    items = body if batch else [body]
    if len(items) > MAX_BATCH:
        raise TooLarge(f"body: {len(items)} jobs; at most {MAX_BATCH} in one request")
    if len(items) >= THREAD_BATCH:
        jobs = await anyio.to_thread.run_sync(check_jobs, state, items, batch)
    else:
        jobs = check_jobs(state, items, batch)
    minimal = wants_minimal(request)
    try:
        results, found = await state.group_commit.submit(jobs, not minimal) if jobs else ([], {})
    except UnknownDependency as exc:  # found in the transaction: say which job
        where = f"body[{exc.index}]" if batch else "body"
        raise UsageError(f"{where}: {exc}") from None
    headers = {"Retry-After": RETRY_AFTER}
    if minimal:
        headers["Preference-Applied"] = "return=minimal"
        answers = [{"id": r.id, "created": r.created} for r in results]
    else:
        answers = [found[r.id] for r in results]
    if batch:
        return JSONResponse(answers, status_code=202, headers=headers)
    (result,) = results
    headers["Location"] = f"/jobs/{result.id}"
    return JSONResponse(answers[0], status_code=202 if result.created else 200, headers=headers)


routes = [Route("/jobs", submit, methods=["POST"])]
