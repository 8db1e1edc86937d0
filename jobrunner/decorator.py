"""`@task` and `current_job()`: the decorator side of the Python API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from jobrunner.client import Client, JobHandle, task_reference

P = ParamSpec("P")
R = TypeVar("R")

_default_client: Client | None = None


def default_client() -> Client:
    global _default_client
    if _default_client is None:
        _default_client = Client()
    return _default_client


class Task(Generic[P, R]):
    """A function that can also be submitted as a job: `fn.submit(*args, **kwargs)`."""

    def __init__(self, fn: Callable[P, R], options: dict[str, Any], client: Client | None) -> None:
        functools.update_wrapper(self, fn)
        self.__wrapped_task__ = fn
        self.options = options
        self.client = client

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.__wrapped_task__(*args, **kwargs)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        client = self.client or default_client()
        return client.submit(
            task_reference(self.__wrapped_task__),
            list(args),
            dict(kwargs),
            check=False,
            **self.options,
        )


def task(
    fn: Callable[P, R] | None = None,
    *,
    queue: str | None = None,
    priority: int | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    timeout: float | None = None,
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
