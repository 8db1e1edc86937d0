"""Rows from another jobrunner database taken into an empty PostgreSQL one, in one
transaction (`jobrunner copy --to`, ops/copy.py): ids, sequence numbers and times kept,
so every job, event and delivery is the one it was, and the identity sequences set
past them. COPY moves the rows: 100,000 jobs take seconds, not minutes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import psycopg

from jobrunner.errors import UsageError
from jobrunner.store import shown_location as _shown
from jobrunner.store.pg.feed import Q

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jobrunner.store.pg.store import PostgresStore

# the identity column of each table that has one: set past the largest copied value
IDENTITY = {"jobs": "id", "job_events": "seq", "webhook_deliveries": "id", "webhook_attempts": "id"}


@contextlib.contextmanager
def importing(store: PostgresStore) -> Iterator[Importer]:
    """One transaction on the target: every row or none. Refused (UsageError, nothing
    written) unless the database holds no jobs, schedules, events or deliveries: a
    copy merges nothing."""
    with store._tx() as cur:
        cur.execute(Q["import_lock"])  # no submit, fire or event slips in meanwhile
        cur.execute(Q["feed_lock"])
        cur.execute(Q["import_held"])
        held = {name: n for name, n in cur.fetchall() if n}
        if held:
            what = ", ".join(f"{name}: {n}" for name, n in held.items())
            raise UsageError(
                f"{_shown(store.path)}: not empty ({what}); copy into a new database, "
                "or one `jobrunner migrate` just made"
            )
        cur.execute(Q["import_cursors_clear"])  # a new database's: the copy's replace them
        yield Importer(cur)
        for table, column in IDENTITY.items():
            cur.execute(Q["import_sequence"].format(table=table, column=column))


class Importer:
    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def columns(self, table: str) -> list[str]:
        self.cur.execute(Q["import_columns"], (table,))
        return [r[0] for r in self.cur.fetchall()]

    def rows(self, table: str, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> int:
        """COPY `rows` (in `columns` order) into `table`; columns it lacks are left out
        (the target's defaults fill its own, such as an event's transaction id)."""
        ours = set(self.columns(table))
        keep = [i for i, c in enumerate(columns) if c in ours]
        names = ", ".join(f'"{columns[i]}"' for i in keep)
        n = 0
        try:
            with self.cur.copy(Q["import_copy"].format(table=table, columns=names)) as copy:
                for row in rows:
                    copy.write_row([row[i] for i in keep])
                    n += 1
        except psycopg.DataError as exc:
            raise UsageError(f"{table}: a row the target refuses: {exc}") from None
        return n
