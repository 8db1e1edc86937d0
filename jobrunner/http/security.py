"""What may run when submitted over HTTP (docs/http.md): a [tasks.NAME] entry, a
function in a module matched by [http] allow_tasks (globs; default: the modules in
`imports`), and a command only with [http] allow_commands = true. Anything else is 403,
checked on the body before it is parsed, so a refused job writes nothing and a caller
learns nothing more about the server than that it is refused."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from jobrunner.config import Config
from jobrunner.http.problems import Forbidden


def allowed_modules(config: Config) -> list[str]:
    """The globs of modules whose functions may run over HTTP."""
    if config.http is not None and config.http.allow_tasks is not None:
        return config.http.allow_tasks
    return list(config.imports)


def allow_commands(config: Config) -> bool:
    return config.http is not None and config.http.allow_commands


def check_allowed(config: Config, obj: Any, where: str) -> None:
    """Forbidden (403) unless the job object `obj` names something that may run over
    HTTP. What is not a job at all (no task, a task that is not a string...) is left to
    the parser, which says why (400)."""
    if not isinstance(obj, dict):
        return
    task = obj.get("task")
    if isinstance(task, str):
        if task in config.tasks:
            return
        module, colon, _ = task.partition(":")
        if not colon:
            return  # not module:function, not a [tasks.NAME]: the parser's 400
        if not any(fnmatchcase(module, glob) for glob in allowed_modules(config)):
            raise Forbidden(
                f"{where}task {task!r}: module {module!r} may not run over HTTP "
                "(allowed: [tasks.NAME] entries and modules matched by [http] allow_tasks, "
                "by default the modules in imports)"
            )
    elif task is None and obj.get("command") is not None and not allow_commands(config):
        raise Forbidden(
            f"{where}command jobs may not run over HTTP (set [http] allow_commands = true)"
        )
