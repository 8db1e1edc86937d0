"""Operations on a database as a whole: bringing its schema up to date (`jobrunner
migrate`), and moving an SQLite file into PostgreSQL (`jobrunner copy --to`). Every process that may write applies missing migrations when it opens the
database anyway (PostgreSQL under an advisory lock, so that daemons starting together on
many hosts apply each once); `migrate` does it as a deploy step, and says what it did."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Migration:
    location: str  # as shown: a URL without its password
    applied: list[int]  # the migrations this run applied, in order
    version: int  # the schema version the database is at now
    created: bool  # a new SQLite file was made (its migrations applied as it was built)


def migrate(location: str, synchronous: str = "FULL") -> Migration:
    """Apply the migrations the database at `location` lacks; one that is not there yet
    is made. NotADatabase (nothing written) for another application's database or one
    newer than this jobrunner."""
    from jobrunner.store import open_store, shown_location

    is_file = not location.startswith(("postgresql://", "postgres://"))
    missing = is_file and not os.path.lexists(location)
    store = open_store(location, create=True, synchronous=synchronous, writer=True)
    try:
        return Migration(
            shown_location(location),
            list(store.applied_migrations),
            store.schema_version,
            missing,
        )
    finally:
        store.close()


@dataclass(frozen=True)
class Copied:
    source: str
    target: str  # as shown: without its password
    rows: dict[str, int]  # by table
    jobs: dict[str, int]  # by state
    output_dir: str  # jobs' output stays here: not copied


def copy_to(source: str, target: str, now: float, synchronous: str = "FULL") -> Copied:
    """Move the SQLite file at `source` into the PostgreSQL database at `target`
    (`jobrunner copy --to`): every job with its attempts, schedules' state, the event feed,
    webhook deliveries; ids kept. All or nothing on the target, which must be empty; the
    file is then retired (read, never written). Refused, writing nothing, while a daemon
    is attached to the file."""
    from jobrunner.errors import UsageError
    from jobrunner.ops.daemons import alive
    from jobrunner.store import open_store, shown_location
    from jobrunner.store.pg.importer import importing
    from jobrunner.store.sqlite import SQLiteStore
    from jobrunner.store.sqlite_export import COPIED, export

    if not target.startswith(("postgresql://", "postgres://")):
        raise UsageError(f"--to: expected a postgresql:// URL, got {target!r}")
    if source.startswith(("postgresql://", "postgres://")):
        raise UsageError(
            f"--db: copy moves an SQLite file into PostgreSQL; {shown_location(source)} "
            "is already a PostgreSQL database"
        )
    src = open_store(source, create=False, synchronous=synchronous)
    assert isinstance(src, SQLiteStore)
    try:
        with export(src) as rows_of:  # the file's write lock, held to the end
            attached = alive(src.daemon_list(), now)
            if attached:
                names = ", ".join(d.id for d in attached)
                raise UsageError(
                    f"{source}: a daemon is attached ({names}); stop it first: a copy "
                    "moves a file no daemon works on; nothing was copied"
                )
            dst = open_store(target, synchronous=synchronous, writer=True)
            try:
                counted: dict[str, int] = {}
                jobs: dict[str, int] = {}
                with importing(dst) as into:  # type: ignore[arg-type]
                    for table in COPIED:
                        columns, rows = rows_of.rows(table)
                        if table == "jobs":
                            rows = _tally(rows, columns.index("state"), jobs)
                        counted[table] = into.rows(table, columns, rows)
                # committed on the target: only now is the file marked (and the mark
                # committed as `export` ends)
                rows_of.retire(shown_location(target), now)
            finally:
                dst.close()
    finally:
        src.close()
    from jobrunner.store.sqlite_output import FileOutput

    return Copied(source, shown_location(target), counted, jobs, FileOutput(source).local_dir)


def _tally(
    rows: Iterable[tuple[Any, ...]], at: int, into: dict[str, int]
) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        into[row[at]] = into.get(row[at], 0) + 1
        yield row
