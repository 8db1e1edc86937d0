"""`status`, `list`, `wait`, `logs`, `cancel`, `prune`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from jobrunner.errors import UsageError
from jobrunner.lifecycle import FINAL, State, parse_states
from jobrunner.ops import get_job, job_record

EXIT_ENDED_BADLY = 1
EXIT_TIMEOUT = 124


MAX_JOB_ID = 2**63 - 1  # SQLite's largest rowid


def job_id(text: str) -> int:
    # ASCII digits only: int() would also take '١٢' (Arabic-Indic digits), ' 12', '1_2'
    # and '+12', so a mistyped id could name another job.
    if not (text.isascii() and text.isdigit()):
        if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
            raise argparse.ArgumentTypeError(f"{text!r} is not a job id (a positive number)")
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (a whole number)")
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (a positive number)")
    if value > MAX_JOB_ID:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (too large)")
    return value


def limit(text: str) -> int:
    """A --limit: a positive whole number SQLite can take (up to 2**63 - 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    if value > MAX_JOB_ID:
        raise argparse.ArgumentTypeError(f"{text} is too large (at most {MAX_JOB_ID})")
    return value


def states(text: str) -> list[str]:
    """A --state: one state, or several separated by commas."""
    try:
        return parse_states(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


LIST_LIMIT = 50
UTC_HELP = "show times in UTC (default: local time, as TZ says; JSON is always UTC)"


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("status", help="overview, or one job")
    p.add_argument("id", nargs="?", type=job_id, metavar="JOB_ID")
    p.add_argument("--json", action="store_true")
    p.add_argument("--utc", action="store_true", help=UTC_HELP)
    p.set_defaults(func=status)

    p = sub.add_parser(
        "list",
        help="list jobs, newest first",
        description="List jobs, newest first: when = a scheduled or retrying job's run time, "
        "else when it was submitted, started or ended; took = how long it has run, or its last "
        "attempt took.",
    )
    p.add_argument(
        "--state",
        type=states,
        action="extend",
        metavar="STATE[,STATE]",
        help="only jobs in these states (repeat or separate by commas)",
    )
    p.add_argument("--queue")
    p.add_argument("--task", help="only jobs of this function (module:function) or [tasks.NAME]")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument(
        "--limit", type=limit, default=LIST_LIMIT, help=f"at most N jobs (default {LIST_LIMIT})"
    )
    shown.add_argument("--all", action="store_true", help="every job that matches")
    p.add_argument("--json", action="store_true")
    p.add_argument("--utc", action="store_true", help=UTC_HELP)
    p.set_defaults(func=list_jobs)

    p = sub.add_parser(
        "wait",
        help="wait for a job to end; print its result",
        description="Exit 0 when it succeeded, 1 when it ended dead or "
        "cancelled, 124 when --timeout passed first.",
    )
    p.add_argument("id", type=job_id, metavar="JOB_ID")
    p.add_argument("--timeout", metavar="DUR")
    p.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    p.set_defaults(func=wait)

    p = sub.add_parser("logs", help="a job's captured stdout and stderr")
    p.add_argument("id", type=job_id, metavar="JOB_ID")
    p.add_argument("--follow", "-f", action="store_true", help="stream until the job ends")
    p.set_defaults(func=logs)

    from jobrunner.cli import confirm

    p = sub.add_parser(
        "cancel",
        help="cancel waiting or running jobs",
        description="Cancel the jobs named, or every job matching --state and --queue "
        "(asked first). Exit 1 when a job named had already ended.",
    )
    p.add_argument("ids", nargs="*", type=job_id, metavar="JOB_ID")
    p.add_argument(
        "--state",
        action="append",
        choices=[s.value for s in State if s not in FINAL],
        help="every job in this state (repeatable; default with --queue: all four)",
    )
    p.add_argument("--queue", help="every job in this queue that has not ended")
    confirm.add_flags(p, "cancel")
    p.set_defaults(func=cancel)

    p = sub.add_parser(
        "prune",
        help="delete ended jobs older than a duration",
        description="Asks first on a terminal; --yes for scripts.",
    )
    p.add_argument("--older-than", required=True, metavar="DUR")
    p.add_argument(
        "--state",
        action="append",
        choices=[s.value for s in State if s in FINAL],
        help="only jobs that ended so (repeatable; default: all three)",
    )
    confirm.add_flags(p, "delete")
    p.set_defaults(func=prune)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def status(ctx: Any, args: argparse.Namespace) -> int:
    store = ctx.store()
    if args.id is not None:
        job = get_job(store, args.id)
        attempts = store.attempt_list(job.id)
        record = job_record(store, job)
        if args.json:
            _print_json({**record, "attempt_history": [a.to_dict() for a in attempts]})
            return 0
        from jobrunner.cli import render

        render.use_utc(args.utc)
        render.job_detail(job, attempts, after=record.get("after", []))
        if job.state is State.RUNNING:
            _say_if_awaiting_rescue(job, store.daemon_list())
        return 0
    from jobrunner import clock
    from jobrunner.ops import daemons as liveness
    from jobrunner.ops import queues

    now = clock.now()
    counts = store.job_counts()
    daemons = store.daemon_list()
    dead = {d.id: why for d in daemons if (why := liveness.why_dead(d, now)) is not None}
    awaiting = liveness.awaiting_rescue(store.job_running(RUNNING_AT_MOST), daemons, now)
    failures = store.job_recent_failures(5)
    wal_bytes = wal_size(store)
    warnings = database_warnings(store.path, wal_bytes)
    throttled = queues.throttled(store, ctx.config, counts, now)
    deliveries = store.webhook_counts()
    if deliveries.get("failed"):
        warnings.append(
            f"{deliveries['failed']} webhook deliveries failed "
            "(jobrunner webhooks deliveries --failed)"
        )
    if args.json:
        from jobrunner.models import epoch, iso

        by_state: dict[str, int] = {s.value: 0 for s in State}
        by_queue: dict[str, dict[str, int]] = {}
        for (state, queue), n in counts.items():
            by_state[state] = by_state.get(state, 0) + n
            by_queue.setdefault(queue, {})[state] = n
        _print_json(
            {
                "counts": by_state,
                "queues": by_queue,
                "daemons": [
                    {
                        "id": d.id,
                        "host": d.host,
                        "pid": d.pid,
                        "workers": d.workers,
                        "queues": d.queues,
                        "alive": d.id not in dead,
                        "dead": dead.get(d.id),  # why it is presumed dead
                        "started_at": iso(d.started_at),
                        "heartbeat_at": iso(d.heartbeat_at),
                        "lease_until": iso(d.lease_until),
                        "started_at_epoch": epoch(d.started_at),
                        "heartbeat_at_epoch": epoch(d.heartbeat_at),
                        "lease_until_epoch": epoch(d.lease_until),
                    }
                    for d in daemons
                ],
                "awaiting_rescue": [j.id for j in awaiting],
                "recent_failures": [j.to_dict() for j in failures],
                "wal_bytes": wal_bytes,
                "webhook_deliveries": {
                    state: deliveries.get(state, 0) for state in ("pending", "delivered", "failed")
                },
                "warnings": warnings,
                "throttled": {
                    q: {**t, "next_window": iso(t["next_window"])} for q, t in throttled.items()
                },
            }
        )
        return 0
    from jobrunner.cli import render

    render.use_utc(args.utc)
    render.overview(counts, daemons, failures, dead, awaiting)
    if deliveries:
        render.console.print(
            "Webhook deliveries: "
            + ", ".join(f"{deliveries.get(s, 0)} {s}" for s in ("pending", "delivered", "failed")),
            markup=False,
        )
    for queue, t in throttled.items():
        render.console.print(
            f"throttled: {queue} ({t['rate']}; {t['waiting']} waiting for the next window)",
            markup=False,
        )
    render.warnings(warnings)
    return 0


RUNNING_AT_MOST = 100_000  # running jobs are bounded by the daemons' claims


def _say_if_awaiting_rescue(job: Any, daemons: list[Any]) -> None:
    from jobrunner import clock
    from jobrunner.cli.render import console
    from jobrunner.ops import daemons as liveness

    owner = next((d for d in daemons if d.id == job.owner), None)
    why = "gone" if owner is None else liveness.why_dead(owner, clock.now())
    if why is not None:
        console.print(
            f"awaiting rescue: its daemon {job.owner} is {why}; a live daemon sends it back to wait"
        )


def wal_size(store: Any) -> int | None:
    """The write-ahead log's size, None for a backend that has no such file."""
    maintenance = store.maintenance()
    return None if maintenance is None else maintenance.wal_bytes()


def database_warnings(path: str, wal_bytes: int | None) -> list[str]:
    """What an operator should know about the database file itself."""
    from jobrunner.config import CHECKPOINT_EVERY, WAL_WARN_BYTES

    warnings = []
    if wal_bytes is not None and wal_bytes > WAL_WARN_BYTES:
        warnings.append(
            f"the write-ahead log {path}-wal is {wal_bytes / (1 << 20):.0f} MiB (over "
            f"{WAL_WARN_BYTES >> 20} MiB): a running daemon truncates it every "
            f"{CHECKPOINT_EVERY:g}s, unless a long-running reader is holding checkpoints back"
        )
    return warnings


def list_jobs(ctx: Any, args: argparse.Namespace) -> int:
    return show_jobs(ctx, args, args.state, args.queue, args.task)


def show_jobs(
    ctx: Any,
    args: argparse.Namespace,
    states: list[str] | None,
    queue: str | None = None,
    task: str | None = None,
    title: str | None = None,
    empty: str | None = None,
) -> int:
    """`list` and `dlq list`: the newest jobs (`--limit`, or `--all`), a table or JSON, and
    a line on stderr when more matched than were shown."""
    shown = MAX_JOB_ID if args.all else args.limit
    # one more than shown: whether jobs were left out, without counting them all
    jobs = ctx.store().job_list(states, queue, min(shown + 1, MAX_JOB_ID), task)
    left_out = len(jobs) > shown
    del jobs[shown:]
    if args.json:
        _print_json([j.to_dict() for j in jobs])
    else:
        from jobrunner.cli import render

        render.use_utc(getattr(args, "utc", False))
        if not jobs and empty:
            render.console.print(empty)
        else:
            render.job_table(jobs, title, waits_for(ctx.store(), jobs))
    if left_out:  # on stderr: stdout stays the table, or JSON
        sys.stdout.flush()
        sys.stderr.write(
            f"jobrunner: the newest {shown} jobs shown, more match; --limit N or --all for more\n"
        )
    return 0


def waits_for(store: Any, jobs: list[Any]) -> dict[int, list[int]]:
    """Each blocked job's dependencies that have not ended yet: what `list` shows it
    waiting for (one read per blocked job shown)."""
    from jobrunner.lifecycle import FINAL

    out: dict[int, list[int]] = {}
    for job in jobs:
        if job.state == "blocked":
            deps = store.job_dependencies(job.id)
            out[job.id] = [d.job_id for d in deps if d.state is not None and d.state not in FINAL]
    return out


def wait(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.durations import parse_duration
    from jobrunner.ops.waiting import wait_for_end

    timeout = parse_duration(args.timeout, "--timeout") if args.timeout is not None else None
    store = ctx.store()  # a missing or foreign database is refused before waiting on it
    if args.progress:
        from jobrunner.cli.render import progress_display

        with progress_display(args.id) as show:
            job = wait_for_end(store, args.id, timeout, on_progress=show)
    else:
        job = wait_for_end(store, args.id, timeout)
    if job.state not in FINAL:
        sys.stderr.write(f"jobrunner: job {args.id} still {job.state} after {args.timeout}\n")
        return EXIT_TIMEOUT
    if job.state is State.SUCCEEDED:
        sys.stdout.write(json.dumps(job.result, ensure_ascii=False) + "\n")
        return 0
    sys.stderr.write(f"jobrunner: job {job.id} ended {job.state}: {job.error or ''}\n")
    return EXIT_ENDED_BADLY


def logs(ctx: Any, args: argparse.Namespace) -> int:
    store = ctx.store()
    get_job(store, args.id)
    out = sys.stdout.buffer

    def write(chunk: bytes) -> None:
        out.write(chunk)
        out.flush()

    if args.follow:
        from jobrunner.ops.waiting import follow_output

        follow_output(store, args.id, write)
    else:
        offset = 0
        output = store.output()
        while chunk := output.read(args.id, offset):  # the log, then a running attempt's
            write(chunk)
            offset += len(chunk)
    return 0


def cancel(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner import clock
    from jobrunner.cli import confirm
    from jobrunner.ops import control
    from jobrunner.ops.waiting import wait_for_stop

    filtered = args.state is not None or args.queue is not None
    if bool(args.ids) == filtered:
        raise UsageError("name JOB_IDs, or --state/--queue for every job matching")
    store = ctx.store()
    ids = args.ids
    if filtered:
        confirm.check_can_ask(args, "cancel --state/--queue")
        states = [State(s) for s in args.state] if args.state else control.NOT_ENDED
        found = control.matching(store, states, args.queue)
        counts = {s.value: sum(1 for x in found.values() if x is s) for s in states}
        where = f" in queue {args.queue!r}" if args.queue is not None else ""
        if args.dry_run or not found:
            verb = "would cancel" if args.dry_run else "cancelled"
            detail = f": {confirm.by_state(counts)}" if found else ""
            sys.stdout.write(f"{verb} {len(found)} job(s){where}{detail}\n")
            return 0
        question = f"cancel {len(found)} job(s){where} ({confirm.by_state(counts)})?"
        if not confirm.ask(args, question):
            return confirm.EXIT_DECLINED
        ids = list(found)
    elif args.dry_run:
        for i in ids:
            state = get_job(store, i).state
            what = f"already ended {state}" if state in FINAL else f"{state}: would be cancelled"
            sys.stdout.write(f"job {i} {what}\n")
        return 0
    done = control.cancel_many(store, ids, clock.now())
    ended_before = 0
    for i, result in done.items():
        if result.outcome is control.CancelOutcome.ALREADY_ENDED:
            # exit 1, not 2: the request was sound, the job had just ended first
            ended_before += 1
            sys.stderr.write(
                f"jobrunner: job {i} already ended {result.state}; nothing to cancel\n"
            )
        elif result.outcome is control.CancelOutcome.CANCELLED:
            sys.stdout.write(f"job {i} cancelled\n")
    for i, result in done.items():  # their daemons kill them side by side
        if result.outcome is control.CancelOutcome.REQUESTED:
            job = wait_for_stop(store, ctx.config, i)
            if job.state is not State.RUNNING:
                sys.stdout.write(f"job {i} {job.state}\n")
            else:
                sys.stdout.write(f"job {i}: cancel requested; its daemon will stop it\n")
    return EXIT_ENDED_BADLY if ended_before else 0


def prune(ctx: Any, args: argparse.Namespace) -> int:
    from jobrunner.ops import control

    states = [State(s) for s in args.state] if args.state else list(control.ENDED)
    return delete_ended(ctx, args, states, "prune", "pruned {} job(s)")


def delete_ended(
    ctx: Any, args: argparse.Namespace, states: list[State], command: str, done: str
) -> int:
    """`prune` and `dlq purge`: count, ask (or --dry-run: say), delete."""
    from jobrunner import clock
    from jobrunner.cli import confirm
    from jobrunner.cli.bar import progress_bar
    from jobrunner.durations import parse_duration
    from jobrunner.ops import control

    age = parse_duration(args.older_than, "--older-than")
    store = ctx.store()
    confirm.check_can_ask(args, command)
    now = clock.now()  # one bound for the count and the deletion
    counted = control.prunable(store, age, now, states)
    if args.dry_run:
        detail = f": {confirm.by_state(counted.removed)}" if counted.total else ""
        sys.stdout.write(f"would delete {counted.total} job(s){detail}\n")
        return 0
    if counted.total:
        question = (
            f"delete {counted.total} job(s) ({confirm.by_state(counted.removed)}) that ended "
            f"more than {args.older_than} ago, with their logs?"
        )
        if not confirm.ask(args, question):
            return confirm.EXIT_DECLINED
    with progress_bar("pruning") as advance:
        pruned = control.prune(store, age, now, states, on_batch=advance)
    sys.stdout.write(done.format(pruned.total) + "\n")
    return 0
