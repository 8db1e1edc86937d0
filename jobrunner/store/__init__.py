"""The storage boundary: the only package that imports apsw or holds SQL."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true

if TYPE_CHECKING:
    from jobrunner.store.base import Store

# What a wake-up says (Store.wake, Waker.drain): one byte each.
WAKE_SUBMIT = b"s"  # new work may be due
WAKE_CANCEL = b"c"  # a running job was asked to stop
# New work may be due, and more may come unannounced for WAKE_WINDOW: a submitter that
# sends wake-ups in its transactions (Store.wakes_on_submit: PostgreSQL's NOTIFY) sends
# at most one per queue per WAKE_WINDOW, and a daemon woken by one claims at once and
# again WAKE_TRAIL later, when what was submitted meanwhile has committed.
WAKE_TRAILING = b"t"
WAKE_WINDOW = 0.005
WAKE_TRAIL = 2 * WAKE_WINDOW


def open_store(
    location: str,
    *,
    create: bool = True,
    synchronous: str = "FULL",
    writer: bool = False,
    listen: bool = True,
) -> Store:
    """Open the store at `location`: a file path (SQLite) or a postgresql:// URL. A file
    that cannot be written is opened to be read; a `writer` is refused then. `listen`
    (PostgreSQL, the config's [postgres] listen): false, wake-ups are polled for."""
    if is_url(location):
        from jobrunner.store.pg.store import PostgresStore

        return PostgresStore(location, create=create, writer=writer, listen=listen)
    from jobrunner.store.sqlite import SQLiteStore

    return SQLiteStore(location, create=create, synchronous=synchronous, writer=writer)


def is_url(location: str) -> bool:
    """Whether `location` names a PostgreSQL database rather than a file."""
    return location.startswith(("postgresql://", "postgres://"))


def absolute(location: str) -> str:
    """The location as another process started elsewhere finds it: a file's absolute
    path; a URL as it is."""
    import os

    return location if is_url(location) else os.path.abspath(location)


def shown_location(location: str) -> str:
    """A database's location as it may be printed: a URL without its password."""
    if not is_url(location):
        return location
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(location)
    if parts.password is None:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
