"""The storage boundary: the only package that imports apsw or holds SQL."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true

if TYPE_CHECKING:
    from jobrunner.store.base import Store

# What a wake-up says (Store.wake, Waker.drain): one byte each.
WAKE_SUBMIT = b"s"  # new work may be due
WAKE_CANCEL = b"c"  # a running job was asked to stop


def open_store(
    location: str, *, create: bool = True, synchronous: str = "FULL", writer: bool = False
) -> Store:
    """Open the store at `location`: a file path (SQLite); later a postgresql:// URL.
    One that cannot be written is opened to be read; a `writer` is refused then."""
    if location.startswith(("postgresql://", "postgres://")):
        from jobrunner.store.pg.store import PostgresStore

        return PostgresStore(location, create=create, writer=writer)
    from jobrunner.store.sqlite import SQLiteStore

    return SQLiteStore(location, create=create, synchronous=synchronous, writer=writer)
