"""`jobrunner submit`: one job, a command, or many from a JSON-lines file."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys

from jobrunner.errors import UsageError
from jobrunner.jobspec import NO_CHECK_HINT, job_options, parse_json

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from typing import Any


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("submit", help="submit a job", description="Submit a job and print its id.")
    p.add_argument(
        "target",
        nargs="*",
        metavar="TASK | -- PROGRAM ARG...",
        help="package.module:function or a [tasks.NAME]; with --cmd, the argv",
    )
    p.add_argument("--cmd", action="store_true", help="run a program (argv after --, no shell)")
    p.add_argument("--file", metavar="JOBS.jsonl", help="submit one job per JSON line ('-': stdin)")
    p.add_argument("--args", default="[]", metavar="JSON_ARRAY")
    p.add_argument("--kwargs", default="{}", metavar="JSON_OBJECT")
    p.add_argument("--queue")
    p.add_argument("--priority", type=int, help="larger runs first (default 0)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", metavar="DUR")
    when.add_argument(
        "--at",
        metavar="TIME",
        help="ISO 8601 (without an offset: local time), HH:MM, or tomorrow HH:MM",
    )
    p.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="retries after the first attempt (default 3, commands too; 0: run once)",
    )
    p.add_argument("--backoff", metavar="DUR", help="base of the exponential backoff")
    p.add_argument("--timeout", metavar="DUR")
    p.add_argument("--key", metavar="IDEMPOTENCY_KEY")
    p.add_argument("--memory-limit", metavar="SIZE", help="e.g. 512MB; past it: out of memory")
    p.add_argument("--cpu-limit", metavar="DUR", help="CPU time the job may use")
    p.add_argument("--nice", type=int, metavar="N", help="run at this nice level (0-19)")
    p.add_argument(
        "--callback",
        metavar="URL",
        help="POST the job's final event to URL, signed ([webhooks] in the config)",
    )
    p.add_argument(
        "--after",
        action="append",
        metavar="ID[,ID...]",
        help="run once these jobs have succeeded; cancelled if one ends dead or cancelled",
    )
    p.add_argument(
        "--after-ended",
        action="append",
        metavar="ID[,ID...]",
        help="run once these jobs have ended, however they ended",
    )
    p.add_argument(
        "--concurrency-key",
        metavar="KEY",
        help="with [queues.NAME] per_key: at most that many of the queue's running jobs share KEY",
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="do not check that the task's module can be found here",
    )
    p.add_argument(
        "--json", action="store_true", help="print {id, created} as JSON (--file: one a line)"
    )
    p.set_defaults(func=run)


def run(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.client import Client
    from jobrunner.ops import submit
    from jobrunner.store.dependencies import UnknownDependency
    from jobrunner.taskref import TaskCheckFailed

    client = Client(args.db, ctx.config)
    if args.file:
        if args.target or args.cmd:
            raise UsageError("--file takes no TASK or --cmd; each line names its own")
        jobs, lines = _read_file(client, args.file, check=not args.no_check)
        name = "<stdin>" if args.file == "-" else args.file
        try:
            results = submit(client.store, jobs, _now()) if jobs else []
        except UnknownDependency as exc:  # found in the transaction: say which line
            raise UsageError(f"{name}:{lines[exc.index or 0]}: {exc}") from None
        _warn_key_reuse(client.store, jobs, results, name, lines)
        _warn_unserved(client.store, [j.queue for j in jobs])
        client.close()
        if args.json:  # one {id, created} a line, as for a single job
            out = (json.dumps({"id": r.id, "created": r.created}) for r in results)
        else:
            out = (str(r.id) for r in results)
        sys.stdout.write("".join(f"{line}\n" for line in out))
        return 0
    flags = {
        k: getattr(args, k)
        for k in (
            "queue",
            "key",
            "priority",
            "retries",
            "delay",
            "backoff",
            "timeout",
            "at",
            "memory_limit",
            "cpu_limit",
            "nice",
            "callback",
            "after",
            "after_ended",
            "concurrency_key",
        )
    }
    options = job_options(flags, "--")
    job_args = parse_json(args.args, "args", list, "--")
    job_kwargs = parse_json(args.kwargs, "kwargs", dict, "--")
    if args.cmd:
        if not args.target:
            raise UsageError("--cmd needs a program: jobrunner submit --cmd -- PROGRAM [ARG...]")
        job = client.prepare(None, job_args, job_kwargs, command=args.target, **options)
    else:
        if len(args.target) != 1:
            raise UsageError("name one TASK (or use --cmd -- PROGRAM ARG...)")
        try:
            job = client.prepare(
                args.target[0], job_args, job_kwargs, check=not args.no_check, **options
            )
        except TaskCheckFailed as exc:
            raise UsageError(f"{exc.reason} ({NO_CHECK_HINT})") from None
    result = submit(client.store, [job], _now())[0]
    _warn_key_reuse(client.store, [job], [result])
    _warn_unserved(client.store, [job.queue])
    client.close()
    if args.json:
        sys.stdout.write(json.dumps({"id": result.id, "created": result.created}) + "\n")
    else:
        sys.stdout.write(f"{result.id}\n")
    return 0


def _warn_unserved(store: Any, queues: list[str]) -> None:
    """A warning, not an error: the jobs are stored and wait for a daemon that serves
    their queue. One read of the daemons' table."""
    from jobrunner.ops.daemons import unserved

    for queue in unserved(queues, store.daemon_list(), _now())[:5]:
        sys.stderr.write(
            f"jobrunner: warning: no running daemon serves queue {queue!r}: its jobs wait "
            "until one does (daemon --queues, [daemon] queues)\n"
        )


