"""The Python client over HTTP: `Client("http://HOST:PORT", token=...)` (docs/http.md).

The same methods as the local Client (submit, submit_many, get, wait, list, cancel,
retry), the same return types, and the same exceptions: a server's problem details
(RFC 9457) become UsageError (400, 413, 415), JobNotFound (404), StoreUnavailable (503,
or the server cannot be reached) — so an application moves from a database file to a
server by changing one string. Checking a job's task is the server's (its allow list and
its config); this side checks only what it must to build the request.
"""

from __future__ import annotations

import builtins  # `list` is also a method of HttpClient
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from jobrunner import clock
from jobrunner.client import JobHandle
from jobrunner.client_checks import check_signature, seconds, task_reference, timestamp
from jobrunner.errors import JobNotFound, JobrunnerError, StoreUnavailable, UsageError
from jobrunner.lifecycle import FINAL, State
from jobrunner.models import Job, iso
from jobrunner.ops.control import Cancellation, CancelOutcome

LONG_POLL = 25.0  # seconds a single GET /jobs/ID?wait= asks for (under proxies' timeouts)
POLL_BACKOFF = (0.05, 1.0)  # a wait that came back early sleeps from 50 ms up to 1 s
CANCEL_WAIT = 30.0  # how long cancel(wait=True) waits for a running job to stop
PAGE = 1000  # jobs asked for per GET /jobs page

# Client.prepare's options, and how each is sent in the POST /jobs body
PASS_THROUGH = ("command", "queue", "priority", "retries", "key", "memory_limit", "nice")
DURATIONS = ("delay", "backoff", "timeout", "cpu_limit")
OPTIONS = frozenset((*PASS_THROUGH, *DURATIONS, "at", "check"))


class Refused(JobrunnerError):
    """The server refused the request: no or a wrong token (401), or a task or command it
    does not let run over HTTP (403)."""

    exit_code = 2

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.status = status


class ServerError(JobrunnerError):
    """The server failed (a 5xx other than 503); its log says more."""


class ServerUnreachable(StoreUnavailable):
    """The server could not be reached, or did not answer in time. Retryable."""


def raise_for_problem(res: httpx.Response) -> None:
    """The local Client's exception for a problem-details response; nothing for 2xx."""
    if res.status_code < 400:
        return
    detail = f"HTTP {res.status_code}"
    try:
        body = res.json()
        if isinstance(body, dict) and isinstance(body.get("detail"), str):
            detail = body["detail"]
    except ValueError:
        pass
    status = res.status_code
    if status == 404:
        raise JobNotFound(detail)
    if status in (401, 403):
        raise Refused(detail, status)
    if status == 503:
        raise StoreUnavailable(detail)
    if status >= 500:
        raise ServerError(f"{detail} (HTTP {status})")
    raise UsageError(detail)


def job_from_dict(d: dict[str, Any]) -> Job:
    """A Job from its JSON record (`status ID --json`). The record leaves out a few
    fields of the stored row: `retries` is read from `max_attempts`, `backoff` is 0,
    and `options` holds only `manual`."""
    return Job(
        id=d["id"],
        state=State(d["state"]),
        task=d.get("task"),
        command=d.get("command"),
        args=d.get("args") or [],
        kwargs=d.get("kwargs") or {},
        queue=d["queue"],
        priority=d.get("priority", 0),
        attempts=d.get("attempts", 0),
        max_attempts=d.get("max_attempts", 1),
        retries=max(0, d.get("max_attempts", 1) - 1),
        backoff=0.0,
        timeout=d.get("timeout"),
        result=d.get("result"),
        error=d.get("error"),
        created_at=d["created_at_epoch"],
        run_at=d["run_at_epoch"],
        started_at=d.get("started_at_epoch"),
        finished_at=d.get("finished_at_epoch"),
        key=d.get("key"),
        schedule=d.get("schedule"),
        scheduled_for=d.get("scheduled_for_epoch"),
        owner=d.get("owner"),
        cancel_requested=bool(d.get("cancel_requested")),
        options={"manual": True} if d.get("manual") else {},
        progress=d.get("progress"),
        progress_message=d.get("progress_message"),
        damage=d.get("damage"),
    )


