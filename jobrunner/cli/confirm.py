"""Asking before a command deletes or cancels many jobs at once (`prune`, `dlq purge`,
`cancel --state/--queue`): on a terminal the user answers; a script says `--yes`."""

from __future__ import annotations

import argparse
import sys

from jobrunner.errors import UsageError

EXIT_DECLINED = 1


def add_flags(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help=f"say what it would {verb}; change nothing"
    )
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask (for scripts)")


def check_can_ask(args: argparse.Namespace, command: str) -> None:
    """Refuse at once, before anything is read or written, when the answer could not be
    asked: no --yes, no --dry-run, and stdin not a terminal (a script, a pipe, cron)."""
    if args.yes or args.dry_run or sys.stdin.isatty():
        return
    raise UsageError(
        f"{command}: asks before it changes jobs, and stdin is not a terminal: "
        "pass --yes to go ahead, or --dry-run to see what it would do"
    )


def ask(args: argparse.Namespace, question: str) -> bool:
    """True to go ahead: --yes, or the user answered y."""
    if args.yes:
        return True
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() in ("y", "yes"):
        return True
    sys.stderr.write("jobrunner: nothing changed\n")
    return False


def by_state(counts: dict[str, int]) -> str:
    """`queued 10, running 2`: the states that have any."""
    return ", ".join(f"{state} {n}" for state, n in counts.items() if n)
