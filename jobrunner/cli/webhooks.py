"""`jobrunner webhooks`: endpoints, deliveries, redelivery, a test send, and the
dispatcher in the foreground (docs/webhooks.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jobrunner.cli.jobs import _print_json, job_id, limit


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("webhooks", help="webhook endpoints and deliveries")
    hooks = p.add_subparsers(dest="webhooks_command", metavar="ACTION", parser_class=type(p))
    hooks.required = True

    q = hooks.add_parser("list", help="the endpoints, enabled or disabled, and delivery counts")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=list_endpoints)

    q = hooks.add_parser("deliveries", help="deliveries, newest first")
    q.add_argument("--job", type=job_id, metavar="JOB_ID", help="only this job's")
    q.add_argument("--failed", action="store_true", help="only those given up on")
    q.add_argument("--pending", action="store_true", help="only those still to be sent")
    q.add_argument("--limit", type=limit, default=50, help="at most N (default 50)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=list_deliveries)

    q = hooks.add_parser("show", help="one delivery with every attempt's answer")
    q.add_argument("id", type=delivery_id, metavar="DELIVERY_ID")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=show)

    q = hooks.add_parser("redeliver", help="send a delivery again (the same webhook-id)")
    q.add_argument("id", type=delivery_id, metavar="DELIVERY_ID")
    q.set_defaults(func=redeliver)

    q = hooks.add_parser("enable", help="re-enable a URL that answered 410 Gone")
    q.add_argument("url", metavar="URL")
    q.set_defaults(func=enable)

    q = hooks.add_parser("test", help="POST a signed webhook.test event to URL now")
    q.add_argument("url", metavar="URL")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=test)

    q = hooks.add_parser(
        "dispatch",
        help="send deliveries in the foreground (the daemon runs this itself)",
        description="Deliver webhooks until SIGTERM or SIGINT, as `jobrunner daemon` does "
        "when the config has [webhooks]; several may run against one database.",
    )
    q.set_defaults(func=dispatch)


def delivery_id(text: str) -> int:
    try:
        return job_id(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("job id", "delivery id")) from None


def list_endpoints(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.ops import webhooks

    webhooks.webhooks_of(ctx.config)
    store = ctx.store()
    rows = webhooks.endpoints(ctx.config, store)
    counts = store.webhook_counts()
    if args.json:
        _print_json({"endpoints": rows, "deliveries": counts})
        return 0
    from rich.table import Table
    from rich.text import Text

    from jobrunner.cli.render import _table, console

    table: Table = _table("Webhook endpoints")
    for col in ("url", "events", "queues", "state"):
        table.add_column(col)
    for row in rows:
        state = (
            Text("enabled", style="green")
            if row["enabled"]
            else Text(f"disabled {row['disabled_at']}: {row['reason']}", style="red")
        )
        table.add_row(
            row["url"],
            ", ".join(row["events"]) if row["events"] else "(a job's callback)",
            ", ".join(row["queues"]) if row["queues"] else "*",
            state,
        )
    if rows:
        console.print(table)
    else:
        console.print(
            "No [[webhooks.endpoints]] in the config; only --callback URLs.", markup=False
        )
    total = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("pending", "delivered", "failed"))
    console.print(f"Deliveries: {total}", markup=False)
    return 0


def list_deliveries(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.errors import UsageError
    from jobrunner.ops import webhooks

    if args.failed and args.pending:
        raise UsageError("give --failed or --pending, not both")
    state = "failed" if args.failed else "pending" if args.pending else None
    found = webhooks.deliveries(ctx.store(), args.job, state, args.limit)
    if args.json:
        _print_json([webhooks.delivery_dict(d) for d in found])
        return 0
    from jobrunner.cli.render import _table, console, short

    if not found:
        console.print("No deliveries.", markup=False)
        return 0
    table = _table("Webhook deliveries")
    for col in ("id", "job", "event", "url", "state", "tries", "last answer", "next / ended"):
        table.add_column(col)
    for d in found:
        row = webhooks.delivery_dict(d)
        answer = str(d.last_status) if d.last_status is not None else (d.last_error or "-")
        if d.last_status is not None and d.last_error:
            answer = d.last_error
        table.add_row(
            str(d.id),
            str(d.job_id),
            d.event_type,
            row["url"],
            _state(d.state),
            str(d.attempts),
            short(answer, 40),
            (row["next_at"] if d.state == "pending" else row["ended_at"]) or "-",
        )
    console.print(table)
    return 0


def _state(state: str) -> Any:
    from rich.text import Text

    return Text(state, style={"delivered": "green", "failed": "red"}.get(state, "yellow"))


def show(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.ops import webhooks

    found, attempts = webhooks.delivery(ctx.store(), args.id)
    out = webhooks.delivery_dict(found, attempts)
    if args.json:
        _print_json(out)
        return 0
    from jobrunner.cli.render import console

    lines = [f"Delivery {found.id}  {found.event_type} of job {found.job_id}"]
    for key in ("webhook_id", "url", "state", "attempts", "next_at", "created_at", "ended_at"):
        if out.get(key) is not None:
            lines.append(f"  {key:<11} {out[key]}")
    for n, a in enumerate(attempts, 1):
        answer = f"HTTP {a.status}" if a.status is not None else (a.error or "")
        lines.append(f"  attempt {n}  {out['attempt_history'][n - 1]['at']}  {a.outcome}  {answer}")
        if a.error and a.status is not None:
            lines.append(f"    {a.error}")
        if a.body:
            lines.append(f"    body: {a.body[:200]!r}")
    console.print("\n".join(lines), markup=False, highlight=False)
    return 0


def redeliver(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner import clock
    from jobrunner.ops import webhooks

    found = webhooks.redeliver(ctx.store(), args.id, clock.now())
    sys.stdout.write(f"delivery {found.id} will be sent again ({found.msg_id})\n")
    return 0


def enable(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.models import shown_url
    from jobrunner.ops import webhooks

    if webhooks.enable(ctx.config, ctx.store(), args.url):
        sys.stdout.write(f"{shown_url(args.url)}: enabled; its waiting deliveries go out now\n")
    else:
        sys.stdout.write(f"{shown_url(args.url)}: was not disabled\n")
    return 0


def test(ctx: Any, args: argparse.Namespace) -> int:
    import asyncio

    from jobrunner import clock
    from jobrunner.ops import webhooks

    attempt = asyncio.run(webhooks.send_test(ctx.config, args.url, clock.now()))
    if args.json:
        _print_json(
            {
                "outcome": attempt.outcome,
                "status": attempt.status,
                "error": attempt.error,
                "body": attempt.body,
                "duration": round(attempt.duration, 6),
            }
        )
    else:
        answer = f"HTTP {attempt.status}" if attempt.status is not None else ""
        detail = "; ".join(x for x in (answer, attempt.error or "") if x)
        sys.stdout.write(f"{attempt.outcome}: {detail} ({attempt.duration:.3f}s)\n")
    return 0 if attempt.outcome == "delivered" else 1


def dispatch(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.ops import webhooks
    from jobrunner.webhooks.dispatcher import run_dispatcher

    return run_dispatcher(
        ctx.db_path, webhooks.webhooks_of(ctx.config), listen=ctx.config.postgres.listen
    )
