"""`jobrunner events`: the job event feed in a terminal, as `docker events` or
`kubectl get -w` show theirs (docs/architecture.md, "Events")."""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from typing import Any

from jobrunner.cli.jobs import job_id
from jobrunner.errors import UsageError
from jobrunner.lifecycle import FINAL


def _seq(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an event seq (a whole number)")
    return int(text)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "events",
        help="the job event feed: every state change, in order",
        description="Print the events the database keeps ([retention] events), oldest "
        "first; with --follow, then every new one as it is committed (with --job: until "
        "the job ends).",
    )
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--job", type=job_id, metavar="JOB_ID", help="only this job's events")
    p.add_argument(
        "--type",
        action="append",
        metavar="TYPE",
        help="only these types (job.dead, or a pattern: 'job.*'); may be given again",
    )
    p.add_argument(
        "--since",
        type=_seq,
        metavar="SEQ",
        help="events after this seq (default: all kept; with --follow and no --job, only new ones)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.set_defaults(func=events)


def events(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.follow import Follower
    from jobrunner.ops import get_job

    store = ctx.store()
    if args.job is not None:
        get_job(store, args.job)  # an unknown id is an error, not an empty feed
    patterns = [t for arg in args.type or [] for t in arg.split(",") if t]
    for pattern in patterns:
        if not pattern.replace("*", "x").replace(".", "").replace("_", "").isalnum():
            raise UsageError(f"--type: {pattern!r} is not an event type or pattern")
    since = args.since
    if since is None:
        since = store.events_last_seq() if args.follow and args.job is None else 0
    follower = Follower(store, since, args.job)
    out = sys.stdout
    try:
        while True:
            batch = follower.next(None if args.follow else 0)
            if not batch and not args.follow:
                return 0
            for event in batch:
                if patterns and not any(fnmatch.fnmatchcase(event.type, p) for p in patterns):
                    continue
                out.write(_line(event, args.json))
            out.flush()
            if args.follow and args.job is not None and any(e.state in FINAL for e in batch):
                return 0  # the job ended: nothing more to follow
    finally:
        follower.close()


def _line(event: Any, as_json: bool) -> str:
    record = event.to_dict()
    if as_json:
        return json.dumps(record, ensure_ascii=False) + "\n"
    head = f"{record.pop('at')}  {record.pop('seq'):>8}  {record.pop('type'):<15}"
    fields = " ".join(f"{k}={_value(v)}" for k, v in record.items() if v is not None)
    return f"{head} {fields}\n"


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text
