"""`jobrunner serve`: the HTTP API (jobrunner/http)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="the HTTP API: submit, poll, long-poll, live events",
        description="Serve the HTTP API until SIGTERM or SIGINT. Listens on loopback "
        "unless told otherwise; another address needs a token ([http] token or "
        "JOBRUNNER_TOKEN).",
    )
    p.add_argument("--listen", metavar="HOST:PORT", help="default: [http] listen, 127.0.0.1:8765")
    p.set_defaults(func=run)


def run(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.http.server import serve
    from jobrunner.http.settings import DEFAULT_LISTEN

    config = ctx.config
    listen = args.listen or (config.http.listen if config.http is not None else DEFAULT_LISTEN)
    return serve(config, ctx.db_path, listen)
