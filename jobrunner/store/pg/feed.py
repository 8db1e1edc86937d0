"""The event feed on PostgreSQL: appends that commit in `seq` order, so a reader that
walks the feed by `seq` (wait, SSE's Last-Event-ID, the webhook cursor) never passes a
number a transaction still open could yet commit (docs/architecture.md, "PostgreSQL")."""

from __future__ import annotations

import os
from collections.abc import Sequence

from jobrunner.models import Event
from jobrunner.store.sqlfiles import named_queries
from jobrunner.store.sqlite_sql import JOB_COLUMNS, event_from_row

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
JOB_COLUMNS_J = ", ".join(f"j.{c.strip()}" for c in JOB_COLUMNS.split(","))


def load_queries() -> dict[str, str]:
    return {
        name: sql.replace("{job_columns_j}", JOB_COLUMNS_J).replace("{job_columns}", JOB_COLUMNS)
        for name, sql in named_queries(os.path.join(HERE, "queries.sql")).items()
    }


Q = load_queries()


def append_events(cur: Any, rows: Sequence[tuple[Any, ...]], wake: bytes | None = None) -> None:
    """Append events (at, job_id, attempt, type, state, data) in the caller's
    transaction, as its last statements: the feed lock is held from here to the commit.
    `wake`: the daemons' wake-up to send with the feed's (both at the commit)."""
    if not rows:
        return
    cur.execute(Q["feed_lock"])
    cur.executemany(Q["event_insert"], rows)
    if wake is None:
        cur.execute(Q["feed_notify"])  # delivered at the commit, to every feed watch
    else:
        cur.execute(Q["feed_and_wake_notify"], (wake.decode("latin-1"),))


def events_after(conn: Any, seq: int, limit: int = 1000) -> list[Event]:
    rows = conn.execute(Q["events_after"], (seq, limit)).fetchall()
    return [event_from_row((r[0], r[1], r[2], r[3], r[4], r[5], r[6])) for r in rows]


def events_last_seq(conn: Any) -> int:
    return int(conn.execute(Q["events_last_seq"]).fetchone()[0])
