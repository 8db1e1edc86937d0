"""Running the CLI for the fuzzers: in-process through jobrunner.cli.main.main (fast, for
the bulk of examples) or as a real subprocess with a bytes argv (for what only a real
argv can carry: bytes that are not UTF-8). And the property every run must meet."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import apsw

from jobrunner.cli.main import main
from tests.helpers import PYTHON, env_for


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_in_process(argv: list[str], stdin: str = "") -> Run:
    """main(argv) with stdin, stdout and stderr captured; an exception that escapes
    main() is reported as a failed assertion with its traceback."""
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse errors and --help
                code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the traceback is the finding
        raise AssertionError(f"main({argv!r:.300}) raised:\n{traceback.format_exc()}") from None
    finally:
        sys.stdin = old_stdin
    return Run(code, out.getvalue(), err.getvalue())


def run_subprocess(
    workdir: Path, db: Path, argv: list[bytes], stdin: bytes = b"", locale: str | None = None
) -> Run:
    env = env_for(workdir, db)
    if locale is not None:
        env.update(LC_ALL=locale, LANG=locale)
        env.pop("PYTHONUTF8", None)
        env.pop("PYTHONIOENCODING", None)
    proc = subprocess.run(
        [PYTHON.encode(), b"-m", b"jobrunner", *argv],
        cwd=workdir,
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    return Run(
        proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )


def assert_clean_error(run: Run, code: int = 2) -> None:
    """Exit `code`, nothing on stdout, exactly one line on stderr, no traceback."""
    assert run.code == code, (run.code, run.out[:300], run.err[:600])
    assert run.out == "", run.out[:300]
    assert "Traceback" not in run.err, run.err[-2000:]
    assert run.err.endswith("\n") and run.err.count("\n") == 1, run.err[:600]
    assert run.err.startswith("jobrunner"), run.err[:300]


def assert_ok_or_clean_error(run: Run) -> None:
    """A submit either succeeds (one id per line on stdout) or fails cleanly with exit 2."""
    if run.code == 0:
        assert all(line.isdigit() for line in run.out.split()), run.out[:300]
        assert "Traceback" not in run.err
    else:
        assert_clean_error(run)


def db_content(db: Path) -> object:
    """Everything the database holds (None when there is none), to compare a database
    before and after a refused command."""
    if str(db).startswith("postgresql://"):
        import psycopg

        with psycopg.connect(str(db)) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            ]
            if not tables:
                return None
            return {
                t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"').fetchall()))
                for t in tables
            }
    if not db.exists():
        return None
    con = apsw.Connection(
        f"file:{db}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    )
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"'))) for t in tables}
    finally:
        con.close()


def db_files(db: Path) -> list[str]:
    from tests.cli.support import db_files as files

    return files(db)
