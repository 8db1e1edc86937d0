"""Many writers on one SQLite file: concurrent submitters, two daemons."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import PYTHON, Daemon, env_for
from tests.integration.conftest import (
    dumps_lines,
    jobs_in,
    ledger,
    overview,
    submit,
    submit_file,
    wait_counts,
    write_config,
)

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends

SUBMITTERS = 6
PER_FILE = 500
SINGLES = 50


@pytest.mark.slow
def test_concurrent_submitters_lose_and_duplicate_nothing(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, workers="2")
    daemons.append(Daemon(workdir, db))
    for s in range(SUBMITTERS):
        lines = [{"task": "jtasks:record", "args": [f"f{s}-{n}"]} for n in range(PER_FILE)]
        (workdir / f"jobs{s}.jsonl").write_text(dumps_lines(lines))

    env = env_for(workdir, db)
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "jobrunner", "submit", "--file", f"jobs{s}.jsonl"],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in range(SUBMITTERS)
    ]
    try:
        singles = {
            submit(workdir, db, "jtasks:record", "--args", f'["s-{n}"]'): f"s-{n}"
            for n in range(SINGLES)
        }
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    expected: dict[int, str] = dict(singles)  # job id -> the tag it was submitted with
    for s, (p, (out, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, err
        assert "database is locked" not in err
        ids = [int(x) for x in out.split()]
        assert len(ids) == PER_FILE
        for n, job_id in enumerate(ids):
            assert job_id not in expected, f"id {job_id} printed twice"
            expected[job_id] = f"f{s}-{n}"
    total = SUBMITTERS * PER_FILE + SINGLES
    assert len(expected) == total

    final = wait_counts(workdir, db, timeout=120, succeeded=total)
    assert sum(final.values()) == total, final
    assert {j["id"] for j in jobs_in(workdir, db, "succeeded")} == set(expected)

    entries = ledger(workdir)
    assert len(entries) == total
    assert Counter(e.job_id for e in entries).most_common(1)[0][1] == 1
    assert {e.job_id: e.tag for e in entries} == expected  # each ran with its own args


def test_two_daemons_on_one_database_run_each_job_once(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    a = Daemon(workdir, db, "--workers", "2")
    daemons.append(a)
    b = Daemon(workdir, db, "--workers", "2")
    daemons.append(b)
    listed = {d["pid"] for d in overview(workdir, db)["daemons"]}
    assert listed == {a.pid, b.pid}

    lines = [{"task": "jtasks:record", "args": [f"t{i}", 5]} for i in range(300)]
    ids = submit_file(workdir, db, lines)

    final = wait_counts(workdir, db, timeout=60, succeeded=300)
    assert sum(final.values()) == 300, final

    entries = ledger(workdir)
    per_id = Counter(e.job_id for e in entries)
    assert set(per_id) == set(ids)
    assert [i for i, n in per_id.items() if n > 1] == []
    assert {e.ppid for e in entries} == {a.pid, b.pid}  # both took a share

    status = overview(workdir, db)
    assert {d["pid"] for d in status["daemons"]} == {a.pid, b.pid}
    assert all(d["alive"] for d in status["daemons"])
