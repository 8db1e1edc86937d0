"""Long CLI work shows a progress bar on a terminal and stays quiet when piped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, cli, env_for


def _jobs_file(workdir: Path, n: int) -> Path:
    path = workdir / "jobs.jsonl"
    path.write_text("".join(f'{{"task": "os.path:join", "args": ["{i}"]}}\n' for i in range(n)))
    return path


def _run_with_tty_stderr(workdir: Path, db: Path, *args: str) -> tuple[int, str, str]:
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "jobrunner", *args],
            cwd=workdir,
            env=env_for(workdir, db),
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=60,
        )
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    return proc.returncode, proc.stdout.decode(), b"".join(chunks).decode(errors="replace")


def test_bulk_submit_is_quiet_when_piped(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "submit", "--no-check", "--file", str(_jobs_file(workdir, 3000)))
    assert res.code == 0
    assert len(res.out.split()) == 3000
    assert res.err == ""


def test_bulk_submit_and_prune_show_a_bar_on_a_terminal(workdir: Path, db: Path) -> None:
    assert REPO.is_dir()
    code, out, err = _run_with_tty_stderr(
        workdir, db, "submit", "--no-check", "--file", str(_jobs_file(workdir, 3000))
    )
    assert code == 0 and len(out.split()) == 3000
    assert "reading" in err
    # cancel them all so prune has ended jobs to delete
    from jobrunner.store import open_store

    store = open_store(str(db))
    for job in store.job_list(limit=5000):
        store.job_cancel(job.id, job.created_at)  # ended in the past
    store.close()
    code, out, err = _run_with_tty_stderr(workdir, db, "prune", "--older-than", "0s", "--yes")
    assert code == 0 and "pruned 3000" in out
    assert "pruning" in err
