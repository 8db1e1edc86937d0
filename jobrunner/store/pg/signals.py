"""How a PostgreSQL database reaches its readers: a daemon's waker and the feed watch
are connections that LISTEN (a submit NOTIFYs in its transaction; every event append
NOTIFYs the feed), their sockets what a poll loop or `select` sleeps on. And where jobs'
output is kept for now: files on the host that ran them, as for SQLite (output in the
database, readable from every host, is the next step: docs/architecture.md,
"PostgreSQL")."""

from __future__ import annotations

import contextlib
import os
import select
from urllib.parse import urlsplit

import psycopg

from jobrunner.store.pg.feed import Q
from jobrunner.store.sqlite_output import FileOutput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FALLBACK = 1.0  # a feed watch looks at least this often, as on SQLite


class _Listener:
    def __init__(self, url: str, listen: str) -> None:
        self.conn: Any = psycopg.connect(url, autocommit=True)
        self.conn.execute(Q[listen])

    def fileno(self) -> int:
        return int(self.conn.pgconn.socket)

    def _pending(self) -> list[bytes]:
        """The notifications that arrived, without waiting."""
        pg = self.conn.pgconn
        pg.consume_input()
        got = []
        while (n := pg.notifies()) is not None:
            got.append(bytes(n.extra))
        return got

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()


class WakeListener(_Listener):
    """A daemon's end of wake-ups: `fileno()` for its poll loop, `drain()` what came."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "wake_listen")

    def drain(self) -> bytes:
        return b"".join(self._pending())


def notify(conn: Any, message: bytes) -> int:
    """Wake every daemon of the database, on every host; returns how many listen."""
    conn.execute(Q["wake_notify"], (message.decode("latin-1"),))
    return int(conn.execute(Q["wake_listeners"]).fetchone()[0])


class FeedListener(_Listener):
    """Sleeps until an event is committed: wait() returns at once when one came since
    the last wait (or since it was made)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "feed_listen")

    def wait(self, timeout: float | None) -> None:
        if self._pending():
            return
        limit = FALLBACK if timeout is None else min(FALLBACK, max(timeout, 0.0))
        ready, _, _ = select.select([self.fileno()], [], [], limit)
        if ready:
            self._pending()

    def __enter__(self) -> FeedListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PgOutput(FileOutput):
    """Output files on this host, in a folder named after the database (no password),
    under $JOBRUNNER_PG_LOGS or ~/.cache/jobrunner."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        name = f"{parts.hostname or 'local'}_{parts.port or 5432}_{parts.path.strip('/') or 'db'}"
        base = os.environ.get("JOBRUNNER_PG_LOGS") or os.path.join(
            os.path.expanduser("~"), ".cache", "jobrunner"
        )
        self.local_dir = os.path.join(base, name + ".logs")
