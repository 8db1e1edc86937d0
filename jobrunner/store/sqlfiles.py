"""Reading the SQL the stores keep in files: named queries (`-- name: NAME` blocks) and
numbered migrations (`NNNN_what.sql`). Plain file reads: importlib.resources pulls in
pathlib, too slow for `jobrunner submit`."""

from __future__ import annotations

import os
import re


def named_queries(path: str) -> dict[str, str]:
    """Each `-- name: NAME` block of the file, its comment lines left out."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    queries: dict[str, str] = {}
    for chunk in re.split(r"^-- name: ", text, flags=re.M)[1:]:
        name, _, body = chunk.partition("\n")
        lines = [ln for ln in body.splitlines() if not ln.lstrip().startswith("--")]
        queries[name.strip()] = "\n".join(lines).strip()
    return queries


def numbered_files(folder: str) -> list[tuple[int, str]]:
    """(number, SQL) of each `NNNN_*.sql` file in `folder`, in order."""
    found = []
    for name in os.listdir(folder):
        match = re.match(r"^(\d+)_.*\.sql$", name)
        if match:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                found.append((int(match.group(1)), f.read()))
    return sorted(found)
