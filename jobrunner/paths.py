"""Where a database's companion files live."""

from __future__ import annotations

import os


def log_dir_for(db_path: str) -> str:
    """The folder of per-job output files: `<database>.logs/<job id>.log`."""
    return os.path.realpath(db_path) + ".logs"
