"""Jobs' output for a database on this host: files in `<database>.logs/`.

Workers write them (worker/spool.py owns the layout: one log per job that printed, and
the spools of running attempts); this is the reading and deleting side that the rest of
the code reaches through `Store.output()`. A backend shared by many hosts keeps output
where every host can read it instead, behind the same three methods.
"""

from __future__ import annotations

import contextlib
import os

from jobrunner.paths import log_dir_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


class FileOutput:
    shared = False  # the files are the output: read where they are written

    def __init__(self, db_path: str) -> None:
        self.local_dir = log_dir_for(db_path)  # nothing is created until a daemon runs

    def read(self, job_id: int, offset: int) -> bytes:
        """The job's output from byte `offset` on: its log, then a running attempt's
        spool, as one stream; b"" when there is no more (yet)."""
        from jobrunner.worker.spool import read_output

        return read_output(self.local_dir, job_id, offset)

    def delete(self, job_ids: Sequence[int]) -> None:
        """Forget the output of jobs that were deleted."""
        for job_id in job_ids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.local_dir, f"{job_id}.log"))

    def watched(self) -> list[str]:
        """The folders a write to which may be new output (a log, or a spool)."""
        from jobrunner.worker.spool import running_dir

        return [self.local_dir, running_dir(self.local_dir)]
