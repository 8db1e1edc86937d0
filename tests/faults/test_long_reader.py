"""A long reader: a read transaction held open by another process while 20,000 jobs run.

While the reader holds its snapshot no checkpoint can reset the write-ahead log, so it
grows past the daemon's bound ([daemon] wal_max). Once the reader goes, the daemon's
checkpoint service must bring the -wal file back under the bound within about a second,
not at its next 30 s period, and no job may suffer meanwhile.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PYTHON, Daemon, cli, env_for, wait_for
from tests.integration.conftest import wait_counts, write_config, write_module

pytestmark = pytest.mark.sqlite_only("a reader holding back the SQLite write-ahead log")

JOBS = 20_000
WAL_MAX = 1 << 20  # the test's bound: small, so 20,000 jobs overflow it many times

READER = """
import os, sys, time
import apsw
db, held, release = sys.argv[1:4]
conn = apsw.Connection(db, flags=apsw.SQLITE_OPEN_READONLY)
conn.execute("BEGIN")
conn.execute("SELECT count(*) FROM jobs").fetchall()  # the snapshot is taken here
open(held, "w").close()
deadline = time.monotonic() + 300
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.01)
conn.execute("COMMIT")
conn.close()
"""

SUBMIT = f"""
from jobrunner import Client
ids = Client().submit_many("jnoop:noop", [[] for _ in range({JOBS})])
print(len(ids))
"""


def wal_bytes(db: Path) -> int:
    try:
        return os.stat(f"{db}-wal").st_size
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_the_wal_is_truncated_under_its_bound_once_a_long_reader_goes(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    write_module(workdir, "jnoop", "def noop():\n    return None\n")
    write_config(workdir, workers="2", wal_max=f"{WAL_MAX}")
    daemons.append(d := Daemon(workdir, db))
    held, release = workdir / "held", workdir / "release"
    reader = subprocess.Popen([PYTHON, "-c", READER, str(db), str(held), str(release)])
    try:
        wait_for(lambda: held.exists() or reader.poll() is not None, timeout=30, what="reader")
        assert reader.poll() is None, "the reader failed"
        env = env_for(workdir, db)
        out = subprocess.run(
            [PYTHON, "-c", SUBMIT], cwd=workdir, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0 and out.stdout.strip() == str(JOBS), out.stderr
        final = wait_counts(workdir, db, 120, succeeded=JOBS)
        assert sum(final.values()) == JOBS
        # held back by the reader: the log grew far past the bound and stays there
        grown = wal_bytes(db)
        assert grown > 4 * WAL_MAX, grown
        assert "Traceback" not in d.log()
    finally:
        release.touch()
        reader.wait(timeout=30)
    assert reader.returncode == 0
    # the reader is gone: the daemon truncates within its 1 s check, not in 30 s
    wait_for(lambda: wal_bytes(db) <= WAL_MAX, timeout=4, every=0.05, what="WAL under bound")
    assert d.proc.poll() is None, d.log()


def test_a_bad_wal_bound_is_refused_with_file_and_line(workdir: Path, db: Path) -> None:
    path = write_config(workdir, wal_max='"tiny"')
    res = cli(workdir, db, "config", "check")
    assert res.code == 2
    assert (
        f"{path.name}:4: daemon.wal_max" in res.err
        and "wal_max" in res.err
        and "not a size" in res.err
    ), res.err
    assert not db.exists()
