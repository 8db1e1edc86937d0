"""Turning what a user names (TASK, --cmd argv) into a job to insert."""

from __future__ import annotations

import functools
import os
import sys

from jobrunner.config import FUNCTION_REF, Config, import_folders
from jobrunner.errors import UsageError
from jobrunner.models import JobInsert
from jobrunner.record import Record

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


class Submission(Record):
    """The options a submit takes, before defaults from a named task apply."""

    args: list[Any]
    kwargs: dict[str, Any]
    queue: str | None = None
    priority: int | None = None
    run_at: float | None = None
    retries: int | None = None
    backoff: float | None = None
    timeout: float | None = None
    key: str | None = None
    limits: dict[str, Any] | None = None  # memory_limit (bytes), cpu_limit (s), nice
    delay: float = 0.0  # when run_at is None: seconds after the insert's now


class TaskCheckFailed(UsageError):
    """The task cannot be run as named, as far as this process can see: its module is not
    found, it has no such function, or the call does not fit the function's parameters.
    `reason` says which; each interface adds how to skip the check (the daemon may run in
    another environment), in its own terms."""

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(f"{reason} ({hint})" if hint else reason)
        self.reason = reason


@functools.lru_cache(maxsize=256)
def find_module(module: str, search: tuple[str, ...]) -> str | bool:
    """`tasksource.module_source`, cached: the path of `module`'s source, True when found
    without a source to read, False when not found. Only files are looked at:
    importlib.util.find_spec would import the parent packages, and a submitter never
    runs application code."""
    from jobrunner.tasksource import module_source

    return module_source(module, search)


def check_task(
    function: str,
    args: Sequence[Any] | None,
    kwargs: dict[str, Any] | None,
    folders: Sequence[str] | None = None,
) -> None:
    """TaskCheckFailed unless `function` (module:attr) can be found from here and, when
    `args` is given, the call fits its parameters, as far as its source says
    (jobrunner/tasksource.py). Never imports the module. `folders`: where the daemon
    looks before sys.path (config.import_folders; the working directory by default)."""
    module, _, attr = function.partition(":")
    folders = list(folders) if folders is not None else [os.getcwd()]
    # The search path is part of the cache key: an answer for another directory (or
    # sys.path) would be stale.
    found = find_module(module, (*folders, *sys.path[1:]))
    if found is False:
        raise TaskCheckFailed(
            f"task {function}: module {module!r} not found from {', '.join(folders)}"
        )
    if found is True:
        return
    from jobrunner.tasksource import check_call

    problem = check_call(
        found, module, attr, None if args is None else len(args), list(kwargs or ())
    )
    if problem is not None:
        raise TaskCheckFailed(f"task {function}: {problem}")


def build_job(
    task: str | None,
    command: list[str] | None,
    sub: Submission,
    config: Config,
    *,
    check: bool = True,
    check_args: bool = True,
) -> JobInsert:
    """A JobInsert for TASK (module:function or a [tasks.NAME]) or a command argv.

    `check`: refuse a module:function that cannot be found from here (check_task);
    `check_args`: and a call (`sub.args`, `sub.kwargs`) that does not fit it."""
    options: dict[str, Any] = {}
    queue, priority, retries, backoff, timeout = "default", 0, 3, 1.0, None
    function = None
    if command is not None:
        if not command:
            raise UsageError("command: empty; it needs a program to run")
    elif task is None:
        raise UsageError("name a task (package.module:function or a [tasks.NAME]) or a command")
    elif task in config.tasks:
        named = config.tasks[task]
        function, command = named.function, named.command
        queue, priority, retries = named.queue, named.priority, named.retries
        backoff, timeout = named.backoff, named.timeout
        options["task_name"] = task
        if named.cwd:
            options["cwd"] = named.cwd
        if named.env:
            options["env"] = named.env
        options.update(named.limits)
    elif FUNCTION_REF.match(task):
        function = task
        if check:
            check_task(task, sub.args if check_args else None, sub.kwargs, import_folders(config))
    else:
        known = ", ".join(sorted(config.tasks)) or "none configured"
        raise UsageError(
            f"task {task!r}: not package.module:function and not a [tasks.NAME] entry "
            f"(named tasks: {known})"
        )
    if sub.limits:
        options.update(sub.limits)
    if sub.priority is not None:
        priority = sub.priority
    if sub.retries is not None:
        retries = sub.retries
    if sub.backoff is not None:
        backoff = sub.backoff
    if sub.timeout is not None:
        timeout = sub.timeout or None
    return JobInsert(
        task=function,
        command=command,
        args=sub.args,
        kwargs=sub.kwargs,
        queue=sub.queue or queue,
        priority=priority,
        run_at=sub.run_at,
        delay=sub.delay,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
        key=sub.key,
        options=options,
    )
