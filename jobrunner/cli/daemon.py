"""`jobrunner daemon`: run jobs until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from jobrunner.config import DEFAULT_CONFIG
from jobrunner.errors import UsageError


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "daemon",
        help="run jobs",
        description="Run jobs in forked workers until "
        "SIGTERM or SIGINT (a second SIGINT kills running jobs).",
    )
    p.add_argument("--workers", type=int, metavar="N")
    p.add_argument("--queues", metavar="a,b", help="only these queues (default: all)")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="one line per event: key=value text, or JSON lines",
    )
    p.set_defaults(func=run)


def run(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.daemon import supervisor

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers: must be at least 1, got {args.workers}")
    queues = None
    if args.queues is not None:
        queues = [q.strip() for q in args.queues.split(",") if q.strip()]
        if not queues:
            raise UsageError("--queues: name at least one queue")
    config = ctx.config
    return supervisor.run(
        config,
        ctx.db_path,
        workers=args.workers,
        queues=queues,
        log_format=args.log_format,
        log_stream=sys.stderr,
        # Started without a config: the one written later where it would have been found.
        config_file=config.path or os.path.abspath(DEFAULT_CONFIG),
    )
