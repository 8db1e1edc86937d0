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
    p.add_argument(
        "--log-file",
        metavar="PATH",
        help="append the daemon's log to PATH instead of stderr (reopened on SIGHUP: "
        "`jobrunner daemon reload` after logrotate moves it)",
    )
    p.set_defaults(func=run)
    add_control_parsers(p)


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
    if args.log_file is not None:
        _log_to(args.log_file)
    workers = args.workers if args.workers is not None else config.daemon.workers
    where = "--workers" if args.workers is not None else "[daemon] workers"
    if warning := workers_warning(workers, where):
        from jobrunner.daemon.events import EventLog

        log = EventLog(sys.stderr, args.log_format)
        log.emit("log", "warning", message=warning)
        log.flush()
    return supervisor.run(
        config,
        ctx.db_path,
        workers=args.workers,
        queues=queues,
        log_format=args.log_format,
        log_stream=sys.stderr,
        # Started without a config: the one written later where it would have been found.
        config_file=config.path or os.path.abspath(DEFAULT_CONFIG),
        log_file=args.log_file and os.path.abspath(args.log_file),
    )


def _log_to(path: str) -> None:
    """Make `path` the daemon's stderr: its log, and whatever its children print."""
    from jobrunner.daemon.events import open_log_file

    try:
        fd = open_log_file(path)
    except OSError as exc:
        raise UsageError(f"--log-file {path}: cannot open it ({exc.strerror})") from None
    sys.stderr.flush()
    os.dup2(fd, 2)
    os.close(fd)


WORKERS_PER_CORE_AT_MOST = 4  # beyond this, more workers mostly add memory and contention


def workers_warning(workers: int, where: str) -> str | None:
    """A warning (not an error: jobs that wait on the network can use many workers) when
    `workers` is far above the CPU cores this process may use."""
    import os

    cores = len(os.sched_getaffinity(0))
    if workers <= WORKERS_PER_CORE_AT_MOST * cores:
        return None
    return (
        f"{where} = {workers} is far above the {cores} CPU core(s) this daemon may use: "
        f"each worker is a process; more than {WORKERS_PER_CORE_AT_MOST} a core helps only "
        "jobs that mostly wait"
    )


def add_control_parsers(p: Any) -> None:
    """`jobrunner daemon stop|reload`: signal this machine's daemons of the database."""
    sub = p.add_subparsers(dest="action", metavar="[stop | reload]", parser_class=type(p))
    s = sub.add_parser(
        "stop",
        help="drain and stop the running daemons of this database on this machine",
        description="Sends SIGTERM to each daemon of this database running on this machine "
        "(they finish their running jobs within [daemon] shutdown_grace) and waits until "
        "they have exited. Exits 0 when none is left here, 1 when one outlived --timeout.",
    )
    s.add_argument("--no-wait", action="store_true", help="signal and return at once")
    s.add_argument(
        "--timeout",
        metavar="DUR",
        help="how long to wait (default: shutdown_grace + kill_grace + 10s)",
    )
    s.set_defaults(func=stop)
    s = sub.add_parser(
        "reload",
        help="make the running daemons of this database on this machine reread their config",
        description="Sends SIGHUP: each daemon rereads its config file (a bad one is refused "
        "and the old one kept, as its log says) and reopens its --log-file.",
    )
    s.set_defaults(func=reload)


def _local_daemons(ctx: Any) -> list[Any]:
    from jobrunner import clock
    from jobrunner.ops.daemons import runs_a_daemon, split_by_node

    store = ctx.store()
    here, elsewhere = split_by_node(store.daemon_list(), clock.now())
    for d in elsewhere:
        sys.stderr.write(
            f"jobrunner: daemon {d.id} (pid {d.pid}) runs on {d.host}, not on this "
            "machine: run this command there\n"
        )
    return [d for d in here if runs_a_daemon(d.pid)]


def _signal_here(ctx: Any, sig: int) -> list[Any]:
    """Signal each daemon of the database on this machine; those that were gone already
    are dropped. None at all: said on stdout (not an error: there is nothing to do)."""
    sent = []
    for d in _local_daemons(ctx):
        try:
            os.kill(d.pid, sig)
        except ProcessLookupError:
            continue
        except PermissionError:
            raise UsageError(
                f"daemon {d.id} (pid {d.pid}): not allowed to signal it (run as its user)"
            ) from None
        sent.append(d)
    if not sent:
        sys.stdout.write("no daemon of this database is running on this machine\n")
    return sent


def stop(ctx: Any, args: argparse.Namespace) -> int:
    import signal
    import time

    from jobrunner.durations import parse_duration
    from jobrunner.ops.daemons import runs_a_daemon

    daemon_config = ctx.config.daemon
    timeout = daemon_config.shutdown_grace + daemon_config.kill_grace + 10
    if args.timeout is not None:
        timeout = parse_duration(args.timeout, "--timeout")
    sent = _signal_here(ctx, signal.SIGTERM)
    for d in sent:
        sys.stdout.write(f"stopping daemon {d.id} (pid {d.pid}): draining its running jobs\n")
    if args.no_wait or not sent:
        return 0
    sys.stdout.flush()
    started = time.monotonic()
    waiting = list(sent)
    while waiting and time.monotonic() - started < timeout:
        time.sleep(0.05)
        for d in [d for d in waiting if not runs_a_daemon(d.pid)]:  # a zombie: gone
            waiting.remove(d)
            took = time.monotonic() - started
            sys.stdout.write(f"stopped daemon {d.id} (pid {d.pid}) after {took:.1f}s\n")
            sys.stdout.flush()
    for d in waiting:
        sys.stderr.write(
            f"jobrunner: daemon {d.id} (pid {d.pid}) still running after {timeout:g}s\n"
        )
    return 1 if waiting else 0


def reload(ctx: Any, args: argparse.Namespace) -> int:
    import signal

    for d in _signal_here(ctx, signal.SIGHUP):
        sys.stdout.write(f"asked daemon {d.id} (pid {d.pid}) to reread its config\n")
    return 0
