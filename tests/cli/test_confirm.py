"""Commands that delete or cancel many jobs at once ask first.

`prune`, `dlq purge` and `cancel --state/--queue`: on a terminal they ask; a script passes
--yes; without either they refuse (exit 2, one line, nothing changed); --dry-run says
what they would do. `cancel` takes several ids; one that had already ended is exit 1.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from jobrunner.store import open_store
from tests.cli.support import assert_one_line_error, backdate, records, submit
from tests.helpers import PYTHON, cli, env_for
from tests.store.test_conformance import make_dead


def _states(workdir: Path, db: Path) -> dict[int, str]:
    return {j["id"]: j["state"] for j in records(workdir, db)}


def _ended_mix(workdir: Path, db: Path) -> dict[str, int]:
    """One job dead, one cancelled, one queued."""
    queued = submit(workdir, db, "--cmd", "--", "true")
    cancelled = submit(workdir, db, "--cmd", "--", "true")
    assert cli(workdir, db, "cancel", str(cancelled)).code == 0
    store = open_store(str(db))
    try:
        dead = make_dead(store).id  # the conformance suite's: ended at a fixed time
    finally:
        store.close()
    backdate(db, dead, 1_800_000_000 - time.time() + 3600)  # an hour ago
    return {"queued": queued, "cancelled": cancelled, "dead": dead}


def _on_a_terminal(workdir: Path, db: Path, answer: bytes, *argv: str) -> tuple[int, bytes]:
    """Run with stdin (and stderr, where the question goes) on a pseudo-terminal."""
    master, slave = os.openpty()
    try:
        os.write(master, answer)  # typed ahead: read once the question is asked
        proc = subprocess.run(
            [PYTHON, "-m", "jobrunner", *argv],
            cwd=workdir,
            env=env_for(workdir, db),
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=60,
        )
        os.close(slave)
        slave = -1
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            seen += chunk
        return proc.returncode, seen
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_prune_and_purge_ask_on_a_terminal_refuse_elsewhere_and_dry_run_counts(
    workdir: Path, db: Path
) -> None:
    ids = _ended_mix(workdir, db)
    for argv in (["prune", "--older-than", "0"], ["dlq", "purge"]):
        res = cli(workdir, db, *argv, input="y\n")  # stdin a pipe: no one to ask
        assert_one_line_error(res, argv[0], "--yes", "--dry-run")
    res = cli(workdir, db, "prune", "--older-than", "0", "--dry-run")
    assert (res.code, res.out) == (0, "would delete 2 job(s): dead 1, cancelled 1\n")
    res = cli(workdir, db, "dlq", "purge", "--dry-run")
    assert (res.code, res.out) == (0, "would delete 1 job(s): dead 1\n")
    code, screen = _on_a_terminal(workdir, db, b"n\n", "prune", "--older-than", "0s")
    assert code == 1
    assert b"delete 2 job(s) (dead 1, cancelled 1)" in screen and b"[y/N]" in screen
    assert b"nothing changed" in screen
    assert len(_states(workdir, db)) == 3

    argv = ("prune", "--older-than", "0s", "--state", "cancelled")
    code, screen = _on_a_terminal(workdir, db, b"y\n", *argv)
    assert code == 0 and b"delete 1 job(s) (cancelled 1)" in screen
    res = cli(workdir, db, "dlq", "purge", "-y")
    assert (res.code, res.out) == (0, "purged 1 dead job(s)\n")
    assert _states(workdir, db) == {ids["queued"]: "queued"}


def test_cancel_takes_several_ids_and_filters(workdir: Path, db: Path) -> None:
    mail = [submit(workdir, db, "--cmd", "--queue", "mail", "--", "true") for _ in range(3)]
    later = submit(workdir, db, "--cmd", "--delay", "1h", "--", "true")
    other = submit(workdir, db, "--cmd", "--", "true")

    res = cli(workdir, db, "cancel", "--queue", "mail")  # stdin not a terminal: refused
    assert_one_line_error(res, "--yes")
    res = cli(workdir, db, "cancel", "--queue", "mail", "--dry-run")
    assert (res.code, res.out) == (0, "would cancel 3 job(s) in queue 'mail': queued 3\n")
    res = cli(workdir, db, "cancel", "--state", "queued", "--queue", "mail", "--yes")
    assert (res.code, res.out) == (0, "".join(f"job {i} cancelled\n" for i in mail))

    # several ids: an unknown one changes nothing (exit 2) ...
    assert_one_line_error(cli(workdir, db, "cancel", str(later), "999"), "999")
    assert _states(workdir, db)[later] == "scheduled"
    # ... one that had already ended is said on stderr, the others cancelled, exit 1
    res = cli(workdir, db, "cancel", str(later), str(mail[0]), str(other))
    assert res.code == 1
    assert res.out == f"job {later} cancelled\njob {other} cancelled\n"
    assert res.err == f"jobrunner: job {mail[0]} already ended cancelled; nothing to cancel\n"
    assert set(_states(workdir, db).values()) == {"cancelled"}