def job_body(
    task: str | Callable[..., Any] | None,
    args: Sequence[Any],
    kwargs: dict[str, Any] | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The POST /jobs body for one job, as Client.submit takes it."""
    unknown = set(options) - OPTIONS
    if unknown:
        raise TypeError(f"submit() got unexpected keyword argument(s) {sorted(unknown)}")
    if callable(task):
        if options.get("check", True):
            check_signature(task, args, kwargs or {})
        task = task_reference(task)
    if (task is None) == (options.get("command") is None):
        raise UsageError("give exactly one of task or command")
    if isinstance(args, str) or not isinstance(args, Sequence):
        raise UsageError(f"args: expected a list, got {args!r}")
    body: dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs or {})}
    if task is not None:
        body["task"] = task
    for name in PASS_THROUGH:
        if options.get(name) is not None:
            value = options[name]
            body[name] = list(value) if name == "command" else value
    for name in DURATIONS:
        value = seconds(name, options.get(name))
        if value is not None:
            body[name] = value
    if options.get("at") is not None:
        body["at"] = iso(timestamp(options["at"]))
    return body


class HttpClient:
    """Submits and inspects jobs through a jobrunner server (`jobrunner serve`).

    `url`: the server, e.g. http://127.0.0.1:8765; `token`: its [http] token, sent as
    `Authorization: Bearer` (default: JOBRUNNER_TOKEN). `timeout`: seconds for one
    request (a long poll asks for LONG_POLL more). `config` is taken for the local
    Client's signature and not used: the server's config decides."""

    def __init__(
        self, url: str, config: Any = None, token: str | None = None, timeout: float = 30.0
    ) -> None:
        import os

        token = token if token is not None else os.environ.get("JOBRUNNER_TOKEN") or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __repr__(self) -> str:  # never the token
        return f"Client({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            res = self._http.request(
                method, path, timeout=timeout if timeout is not None else self.timeout, **kwargs
            )
        except httpx.TimeoutException:
            raise ServerUnreachable(f"{self.url}: no answer in time ({method} {path})") from None
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"{self.url}: cannot reach the server: {exc}") from None
        raise_for_problem(res)
        return res

    # -- submitting -----------------------------------------------------------------------

    def submit(
        self,
        task: str | Callable[..., Any] | None = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> JobHandle:
        """POST /jobs: one job; a handle (`created` False: its `key` named an earlier job,
        which the handle is)."""
        res = self._call("POST", "/jobs", json=job_body(task, args, kwargs, options))
        return JobHandle(self, res.json()["id"], created=res.status_code == 202)  # type: ignore[arg-type]

    def submit_many(
        self,
        task: str | Callable[..., Any] | None,
        calls: Sequence[Sequence[Any]],
        *,
        command: Sequence[str] | None = None,
        **options: Any,
    ) -> builtins.list[int]:
        """POST /jobs with an array: one job per entry of `calls` (each the job's args),
        in one transaction. Returns the ids in order."""
        if options.get("key") is not None:
            raise UsageError("submit_many takes no key: give each job its own with submit()")
        template = job_body(task, (), None, {**options, "command": command, "check": False})
        bodies = []
        for args in calls:
            if not isinstance(args, list | tuple):
                raise UsageError(f"submit_many: each call is a list of args, got {args!r}")
            if callable(task) and options.get("check", True):
                check_signature(task, args, {})
            bodies.append({**template, "args": list(args)})
        if not bodies:
            return []
        res = self._call("POST", "/jobs", json=bodies)
        return [record["id"] for record in res.json()]

    # -- inspecting -----------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        """GET /jobs/ID: the job as it is now; JobNotFound if there is none."""
        return job_from_dict(self._call("GET", f"/jobs/{_id(job_id)}").json())

    def wait(self, job_id: int, timeout: float | str | Any | None = None) -> Job:
        """The job once it has ended; TimeoutError if `timeout` passes first. Long polls
        GET /jobs/ID?wait=; a server that answers before the job ended and before the
        wait passed is asked again after a short pause (50 ms growing to 1 s)."""
        limit = seconds("timeout", timeout)
        deadline = None if limit is None else clock.monotonic() + limit
        pause = POLL_BACKOFF[0]
        while True:
            left = LONG_POLL if deadline is None else max(0.0, deadline - clock.monotonic())
            ask = min(left, LONG_POLL)
            asked_at = clock.monotonic()
            res = self._call(
                "GET",
                f"/jobs/{_id(job_id)}",
                params={"wait": f"{ask:.3f}s"},
                timeout=self.timeout + ask,
            )
            job = job_from_dict(res.json())
            if job.state in FINAL:
                return job
            now = clock.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {limit or 0:g}s")
            if now - asked_at < ask * 0.9:  # back early, not ended: no long poll there
                time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - now)))
                pause = min(pause * 2, POLL_BACKOFF[1])

    def list(
        self, state: State | str | None = None, queue: str | None = None, limit: int = 50
    ) -> list[Job]:
        """GET /jobs: jobs, newest first, of one state and queue if given."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise UsageError(f"limit: expected a whole number >= 1, got {limit!r}")
        params: dict[str, Any] = {}
        if state is not None:
            params["state"] = str(state)
        if queue is not None:
            params["queue"] = queue
        jobs: list[Job] = []
        while len(jobs) < limit:
            params["limit"] = min(PAGE, limit - len(jobs))
            page = self._call("GET", "/jobs", params=params).json()
            jobs += [job_from_dict(d) for d in page["jobs"]]
            if not page.get("next") or not page["jobs"]:
                break
            params["after"] = page["next"]
        return jobs[:limit]

    # -- controlling ----------------------------------------------------------------------

    def cancel(self, job_id: int, wait: bool = True) -> Cancellation:
        """POST /jobs/ID/cancel, as the local Client.cancel: a waiting job is cancelled at
        once; for a running one, with `wait`, this returns once it stopped (or after
        CANCEL_WAIT seconds: outcome `requested`)."""
        before = self.get(job_id).state  # an ended job is left alone: tell it apart
        if before in FINAL:
            return Cancellation(CancelOutcome.ALREADY_ENDED, before)
        job = job_from_dict(self._call("POST", f"/jobs/{_id(job_id)}/cancel").json())
        if job.state is State.RUNNING and wait:
            with contextlib.suppress(TimeoutError):
                job = self.wait(job_id, CANCEL_WAIT)
        if job.state is State.CANCELLED:
            return Cancellation(CancelOutcome.CANCELLED, job.state)
        if job.state in FINAL:
            return Cancellation(CancelOutcome.ALREADY_ENDED, job.state)
        return Cancellation(CancelOutcome.REQUESTED, job.state)

    def retry(self, *job_ids: int, all_dead: bool = False) -> builtins.list[int]:
        """POST /jobs/ID/retry for each job named, in order: a fresh round of attempts.
        Unlike the local Client, one request per job: a job that is unknown (JobNotFound)
        or not dead (UsageError) stops the calls there, after the ones before it moved.
        `all_dead` is not offered over HTTP."""
        if all_dead:
            raise UsageError("retry: all_dead is not offered over HTTP; name the job ids")
        if not job_ids:
            raise UsageError("retry: name job ids")
        for i in job_ids:
            _id(i)
        for i in job_ids:
            self._call("POST", f"/jobs/{i}/retry")
        return list(job_ids)


def _id(job_id: int) -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise UsageError(f"job id: expected a whole number, got {job_id!r}")
    return job_id
