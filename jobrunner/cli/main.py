"""The `jobrunner` command: parse, call, render. Logic lives below the CLI.

argparse rather than typer: `jobrunner submit` must start in well under 60 ms, and
importing typer alone takes ~50 ms here. Command modules and rich load lazily.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from jobrunner.errors import JobrunnerError, UsageError

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from typing import Any, NoReturn

EXIT_USAGE = 2

# command -> module in jobrunner.cli that defines add_parser(subparsers) and run(ctx, args)
COMMANDS = {
    "submit": "submit",
    "daemon": "daemon",
    "status": "jobs",
    "list": "jobs",
    "wait": "jobs",
    "logs": "jobs",
    "cancel": "jobs",
    "prune": "jobs",
    "dlq": "dlq",
    "schedules": "schedules",
    "config": "schedules",
    "backup": "maintenance",
    "check": "maintenance",
    "vacuum": "maintenance",
    "top": "maintenance",
    "events": "events",
    "serve": "serve",
    "webhooks": "webhooks",
    "migrate": "database",
    "copy": "database",
    "completion": "completion",
}


class _Formatter(argparse.HelpFormatter):
    """Sized from os.get_terminal_size: the default imports shutil (and with it bz2 and
    lzma), a few ms of every `jobrunner submit`."""

    def __init__(self, prog: str) -> None:
        try:
            width = os.get_terminal_size().columns
        except OSError:
            width = 100
        super().__init__(prog, width=max(40, width - 2))


class Parser(argparse.ArgumentParser):
    """Errors are one line on stderr with exit code 2, not usage plus traceback, with a
    guess at what a mistyped command or option meant. No prefix abbreviations: `--queu`
    must not quietly mean `--queue` (nor go on meaning it once another `--queu...`
    option exists)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        # Each subparser checks its own leftovers: only it knows the options it has.
        parsed, extras = super().parse_known_args(args, namespace)
        for extra in extras:
            if extra.startswith("--"):
                guess = suggest(extra.partition("=")[0], self._option_string_actions)
                if guess:
                    self.error(f"unrecognized argument {extra}: did you mean {guess}?")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        import re

        # argparse's message for a value outside `choices` (a command, an action, --state)
        wrong = re.match(
            r"(argument [^:]*: )?invalid choice: '(.*)' \(choose from (.*)\)$", message
        )
        if wrong:
            where, value, choices = wrong.groups()
            guess = suggest(value, re.findall(r"'([^']*)'", choices))
            if guess:
                message = f"{where or ''}invalid choice: {value!r}: did you mean {guess!r}?"
        sys.stderr.write(f"{self.prog}: error: {one_line(message)} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def suggest(word: str, known: Any) -> str | None:
    """The known word closest to a mistyped one, if one is close enough."""
    import difflib

    close = difflib.get_close_matches(word, [str(k) for k in known], n=1, cutoff=0.6)
    return close[0] if close else None


def one_line(message: str) -> str:
    """Control characters escaped: an argument holding a newline (argparse quotes the
    arguments it rejects) must not split the one-line error."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


# Commands that only read the database (module.function of their run): a broken config
# must not lock a user out of their jobs, so for these it is a warning and they go on.
READERS = frozenset(
    {
        "jobs.status",
        "jobs.list_jobs",
        "jobs.wait",
        "jobs.logs",
        "events.events",
        "dlq.dlq_list",
        "dlq.dlq_show",
        "maintenance.backup",
        "maintenance.check",
        "maintenance.top",
    }
)


def _reads_only(args: argparse.Namespace) -> bool:
    func = getattr(args, "func", None)
    name = f"{getattr(func, '__module__', '')}.{getattr(func, '__name__', '')}"
    return name.removeprefix("jobrunner.cli.") in READERS


class Context:
    """Where the database and config are, loaded on first use."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._config: Any = None
        self._store: Any = None

    @property
    def config(self) -> Any:
        if self._config is None:
            from jobrunner.config import config_path, load_config
            from jobrunner.errors import ConfigError

            path = config_path(self.args.config)
            try:
                self._config = load_config(path)
            except ConfigError as exc:
                import os

                # A config named that is not there is a mistake in the command (reading
                # on would read another database); one that is there but broken must not
                # lock a reader out of its jobs.
                if not _reads_only(self.args) or (path is not None and not os.path.exists(path)):
                    raise
                from jobrunner.config import database_only

                # Its `database` still counts where it can be read: the right file is read.
                self._config = database_only(path)
                sys.stderr.write(
                    f"jobrunner: warning: {one_line(str(exc))}; "
                    "going on without the config (this command only reads the database)\n"
                )
        return self._config

    @property
    def db_path(self) -> str:
        from jobrunner.config import database_path

        return database_path(self.args.db, self.config)

    def store(self, create: bool = False) -> Any:
        """The store; by default only an existing database (reads never create one)."""
        if self._store is None:
            from jobrunner.store import open_store

            self._store = open_store(
                self.db_path,
                create=create,
                synchronous=self.config.synchronous,
                listen=self.config.postgres.listen,
            )
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def build_parser(command: str | None) -> Parser:
    parser = Parser(prog="jobrunner", description="A durable background-job runner.")
    parser.add_argument(
        "--db",
        help="database file (default: $JOBRUNNER_DB, the config's `database`, ./jobrunner.db)",
    )
    parser.add_argument(
        "--config", help="config file (default: $JOBRUNNER_CONFIG, ./jobrunner.toml)"
    )
    parser.add_argument("--version", action="version", version="jobrunner 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    # Load only the module of the command being run; all of them for --help.
    modules = {COMMANDS[command]} if command in COMMANDS else set(COMMANDS.values())
    for name in sorted(modules, key=list(COMMANDS.values()).index):
        importlib.import_module(f"jobrunner.cli.{name}").add_parsers(sub)
    return parser


def _command_of(argv: list[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--db", "--config"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: list[str] | None = None) -> int:
    if argv is None and "_ARGCOMPLETE" in os.environ:  # a TAB in a shell (cli/completion.py)
        from jobrunner.cli.completion import complete

        complete(build_parser(None))
    argv = sys.argv[1:] if argv is None else argv
    command = _command_of(argv)
    if command != "submit":  # submit is quick, and `signal` costs it a millisecond
        _restore_sigint()
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    ctx = Context(args)
    try:
        return int(args.func(ctx, args) or 0)
    except JobrunnerError as exc:
        sys.stderr.write(f"jobrunner: error: {one_line(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        ctx.close()


def _restore_sigint() -> None:
    """Ctrl-C (SIGINT) ends a command with exit 130 (`top`, `wait`, `logs --follow`; the
    daemon drains). A shell starts a background job (`cmd &` in a script, `nohup`) with
    SIGINT ignored, and Python then leaves it ignored: put its default handler back."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def fail(message: str) -> NoReturn:
    raise UsageError(message)


if __name__ == "__main__":
    raise SystemExit(main())
