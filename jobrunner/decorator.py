"""`@task` and `current_job()`: the decorator side of the Python API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from jobrunner.client import Client, JobHandle
from jobrunner.errors import UsageError
from jobrunner.jobspec import JOB_OPTIONS
from jobrunner.taskref import TaskCheckFailed

P = ParamSpec("P")
R = TypeVar("R")

# What `Task.options()` takes: Client.prepare's options for one job. The function's own
# keyword arguments go to `submit()`; keeping the two apart means a task may have a
# parameter named `key` or `delay`.
OPTION_NAMES = (*JOB_OPTIONS, "check")

_default_client: Client | None = None


def default_client() -> Client:
    global _default_client
    if _default_client is None:
        _default_client = Client()
    return _default_client


class Task(Generic[P, R]):
    """A function that can also be submitted as a job: `fn.submit(*args, **kwargs)`,
    with per-call options `fn.options(priority=3, delay="5m").submit(*args, **kwargs)`."""

    def __init__(
        self, fn: Callable[P, R], submit_options: dict[str, Any], client: Client | None
    ) -> None:
        functools.update_wrapper(self, fn)
        self.__wrapped_task__ = fn
        self.submit_options = submit_options
        self.client = client

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.__wrapped_task__(*args, **kwargs)

    def options(self, **options: Any) -> Task[P, R]:
        """This task with options for the jobs submitted through it, over the decorator's:
        queue, priority, delay, at, retries, backoff, timeout, key, memory_limit,
        cpu_limit, nice, check (as `Client.prepare`)."""
        unknown = sorted(set(options) - set(OPTION_NAMES))
        if unknown:
            raise UsageError(
                f"{self.__wrapped_task__.__name__}.options(): unknown option(s) {unknown}; "
                f"known: {', '.join(OPTION_NAMES)}"
            )
        return Task(self.__wrapped_task__, {**self.submit_options, **options}, self.client)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Submit a job calling this function with these arguments; checked against its
        parameters first (TaskCheckFailed: it would fail every attempt)."""
        client = self.client or default_client()
        try:
            return client.submit(
                self.__wrapped_task__, list(args), dict(kwargs), **self.submit_options
            )
        except TaskCheckFailed as exc:
            misplaced = [k for k in kwargs if k in OPTION_NAMES]
            if not misplaced:
                raise
            name = self.__wrapped_task__.__name__
            given = ", ".join(f"{k}=..." for k in misplaced)
            raise TaskCheckFailed(
                f"{exc.reason}; options of the job go in .options(): "
                f"{name}.options({given}).submit(...)"
            ) from None


def task(
    fn: Callable[P, R] | None = None,
    *,
    queue: str | None = None,
    priority: int | None = None,
    retries: int | None = None,
    backoff: float | str | None = None,
    timeout: float | str | None = None,
    client: Client | None = None,
) -> Any:
    """Decorator: `@task` or `@task(queue=..., retries=..., timeout=...)`."""
    options = {
        k: v
        for k, v in (
            ("queue", queue),
            ("priority", priority),
            ("retries", retries),
            ("backoff", backoff),
            ("timeout", timeout),
        )
        if v is not None
    }

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        return Task(f, options, client)

    return wrap(fn) if fn is not None else wrap


def current_job() -> Any:
    """The running job's context (id, attempt, task, queue), or None outside a job."""
    from jobrunner.worker import child

    return child.current
