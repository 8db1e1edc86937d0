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


@functools.lru_cache(maxsize=256)
def module_findable(module: str, search: tuple[str, ...] | None = None) -> bool:
    """Whether `module` can be found on the path without importing anything.

    importlib.util.find_spec would import the parent packages; this only looks at
    files, so a submitter never runs application code.
    """
    parts = module.split(".")
    paths = search if search is not None else [os.getcwd(), *sys.path[1:]]
    for base in paths:
        if not base or not os.path.isdir(base):
            continue
        folder = os.path.join(base, *parts[:-1])
        last = os.path.join(folder, parts[-1])
        if os.path.isfile(last + ".py") or os.path.isdir(last):
            return True
        if os.path.isdir(folder) and any(
            name.startswith(parts[-1] + ".") and name.endswith((".so", ".pyd", ".pyc"))
            for name in os.listdir(folder)
        ):
            return True
    return module in sys.builtin_module_names


def build_job(
    task: str | None,
    command: list[str] | None,
    sub: Submission,
    config: Config,
    *,
    check: bool = True,
) -> JobInsert:
    """A JobInsert for TASK (module:function or a [tasks.NAME]) or a command argv."""
    options: dict[str, Any] = {}
    queue, priority, retries, backoff, timeout = "default", 0, 3, 1.0, None
    function = None
    if command is not None:
        if not command:
            raise UsageError("--cmd needs a program after --")
    elif task is None:
        raise UsageError("name a TASK (package.module:function or a [tasks.NAME]) or use --cmd")
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
            module = task.partition(":")[0]
            # The search path is part of the cache key: a cached answer for another
            # directory (or sys.path) would be stale.
            folders = import_folders(config)  # where the daemon will look first
            if not module_findable(module, (*folders, *sys.path[1:])):
                raise UsageError(
                    f"task {task}: module {module!r} not found from {', '.join(folders)} "
                    "(use --no-check to submit for a daemon with another environment)"
                )
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
        retries=retries,
        backoff=backoff,
        timeout=timeout,
        key=sub.key,
        options=options,
    )
