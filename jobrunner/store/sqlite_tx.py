"""The SQLite store's write transaction, and what its failures become for a user."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FunctionType

import apsw

from jobrunner.errors import DatabaseCorrupt, StoreUnavailable, StoreWriteFailed
from jobrunner.store.sqlite_sql import BUSY_TIMEOUT_MS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    C = TypeVar("C", bound=type)

# a full disk (SQLITE_FULL), a failing device (SQLITE_IOERR and its extended codes), or a
# file that became read-only under an open connection (SQLITE_READONLY: remounted, say)
WRITE_ERRORS = (apsw.IOError, apsw.FullError, apsw.ReadOnlyError)
# a damaged file: a malformed page, or a header that no longer reads as SQLite's
DAMAGE_ERRORS = (apsw.CorruptError, apsw.NotADBError)


@contextmanager
def write_transaction(db: Any, path: str) -> Iterator[Any]:
    """One write transaction: BEGIN IMMEDIATE takes the write lock up front, so a busy
    database waits in the busy handler instead of failing mid-transaction.

    A full disk or an I/O error (in a statement, when the page cache spills, or at
    COMMIT) rolls the whole transaction back and is raised as StoreWriteFailed: a clear,
    retryable error instead of a raw apsw one, so the CLI exits 3 with one line and the
    daemon backs off and retries instead of dying."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except apsw.BusyError:
        raise StoreUnavailable(
            f"{path}: database is locked by another process for more than "
            f"{BUSY_TIMEOUT_MS // 1000}s; try again"
        ) from None
    except WRITE_ERRORS as exc:
        raise write_failed(path, exc) from None
    try:
        yield db
    except WRITE_ERRORS as exc:
        _rollback_quietly(db)
        raise write_failed(path, exc) from None
    except BaseException:
        _rollback_quietly(db)
        raise
    else:
        try:
            db.execute("COMMIT")
        except WRITE_ERRORS as exc:
            _rollback_quietly(db)
            raise write_failed(path, exc) from None
        except apsw.Error:
            _rollback_quietly(db)
            raise


def _rollback_quietly(db: Any) -> None:
    # SQLite may already have rolled back on its own (it does after most I/O errors);
    # a ROLLBACK that fails as well must not hide the first error.
    if db.in_transaction:
        with contextlib.suppress(apsw.Error):
            db.execute("ROLLBACK")


def write_failed(path: str, exc: apsw.Error) -> StoreWriteFailed:
    """What failed, on which file, and that it is worth retrying."""
    code = getattr(exc, "extendedresult", None)
    name = apsw.mapping_extended_result_codes.get(code) if code else None
    if isinstance(exc, apsw.FullError):
        what, fix = "disk full", "there is free space"
    elif isinstance(exc, apsw.ReadOnlyError):
        what, fix = "read-only", "the database can be written again"
    else:
        what, fix = "I/O error", "the disk is healthy"
    detail = f"{name or type(exc).__name__}: {exc}".replace("\n", " ")
    return StoreWriteFailed(
        f"{path}: cannot write the database ({what}; {detail}); the change was rolled "
        f"back, nothing was written; retryable: try again once {fix}"
    )


def damaged(path: str, exc: apsw.Error) -> DatabaseCorrupt:
    detail = str(exc).replace("\n", " ")
    return DatabaseCorrupt(
        f"{path}: the database file is damaged (SQLite: {detail}); nothing was changed. "
        "`jobrunner check` lists the damage; restore the database from a backup"
    )


def refusing_damage(cls: C) -> C:
    """Every public method of the store class: a damaged database file becomes one clear
    DatabaseCorrupt (exit 3), wherever SQLite stumbles on it, reads included.

    A wrapper per method rather than a try/except in each: one mechanism that no new
    method can forget. Its cost is one Python call per store call, 0.1-0.3 us, against
    ~20 us for the cheapest read and a transaction per batch for the claim and
    job_end_many; the try itself costs nothing until something is raised."""
    for name, method in list(vars(cls).items()):
        if not name.startswith("_") and isinstance(method, FunctionType):
            setattr(cls, name, _refusing_damage(method))
    return cls


def _refusing_damage(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except DAMAGE_ERRORS as exc:
            raise damaged(self.path, exc) from None

    return call
