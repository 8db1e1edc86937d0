"""`jobrunner dlq`: the dead-letter queue (jobs in state `dead`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jobrunner.cli import confirm
from jobrunner.cli.jobs import _print_json, delete_ended, job_id, limit, show_jobs
from jobrunner.errors import JobNotFound, UsageError
from jobrunner.lifecycle import State
from jobrunner.ops import get_job


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("dlq", help="the dead-letter queue")
    dlq = p.add_subparsers(dest="dlq_command", metavar="ACTION", parser_class=type(p))
    dlq.required = True

    q = dlq.add_parser("list", help="dead jobs, newest first")
    shown = q.add_mutually_exclusive_group()
    shown.add_argument("--limit", type=limit, default=100, help="at most N (default 100)")
    shown.add_argument("--all", action="store_true", help="every dead job")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=dlq_list)

    q = dlq.add_parser("show", help="a dead job with every attempt's traceback")
    q.add_argument("id", type=job_id, metavar="JOB_ID")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=dlq_show)

    q = dlq.add_parser("retry", help="give dead jobs a fresh round of attempts")
    q.add_argument("ids", nargs="*", type=job_id, metavar="JOB_ID")
    q.add_argument("--all", action="store_true")
    q.set_defaults(func=dlq_retry)

    q = dlq.add_parser(
        "purge",
        help="delete dead jobs",
        description="Deletes every dead job (older than --older-than). Asks first on a "
        "terminal; --yes for scripts.",
    )
    q.add_argument("--older-than", default="0s", metavar="DUR")
    confirm.add_flags(q, "delete")
    q.set_defaults(func=dlq_purge)


def dlq_list(ctx: Any, args: argparse.Namespace) -> int:
    return show_jobs(
        ctx,
        args,
        [State.DEAD.value],
        title="Dead jobs",
        empty="The dead-letter queue is empty.",
    )


def dlq_show(ctx: Any, args: argparse.Namespace) -> int:
    store = ctx.store()
    job = get_job(store, args.id)
    if job.state is not State.DEAD:
        raise UsageError(f"job {job.id} is {job.state}, not in the dead-letter queue")
    attempts = store.attempt_list(job.id)
    if args.json:
        _print_json({**job.to_dict(), "attempt_history": [a.to_dict() for a in attempts]})
        return 0
    from jobrunner.cli import render

    render.job_detail(job, attempts, tracebacks=True)
    return 0


def dlq_retry(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner import clock
    from jobrunner.ops import control

    if bool(args.ids) == args.all:
        raise UsageError("name JOB_IDs or --all")
    retried = control.retry(ctx.store(), None if args.all else args.ids, clock.now())
    for i in args.ids:  # one named is unknown or not dead, so none moved: say which first
        if i in retried.unknown:
            raise JobNotFound(f"no job with id {i}")
        if i in retried.not_dead:
            raise UsageError(f"job {i} is {retried.not_dead[i]}, not in the dead-letter queue")
    sys.stdout.write("".join(f"{i}\n" for i in retried.moved))  # the ids queued again
    if retried.kept:
        sys.stderr.write(
            f"jobrunner: {retried.kept} dead job(s) left: they failed for good (not retried); "
            "retry them by id once their code is fixed\n"
        )
    return 0


def dlq_purge(ctx: Any, args: argparse.Namespace) -> int:
    return delete_ended(ctx, args, [State.DEAD], "dlq purge", "purged {} dead job(s)")
