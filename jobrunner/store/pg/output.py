"""Jobs' output on PostgreSQL, readable from every host: pieces in `job_output`, each at
its byte offset in the job's output, so `logs` and `logs --follow` on any machine read
"from offset N on" as they would a file (docs/architecture.md, "PostgreSQL").

Workers still write their host's files under `local_dir` (worker/spool.py: a write to a
file costs a worker nothing it can measure; a round trip to the server would); the
daemon ships what they wrote (daemon/shipping.py), live while a job runs and the rest
before its end is recorded."""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from jobrunner.store.pg.feed import Q
from jobrunner.store.sqlite_output import FileOutput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.store.pg.store import PostgresStore


def local_dir_for(url: str) -> str:
    """This host's folder for the output of jobs it runs, named after the database (no
    password), under $JOBRUNNER_PG_LOGS or ~/.cache/jobrunner."""
    parts = urlsplit(url)
    name = f"{parts.hostname or 'local'}_{parts.port or 5432}_{parts.path.strip('/') or 'db'}"
    base = os.environ.get("JOBRUNNER_PG_LOGS") or os.path.join(
        os.path.expanduser("~"), ".cache", "jobrunner"
    )
    return os.path.join(base, name + ".logs")


class PgOutput:
    shared = True  # the files are this host's staging; the database holds the output

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.local_dir = local_dir_for(store.path)

    def read(self, job_id: int, offset: int) -> bytes:
        rows = self.store._rows("output_read", (job_id, offset))
        if not rows:
            return b""
        data = b"".join(bytes(r[1]) for r in rows)
        return data[max(0, offset - int(rows[0][0])) :]

    def delete(self, job_ids: Sequence[int]) -> None:
        if not job_ids:
            return
        with self.store._tx() as cur:
            cur.execute(Q["output_delete"], (list(job_ids),))
        FileOutput.delete(self, job_ids)  # type: ignore[arg-type]  # this host's staging

    def ship(
        self, cuts: Sequence[tuple[int, int]], pieces: Sequence[tuple[int, bytes]]
    ) -> list[int | None]:
        """One transaction: drop each (job, offset)'s pieces from that offset on, then
        append each (job, data); returns where each piece went (None: not written, another
        shipper wrote there first). Readers of output are told at commit."""
        offsets: list[int | None] = []
        with self.store._tx() as cur:
            for job_id, at in cuts:
                cur.execute(Q["output_cut"], (job_id, at))
            for job_id, data in pieces:
                cur.execute(Q["output_append"], (job_id, data, job_id))
                got = cur.fetchone()
                offsets.append(None if got is None else int(got[0]))
            cur.execute(Q["output_notify"])
        return offsets
