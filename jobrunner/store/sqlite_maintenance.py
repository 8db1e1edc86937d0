"""Maintenance of a database that is one file (docs/architecture.md, "The store
protocol"): an online backup, WAL checkpoints and their size, noticing that the path no
longer names the open file, and the integrity check.

A backend without files (PostgreSQL) has none of this: `Store.maintenance()` returns
None there, and the commands and services that need it say so or skip it.
"""

from __future__ import annotations

import contextlib
import os

import apsw

from jobrunner.errors import StoreUnavailable
from jobrunner.models import Checkpoint
from jobrunner.store.sqlite_files import create_backup_file, integrity_problems
from jobrunner.store.sqlite_sql import BUSY_TIMEOUT_MS, Q
from jobrunner.store.sqlite_tx import DAMAGE_ERRORS, refusing_damage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@refusing_damage
class SQLiteMaintenance:
    """Works on the store's own connection; `identity` is the (device, inode) of the
    file the store opened."""

    def __init__(self, path: str, db: Any, identity: tuple[int, int] | None) -> None:
        self.path = path
        self.db = db
        self.identity = identity

    def backup(self, path: str) -> int:
        """Write a consistent copy of the database to `path`, a new file; returns its size.

        Online: VACUUM INTO reads one snapshot, so the daemon and submitters carry on.
        The file is made first, private (args may be secrets) and never over a file."""
        create_backup_file(path)
        try:
            self.db.execute(Q["vacuum_into"], (path,))
            with open(path, "rb+") as f:
                os.fsync(f.fileno())  # VACUUM INTO does not sync what it wrote
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(path)
            if isinstance(exc, apsw.Error) and not isinstance(exc, DAMAGE_ERRORS):
                raise StoreUnavailable(f"{path}: backup failed: {exc}") from None
            raise
        return os.path.getsize(path)

    def checkpoint(self) -> Checkpoint:
        """Copy the write-ahead log into the database and truncate it, without waiting.

        A reader (or writer) in the way makes it copy what it can and report `busy`;
        the busy timeout is off meanwhile, so the daemon never stalls on it."""
        self.db.setbusytimeout(0)
        try:
            busy = self.db.execute(Q["wal_checkpoint"]).fetchall()[0][0]
        except apsw.BusyError:
            busy = 1
        except DAMAGE_ERRORS:
            raise
        except apsw.Error as exc:
            raise StoreUnavailable(f"{self.path}: checkpoint failed: {exc}") from None
        finally:
            self.db.setbusytimeout(BUSY_TIMEOUT_MS)
        return Checkpoint(bool(busy), self.wal_bytes())

    def wal_bytes(self) -> int:
        """The size of the write-ahead log file (0 when there is none)."""
        try:
            return os.stat(self.path + "-wal").st_size
        except FileNotFoundError:
            return 0

    def moved(self) -> str | None:
        """How the path stopped naming the file this store has open ("deleted", or
        "replaced by another file"), or None while it still does. One os.stat: cheap
        enough for the daemon to ask every second. A path that cannot be examined
        (no permission, say) is no proof of anything: None."""
        try:
            now = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return "deleted"
        except OSError:
            return None
        if (now.st_dev, now.st_ino) != self.identity:
            return "replaced by another file"
        return None

    def check(self) -> list[str]:
        """The problems PRAGMA integrity_check finds in the file, [] when it is sound.
        Reads every page: seconds for a million jobs."""
        return integrity_problems(self.db)
