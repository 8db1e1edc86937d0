"""`jobrunner schedules list|run|pause|resume` and `jobrunner config check`."""

from __future__ import annotations

import argparse
import json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("schedules", help="the [[schedules]] of the config")
    actions = p.add_subparsers(dest="schedules_command", metavar="ACTION", parser_class=type(p))
    actions.required = True
    q = actions.add_parser("list", help="schedules with their next fires and last job")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=schedules_list)
    for name, func, text in (
        ("run", schedules_run, "fire now, outside the timetable (marked manual)"),
        ("pause", schedules_pause, "stop firing until resumed"),
        ("resume", schedules_resume, "fire again, from now on (no catch-up)"),
    ):
        q = actions.add_parser(name, help=text)
        q.add_argument("name", metavar="NAME")
        q.set_defaults(func=func)

    p = sub.add_parser("config", help="the configuration file")
    actions = p.add_subparsers(dest="config_command", metavar="ACTION", parser_class=type(p))
    actions.required = True
    q = actions.add_parser("check", help="validate the config and print what it means")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=config_check)


def schedules_list(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner import clock
    from jobrunner.ops import schedules

    rows = schedules.listing(ctx.store(create=True), ctx.config, clock.now())
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    from jobrunner.cli import render

    render.schedules(rows)
    return 0


def schedules_run(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner import clock
    from jobrunner.ops import schedules

    schedules.find_schedule(ctx.config, args.name)  # before the database is made
    job_id = schedules.run(ctx.store(create=True), ctx.config, args.name, clock.now())
    sys.stdout.write(f"{job_id}\n")
    return 0


def schedules_pause(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner import clock
    from jobrunner.ops import schedules

    schedules.find_schedule(ctx.config, args.name)  # before the database is made
    schedules.pause(ctx.store(create=True), ctx.config, args.name, clock.now())
    sys.stdout.write(f"schedule {args.name} paused\n")
    return 0


def schedules_resume(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner import clock
    from jobrunner.ops import schedules

    schedules.find_schedule(ctx.config, args.name)  # before the database is made
    schedules.resume(ctx.store(create=True), ctx.config, args.name, clock.now())
    sys.stdout.write(f"schedule {args.name} resumed\n")
    return 0


def config_check(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.config import config_path
    from jobrunner.record import asdict

    path = config_path(ctx.args.config)
    config = ctx.config
    parsed = asdict(config)
    parsed["database"] = ctx.db_path
    if args.json:
        sys.stdout.write(json.dumps(parsed, indent=2) + "\n")
        return 0
    from jobrunner.cli import render

    render.config_summary(path, parsed)
    return 0
