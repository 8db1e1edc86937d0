"""One job as a JSON object -> a checked JobInsert: the format of a `submit --file` line
and of a POST /jobs body (docs/usage.md and docs/http.md). Every caller
gives `where`, the prefix of its messages ("jobs.jsonl:3: ", "body: ", "body[3]: ")."""

from __future__ import annotations

import json

from jobrunner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from typing import Any

    from jobrunner.client import Client
    from jobrunner.models import JobInsert

# A job's options (Client.prepare's keyword arguments, as a line or a body spells them);
# decorator.py's Task.options() takes the same.
JOB_OPTIONS = (
    "queue",
    "priority",
    "delay",
    "at",
    "retries",
    "backoff",
    "timeout",
    "key",
    "memory_limit",
    "cpu_limit",
    "nice",
    "callback",
    "after",
    "after_ended",
    "concurrency_key",
)
JOB_KEYS = frozenset({"task", "command", "args", "kwargs", *JOB_OPTIONS})

NO_CHECK_HINT = "use --no-check to submit for a daemon with another environment"


def parse_json(text: str, what: str, kind: type, where: str) -> Any:
    """`text` as JSON of `kind` (list or dict); errors name `where` and `what`."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: also a 5000-digit number
        raise UsageError(f"{where}{what}: malformed JSON: {exc}") from None
    if not isinstance(value, kind):
        expected = "array" if kind is list else "object"
        raise UsageError(f"{where}{what}: expected a JSON {expected}, got {type(value).__name__}")
    return value


def parse_at(text: str, where: str = "--at") -> float:
    from jobrunner import clock
    from jobrunner.durations import parse_time

    return parse_time(text, clock.now(), where)


def job_options(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Checked keyword options for Client.prepare from CLI flags (`where` "--") or a
    JSON object."""
    from jobrunner.durations import parse_duration

    out: dict[str, Any] = {}
    for name in ("queue", "key", "concurrency_key"):
        if values.get(name) is not None:
            if not isinstance(values[name], str) or not values[name]:
                flag = name.replace("_", "-") if where == "--" else name
                raise UsageError(f"{where}{flag}: expected a non-empty string")
            out[name] = values[name]
    for name in ("priority", "retries", "nice"):
        value = values.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{where}{name}: expected a whole number, got {value!r}")
            if name == "retries" and value < 0:
                raise UsageError(f"{where}retries: must be >= 0, got {value}")
            out[name] = value
    if values.get("memory_limit") is not None:
        from jobrunner.durations import parse_size

        out["memory_limit"] = parse_size(values["memory_limit"], where=f"{where}memory-limit")
    for name in ("delay", "backoff", "timeout", "cpu_limit"):
        if values.get(name) is not None:
            flag = name.replace("_", "-") if where == "--" else name  # --cpu-limit
            out[name] = parse_duration(values[name], where=f"{where}{flag}")
    if values.get("callback") is not None:
        from jobrunner.webhooks.settings import url_problem

        problem = url_problem(values["callback"])
        if problem:
            raise UsageError(f"{where}callback: {problem}")
        out["callback"] = values["callback"]
    for name in ("after", "after_ended"):
        if values.get(name) is not None:
            flag = name.replace("_", "-") if where == "--" else name  # --after-ended
            out[name] = job_ids(values[name], f"{where}{flag}", cli=where == "--")
    if values.get("at") is not None:
        if not isinstance(values["at"], str):
            raise UsageError(f"{where}at: expected an ISO 8601 string")
        out["at"] = parse_at(values["at"], where=f"{where}at")
    return out


def job_ids(value: Any, where: str, cli: bool) -> list[int]:
    """Job ids (`after`): a JSON array of ids, or (`cli`) the repeated comma lists of
    `--after 3,4 --after 5`."""
    if cli:
        parts = [p.strip() for text in value for p in text.split(",")]
        if not all(p.isdigit() and p.isascii() for p in parts):
            bad = next(p for p in parts if not (p.isdigit() and p.isascii()))
            raise UsageError(f"{where}: {bad!r} is not a job id")
        return [int(p) for p in parts]
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise UsageError(f"{where}: expected an array of job ids")
    return value


def job_from_object(
    client: Client,
    obj: Any,
    where: str,
    check: bool,
    not_object: str = "expected a JSON object",
    hint: str = NO_CHECK_HINT,
) -> JobInsert:
    """One job object as a prepared job; every message starts with `where`. `hint`:
    how this interface skips the task check, added to a failed check's message."""
    if not isinstance(obj, dict):
        raise UsageError(f"{where}{not_object}")
    unknown = set(obj) - JOB_KEYS
    if unknown:
        raise UsageError(f"{where}unknown key(s) {sorted(unknown)}; allowed: {sorted(JOB_KEYS)}")
    args = obj.get("args", [])
    kwargs = obj.get("kwargs", {})
    if not isinstance(args, list):
        raise UsageError(f"{where}args: expected a JSON array")
    if not isinstance(kwargs, dict):
        raise UsageError(f"{where}kwargs: expected a JSON object")
    command = obj.get("command")
    if command is not None and (
        not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command)
    ):
        raise UsageError(f"{where}command: expected a non-empty array of strings")
    task = obj.get("task")
    if (command is None) == (task is None):
        raise UsageError(f"{where}give exactly one of task or command")
    if task is not None and not isinstance(task, str):
        raise UsageError(f"{where}task: expected a string, got {type(task).__name__}")
    from jobrunner.taskref import TaskCheckFailed

    try:
        return client.prepare(
            task, args, kwargs, command=command, check=check, **job_options(obj, where)
        )
    except TaskCheckFailed as exc:
        tail = f" ({hint})" if hint else ""
        raise UsageError(f"{where}{exc.reason}{tail}") from None
    except UsageError as exc:
        message = str(exc)
        raise UsageError(message if message.startswith(where) else where + message) from None
