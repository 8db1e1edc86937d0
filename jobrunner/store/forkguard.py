"""Invariant 4, enforced: a database connection is never used across fork."""

from __future__ import annotations

import os
import weakref

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jobrunner.store.sqlite import SQLiteStore


class ForkedConnectionError(RuntimeError):
    """A database connection was used in a process forked after it was opened.

    Invariant 4: workers never touch the database. apsw's fork_checker() is gone from
    current apsw, so the store enforces this itself, in every process, at no cost to
    the parent: after a fork the child's copies of open connections are swapped for
    objects that raise on any use.
    """


class _ForkedConnection:
    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Any:
        raise ForkedConnectionError(
            f"{self._path}: database connection used after fork (in pid {os.getpid()})"
        )


open_stores: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()
_leaked_in_child: list[Any] = []


def _poison_after_fork() -> None:
    for store in list(open_stores):
        # Keep the real connection referenced so the child never closes it: closing
        # could checkpoint or unlink the parent's WAL.
        _leaked_in_child.append(store.db)
        store.db = _ForkedConnection(store.path)


os.register_at_fork(after_in_child=_poison_after_fork)
