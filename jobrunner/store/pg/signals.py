"""How a PostgreSQL database reaches its readers: a daemon's waker and the feed watch
are connections that LISTEN (a submit NOTIFYs in its transaction; every event append
NOTIFYs the feed, every shipment of output the output channel), their sockets what a
poll loop or `select` sleeps on."""

from __future__ import annotations

import contextlib
import select
import time

import psycopg

from jobrunner.errors import StoreUnavailable
from jobrunner.store import WAKE_TRAIL, WAKE_WINDOW
from jobrunner.store.pg.feed import Q

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

FALLBACK = 1.0  # a feed watch looks at least this often, as on SQLite


class _Listener:
    """A LISTEN connection. One the server ends (a restart, pg_terminate_backend) is
    StoreUnavailable, as the store's own are: notifications sent meanwhile are lost, so
    whoever listens must look at the database again once it listens again."""

    def __init__(self, url: str, *listen: str) -> None:
        self.url = url
        self.listen = listen
        self.conn: Any = None
        self._connect()

    def _connect(self) -> None:
        try:
            self.conn = psycopg.connect(self.url, autocommit=True)
            for name in self.listen:
                self.conn.execute(Q[name])
        except psycopg.OperationalError as exc:
            self.close()
            raise _unavailable(self.url, exc) from None

    def fileno(self) -> int:
        return int(self.conn.pgconn.socket)

    def _pending(self) -> list[bytes]:
        """The notifications that arrived, without waiting."""
        pg = self.conn.pgconn
        try:
            pg.consume_input()
        except psycopg.OperationalError as exc:
            self.close()
            raise _unavailable(self.url, exc) from None
        got = []
        while (n := pg.notifies()) is not None:
            got.append(bytes(n.extra))
        return got

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error, AttributeError):
            self.conn.close()


def _unavailable(url: str, exc: BaseException) -> StoreUnavailable:
    from jobrunner.store.pg.store import _first_line, _shown

    return StoreUnavailable(f"{_shown(url)}: listening: {_first_line(exc)}; try again")


class WakeListener(_Listener):
    """A daemon's end of wake-ups: `fileno()` for its poll loop, `drain()` what came
    (StoreUnavailable once its connection is lost: the daemon makes another)."""

    deaf = False

    def __init__(self, url: str) -> None:
        super().__init__(url, "wake_listen")

    def drain(self) -> bytes:
        return b"".join(self._pending())


def notify(conn: Any, message: bytes) -> None:
    """Wake every daemon of the database, on every host, now (autocommit)."""
    conn.execute(Q["wake_notify"], (message.decode("latin-1"),))


def listeners(conn: Any) -> int:
    """How many daemons' wake connections listen (best effort)."""
    return int(conn.execute(Q["wake_listeners"]).fetchone()[0])


class WakeWindow:
    """A store's submits send at most one wake-up per queue per WAKE_WINDOW, and leave
    no job unannounced (docs/architecture.md, "PostgreSQL"):

    - a submit NOTIFYs, in its transaction, for the queues not woken within WAKE_WINDOW
      of its start; a daemon that hears it claims at once and again WAKE_TRAIL later;
    - a wake-up is dated from its transaction's start, a time before its commit, so
      before any daemon can have heard it;
    - a submit left silent whose commit ended more than WAKE_TRAIL after that date (a
      slow commit) may have missed the daemons' second claim: it NOTIFYs after its
      commit instead (`late`)."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}  # queue -> the date of its last wake-up

    def due(self, queues: Iterable[str], began: float) -> list[str]:
        return [q for q in queues if q not in self.sent or began - self.sent[q] >= WAKE_WINDOW]

    def woke(self, queues: Iterable[str], began: float) -> None:
        for q in queues:
            self.sent[q] = began

    def late(self, queues: Iterable[str], ended: float) -> list[str]:
        return [q for q in queues if ended - self.sent[q] > WAKE_TRAIL]


class FeedListener(_Listener):
    """Sleeps until an event is committed (or, with `output`, jobs' output is shipped):
    wait() returns at once when one came since the last wait (or since it was made). A
    lost connection is made again, and wait() returns (what was committed meanwhile was
    not notified: the reader looks); while it cannot be, wait() sleeps its fallback
    period, as a look at the database would."""

    def __init__(self, url: str, output: bool = False) -> None:
        super().__init__(url, "feed_listen", *(("output_listen",) if output else ()))

    def wait(self, timeout: float | None) -> None:
        limit = FALLBACK if timeout is None else min(FALLBACK, max(timeout, 0.0))
        try:
            if not self.conn.closed:
                if self._pending():
                    return
                ready, _, _ = select.select([self.fileno()], [], [], limit)
                if ready:
                    self._pending()
                return
        except StoreUnavailable:
            pass  # lost: listen again, and the reader looks again
        try:
            self._connect()
        except StoreUnavailable:
            time.sleep(limit)

    def __enter__(self) -> FeedListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- [postgres] listen = false: a pooler in transaction mode hands each transaction to
# whichever server connection is free, so a LISTEN would not stay where it was made.


class QuietWaker:
    """A waker that never wakes: the daemon claims at each [daemon] poll_interval, and
    looks for cancel requests at each heartbeat, as it does while a lost LISTEN is made
    again (a pipe nobody writes, for the poll loop's file descriptor)."""

    deaf = True

    def __init__(self) -> None:
        import os

        self._r, self._w = os.pipe()

    def fileno(self) -> int:
        return self._r

    def drain(self) -> bytes:
        return b""

    def close(self) -> None:
        import os

        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


class PollingFeed:
    """A feed watch without LISTEN: wait() sleeps its fallback period (or the timeout),
    and the reader looks at the database after each."""

    def wait(self, timeout: float | None) -> None:
        time.sleep(FALLBACK if timeout is None else min(FALLBACK, max(timeout, 0.0)))

    def close(self) -> None:
        return None

    def __enter__(self) -> PollingFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
