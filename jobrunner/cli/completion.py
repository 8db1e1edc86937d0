"""`jobrunner completion bash|zsh|fish`: the shell's completion script, and the answer to
a TAB (argcomplete: the shell runs `jobrunner` with _ARGCOMPLETE set and the line so far;
main() hands the whole parser here, which prints the candidates and exits).

Commands, options and choices come from the real parser, so they never go stale; task
names come from the config's [tasks] (what `submit` most often names)."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

SHELLS = ("bash", "zsh", "fish")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "completion",
        help="print the shell completion script for bash, zsh or fish",
        description="Install for bash: jobrunner completion bash > "
        "~/.local/share/bash-completion/completions/jobrunner (zsh: into a folder on "
        "$fpath as _jobrunner; fish: ~/.config/fish/completions/jobrunner.fish); or "
        'eval "$(jobrunner completion bash)" in ~/.bashrc.',
    )
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(func=run)


def run(ctx: Any, args: argparse.Namespace) -> int:
    import argcomplete

    sys.stdout.write(argcomplete.shellcode(["jobrunner"], shell=args.shell))
    return 0


def _task_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """The config's [tasks.NAME] (a broken or missing config: none)."""
    try:
        from jobrunner.config import config_path, load_config

        config = load_config(config_path(getattr(parsed_args, "config", None)))
    except Exception:  # noqa: BLE001 - a TAB never shows an error
        return []
    return [name for name in config.tasks if name.startswith(prefix)]


def _states(prefix: str, **_: Any) -> list[str]:
    """States for `--state a,b`: the one being typed after the last comma."""
    from jobrunner.lifecycle import State

    done, _comma, typing = prefix.rpartition(",")
    head = f"{done}," if done else ""
    return [head + s.value for s in State if s.value.startswith(typing)]


def complete(parser: argparse.ArgumentParser) -> NoReturn:
    """Print the candidates for the line in the environment and exit (argcomplete)."""
    import argcomplete

    commands = _subparsers(parser)
    for action in commands.get("submit", parser)._actions:
        if action.dest == "target":
            action.completer = _task_names  # type: ignore[attr-defined]
    for command in commands.values():
        for action in command._actions:
            if "--state" in action.option_strings:
                action.completer = _states  # type: ignore[attr-defined]
    argcomplete.autocomplete(parser)
    raise SystemExit(0)  # not reached: autocomplete exits when it completes


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}
