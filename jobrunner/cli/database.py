"""`jobrunner migrate` (the database's schema brought up to date, explicitly) and
`jobrunner copy --to URL` (an SQLite file's jobs moved into PostgreSQL)."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "migrate",
        help="bring the database's schema up to date (made if there is none)",
        description="Applies the migrations the database lacks and says which. Daemons "
        "and writers do this when they open the database anyway; run it as a deploy step "
        "to do it once, before they start. Refuses, writing nothing, a database with "
        "another application's tables or a newer schema than this jobrunner knows.",
    )
    p.set_defaults(func=migrate)

    p = sub.add_parser(
        "copy",
        help="move this SQLite file's jobs into a PostgreSQL database (--to URL)",
        description="Copies every job (waiting, running, dead and ended, with their "
        "attempts), the schedules' state, the event feed and webhook deliveries, ids "
        "kept, in one transaction, into an empty database; then retires the file: it "
        "is still read (status, list, logs) but never written again. Refused while a "
        "daemon is attached to the file. Jobs' output stays in the file's logs folder.",
    )
    p.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host/name")
    p.set_defaults(func=copy)


def migrate(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.ops.database import migrate as apply

    done = apply(ctx.db_path, ctx.config.synchronous)
    if done.created:
        line = f"created a jobrunner database at {done.location}"
    elif done.applied:
        numbers = ", ".join(str(n) for n in done.applied)
        plural = "s" if len(done.applied) > 1 else ""
        line = f"applied migration{plural} {numbers} to {done.location}"
    else:
        line = f"{done.location}: already up to date"
    sys.stdout.write(f"{line}; schema version {done.version}\n")
    return 0


def copy(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner import clock
    from jobrunner.ops.database import copy_to

    done = copy_to(ctx.db_path, args.to, clock.now(), ctx.config.synchronous)
    jobs = sum(done.jobs.values())
    states = ", ".join(f"{n} {state}" for state, n in sorted(done.jobs.items()))
    rows = done.rows
    out = [
        f"copied {done.source} to {done.target}:",
        f"  jobs          {jobs}" + (f" ({states})" if states else ""),
        f"  attempts      {rows['attempts']}",
        f"  schedules     {rows['schedules']} (their last fires and pauses)",
        f"  events        {rows['job_events']}",
        f"  deliveries    {rows['webhook_deliveries']} webhook deliveries",
        f"{done.source} is retired: it is still read, never written; use --db {done.target}",
        f"jobs' output stays in {done.output_dir} (not copied)",
    ]
    sys.stdout.write("\n".join(out) + "\n")
    return 0
