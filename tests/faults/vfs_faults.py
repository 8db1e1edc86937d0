"""Fault injection for real jobrunner processes: a failing SQLite VFS and a stepped clock.

Test-only; nothing in `jobrunner/` knows about it. A process started through this
module (`python -m tests.faults.vfs_faults ARGS`, ARGS as for `jobrunner`, or
`-c CODE` to run a snippet against the library) first
installs, when its environment asks for them:

- `JR_FAULTS=PATH`: an apsw VFS that inherits every method from the real `unix` VFS
  and is made SQLite's default, so the unchanged store opens its database through it.
  While the control file PATH holds `full` or `ioerr` (optionally followed by the
  operations to fail, default `write,sync,truncate`), every such call on the database's
  files fails with SQLITE_FULL or SQLITE_IOERR, exactly as a full disk or a failing
  device would make the real VFS fail. An empty or missing file means no faults. Each
  injected fault appends a line to PATH.hits, so a test can prove faults were hit.
- `JR_CLOCK=PATH`: the daemon runs as a library function (`supervisor.run`, as pueue
  boots its daemon) with a clock whose wall time is the system's plus the offset in
  seconds written in PATH (missing: 0); its monotonic clock is the real one. Writing
  another offset steps the daemon's wall clock forward or back, as NTP or an operator
  would step a machine's clock.

Why a launcher and not a hook in the product: installing the VFS as the default
before the store opens needs no code path in jobrunner that exists only for tests,
and the daemon's clock is already injectable (`supervisor.run(clock=...)`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import apsw

from jobrunner import clock as jclock
from tests.helpers import Daemon, env_for

ALL_OPS = ("write", "sync", "truncate")


class FaultControl:
    """Reads the control file; re-reads it at most every 20 ms."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.hits = path + ".hits"
        self._checked = -1.0
        self._mode: tuple[str, tuple[str, ...]] | None = None

    def mode(self) -> tuple[str, tuple[str, ...]] | None:
        mono = time.monotonic()
        if mono - self._checked >= 0.02:
            self._checked = mono
            try:
                words = Path(self.path).read_text().split()
            except FileNotFoundError:
                words = []
            if words and words[0] in ("full", "ioerr"):
                ops = tuple(words[1].split(",")) if len(words) > 1 else ALL_OPS
                self._mode = (words[0], ops)
            else:
                self._mode = None
        return self._mode

    def check(self, op: str, filename: str) -> None:
        mode = self.mode()
        if mode is None or op not in mode[1]:
            return
        fd = os.open(self.hits, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {mode[0]} {op} {filename}\n".encode())
        finally:
            os.close(fd)
        if mode[0] == "full":
            raise apsw.FullError(f"injected SQLITE_FULL on {op} of {filename}")
        raise apsw.IOError(f"injected SQLITE_IOERR on {op} of {filename}")


class FaultyFile(apsw.VFSFile):
    def __init__(self, control: FaultControl, name: Any, flags: list[int]) -> None:
        super().__init__("unix", name, flags)
        self.control = control
        self.name = name.filename() if isinstance(name, apsw.URIFilename) else str(name)

    def xWrite(self, data: bytes, offset: int) -> None:  # noqa: N802 - apsw's names
        self.control.check("write", self.name)
        super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:  # noqa: N802
        self.control.check("sync", self.name)
        super().xSync(flags)

    def xTruncate(self, size: int) -> None:  # noqa: N802
        self.control.check("truncate", self.name)
        super().xTruncate(size)


class FaultyVFS(apsw.VFS):
    def __init__(self, control: FaultControl) -> None:
        self.control = control
        super().__init__("jr-faulty", "unix", makedefault=True)

    def xOpen(self, name: Any, flags: list[int]) -> FaultyFile:  # noqa: N802
        return FaultyFile(self.control, name, flags)


class SteppedClock:
    """The system clock, its wall time shifted by the offset in a file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._checked = -1.0
        self._offset = 0.0

    def now(self) -> float:
        mono = time.monotonic()
        if mono - self._checked >= 0.02:
            self._checked = mono
            with contextlib.suppress(FileNotFoundError, ValueError):
                self._offset = float(Path(self.path).read_text() or 0)
        return jclock.now() + self._offset

    def monotonic(self) -> float:
        return jclock.monotonic()


# -- the test side ----------------------------------------------------------------------------


def set_faults(ctl: Path, mode: str = "") -> None:
    """`full`, `ioerr` (optionally with ops: `full write`), or "" for none."""
    tmp = ctl.with_suffix(".tmp")
    tmp.write_text(mode)
    os.replace(tmp, ctl)


def hits(ctl: Path) -> list[str]:
    path = Path(str(ctl) + ".hits")
    return path.read_text().splitlines() if path.exists() else []


def launcher_env(workdir: Path, db: Path, **extra: str) -> dict[str, str]:
    env = env_for(workdir, db)
    env.update(extra)
    return env


class LaunchedDaemon(Daemon):
    """tests.helpers.Daemon, started through this module's launcher."""

    def __init__(self, workdir: Path, db: Path, *args: str, env: dict[str, str]) -> None:
        super().__init__(workdir, db, *args, env=env, module="tests.faults.vfs_faults")


# -- the launched process's side --------------------------------------------------------------


def _run_daemon_with_clock(argv: list[str], clock_file: str) -> int:
    import argparse

    from jobrunner.config import config_path, database_path, load_config
    from jobrunner.daemon import supervisor

    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int)
    args = parser.parse_args(argv)
    config = load_config(config_path(None))
    return supervisor.run(
        config,
        database_path(None, config),
        workers=args.workers,
        clock=SteppedClock(clock_file),
        log_stream=sys.stderr,
    )


def main(argv: list[str]) -> int:
    control = os.environ.get("JR_FAULTS")
    if control:
        globals()["_vfs"] = FaultyVFS(FaultControl(control))  # kept alive: it is registered
    if argv[:1] == ["-c"]:  # a Python snippet using the library (Client, the store)
        exec(compile(argv[1], "<snippet>", "exec"), {"__name__": "__snippet__"})
        return 0
    clock_file = os.environ.get("JR_CLOCK")
    if clock_file and argv[:1] == ["daemon"]:
        return _run_daemon_with_clock(argv[1:], clock_file)
    from jobrunner.cli.main import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
