"""`jobrunner backup PATH`, `jobrunner check`, `jobrunner vacuum` and `jobrunner top`."""

from __future__ import annotations

import argparse
import os
import sys

from jobrunner.errors import DatabaseCorrupt, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MIN_INTERVAL = 0.1


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "backup",
        help="write a consistent copy of the database, and the jobs' output, to new files",
        description="Safe while the daemon runs: the copy is one snapshot, compacted, at "
        "PATH; the output of every ended attempt goes to PATH.logs/ (as the database's "
        "own is beside it). Neither may exist. Restore: docs/deploying.md.",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--no-logs", action="store_true", help="the database alone")
    p.set_defaults(func=backup)

    p = sub.add_parser(
        "check",
        help="check the database file for damage (PRAGMA integrity_check)",
        description="Reads every page (seconds for a million jobs; safe while the daemon "
        "runs). Prints ok and exits 0, or the problems found and exits 3.",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=check)

    p = sub.add_parser(
        "vacuum",
        help="give the space of deleted jobs back to the file system",
        description="Rewrites the database file without its free pages (what prune and "
        "retention deleted) and turns on incremental auto-vacuum, so that the daemon gives "
        "freed pages back by itself from then on. Safe while the daemon runs: writers "
        "wait while it copies the live data, readers do not. Needs free disk space for "
        "that copy.",
    )
    p.set_defaults(func=vacuum)

    p = sub.add_parser(
        "top",
        help="a live view: queues, throughput, running jobs, failures, schedules",
        description="Refreshes every second; q or Ctrl-C quits.",
    )
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.add_argument("--interval", default="1s", metavar="DUR", help="refresh period (default 1s)")
    p.set_defaults(func=top)


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def file_maintenance(store: Any, command: str) -> Any:
    """The store's maintenance capability, or a clear refusal where it has none."""
    maintenance = store.maintenance()
    if maintenance is None:
        raise UsageError(
            f"jobrunner {command}: not available for this database's backend "
            "(its own tools back it up and check it)"
        )
    return maintenance


def backup(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.paths import log_dir_for

    path = args.path
    for taken in (path, None if args.no_logs else log_dir_for(path)):
        if taken is not None and os.path.lexists(taken):
            raise UsageError(f"{taken}: already exists; a backup never overwrites a file")
    maintenance = file_maintenance(ctx.store(), "backup")
    size = maintenance.backup(path)
    sys.stdout.write(f"backed up to {os.path.abspath(path)} ({human_size(size)}, {size} bytes)\n")
    if not args.no_logs:
        files, logs = maintenance.backup_output(path)
        sys.stdout.write(
            f"and the output of {files} job{'' if files == 1 else 's'} to "
            f"{log_dir_for(path)} ({human_size(logs)})\n"
        )
    return 0


def vacuum(ctx: Any, args: argparse.Namespace) -> int:
    before, after = file_maintenance(ctx.store(), "vacuum").vacuum()
    sys.stdout.write(
        f"vacuumed {ctx.db_path}: {human_size(before)} -> {human_size(after)} "
        f"({human_size(max(0, before - after))} given back)\n"
    )
    return 0


def check(ctx: Any, args: argparse.Namespace) -> int:
    store = ctx.store()
    problems = file_maintenance(store, "check").check()
    if args.json:
        import json

        report = {"database": store.path, "ok": not problems, "problems": problems}
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    elif not problems:
        sys.stdout.write("ok\n")
    else:
        sys.stdout.write("".join(f"{p}\n" for p in problems))
    if problems:
        raise DatabaseCorrupt(
            f"{store.path}: the database file is damaged: PRAGMA integrity_check found "
            f"{len(problems)}{'+' if len(problems) >= 100 else ''} problem(s); restore "
            "the database from a backup"
        )
    return 0


def top(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.durations import parse_duration

    interval = parse_duration(args.interval, "--interval")
    if interval < MIN_INTERVAL:
        raise UsageError(f"--interval: must be at least {MIN_INTERVAL:g}s, got {args.interval!r}")
    store = ctx.store()
    config = ctx.config  # before rich loads: a bad config is a one-line error
    from jobrunner.cli import top as view

    return view.run(store, config, ctx.db_path, interval, once=args.once)