def _now() -> float:
    from jobrunner import clock

    return clock.now()


def _warn_key_reuse(
    store: Any, jobs: list[Any], results: list[Any], name: str = "", lines: list[int] | None = None
) -> None:
    """A key that matched a job submitted with other arguments returns that job (the
    point of a key); say so on stderr, since this call's arguments were not stored."""
    if all(r.created for r in results):
        return
    from jobrunner.ops.idempotency import other_call

    for index, (job, result) in enumerate(zip(jobs, results, strict=True)):
        if result.created or other_call(store, job, result.id) is None:
            continue
        place = f"{name}:{lines[index]}: " if lines else ""
        sys.stderr.write(
            f"jobrunner: warning: {place}key {job.key!r} already names job {result.id}, "
            "submitted with other arguments; printed its id and wrote nothing\n"
        )


def _read_file(client: Any, path: str, check: bool) -> tuple[list[Any], list[int]]:
    """The jobs, and the line each came from. Every line checked before anything is
    written: one bad line writes nothing. A UTF-8 byte-order mark (as some Windows
    editors write) is skipped."""
    name = "<stdin>" if path == "-" else path
    stdin = path == "-"
    try:
        if stdin:
            # sys.stdin decodes as the locale says, and in the C locale lets bad bytes
            # through as surrogates ("malformed JSON" instead of "not UTF-8"): decode here.
            buffer = getattr(sys.stdin, "buffer", None)
            stream = sys.stdin if buffer is None else io.TextIOWrapper(buffer, "utf-8-sig")
        else:
            stream = open(path, encoding="utf-8-sig")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    jobs = []
    numbers = []
    from jobrunner.cli.bar import progress_bar

    size = None if stdin else os.fstat(stream.fileno()).st_size
    try:
        with progress_bar("reading", size) as advance:
            read = 0
            for number, line in enumerate(stream, 1):
                read += len(line)
                if number % 1000 == 0:
                    advance(read)
                    read = 0
                if line.strip():
                    jobs.append(_parse_line(client, line, number, name, check))
                    numbers.append(number)
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not UTF-8 text") from None
    finally:
        if not stdin:
            stream.close()
        elif isinstance(stream, io.TextIOWrapper) and stream is not sys.stdin:
            stream.detach()  # leave sys.stdin's buffer open
    return jobs, numbers


def _parse_line(client: Any, line: str, number: int, name: str, check: bool) -> Any:
    """One JSON line as a prepared job; errors name file:line."""
    from jobrunner.jobspec import job_from_object

    where = f"{name}:{number}: "
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:  # ValueError: also a 5000-digit number
        raise UsageError(f"{where}malformed JSON: {exc}") from None
    return job_from_object(client, obj, where, check, "expected a JSON object per line")
