"""Maintenance of a database that is one file (docs/architecture.md, "The store
protocol"): an online backup, WAL checkpoints and their size, noticing that the path no
longer names the open file, the integrity check, and giving freed pages back (vacuum).

A backend without files (PostgreSQL) has none of this: `Store.maintenance()` returns
None there, and the commands and services that need it say so or skip it.
"""

from __future__ import annotations

import contextlib
import os
import time

import apsw

from jobrunner.errors import StoreUnavailable
from jobrunner.models import Checkpoint
from jobrunner.paths import log_dir_for
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

    def vacuum(self) -> tuple[int, int]:
        """Rewrite the file without its free pages (what prune deleted), and from then
        on give pages back as they are freed (auto_vacuum incremental); returns the
        file's size before and after. Writers wait while it copies the live data (0.24 s
        for a 257 MiB file holding 9 MiB); readers do not."""
        before = os.path.getsize(self.path) + self.wal_bytes()
        try:
            self.db.execute(Q["auto_vacuum_incremental"])
            self.db.execute(Q["vacuum"])
        except DAMAGE_ERRORS:
            raise
        except apsw.Error as exc:
            raise StoreUnavailable(
                f"{self.path}: vacuum failed: {exc}; nothing was changed"
            ) from None
        # the rewritten pages are in the write-ahead log until a checkpoint copies them
        for _ in range(50):
            if not self.checkpoint().busy:
                break
            time.sleep(0.1)
        return before, os.path.getsize(self.path) + self.wal_bytes()

    def release_free_pages(self, at_most: int) -> int:
        """Give up to `at_most` free pages back to the file system (a file made before
        auto_vacuum was on keeps them until `jobrunner vacuum`); returns how many were
        free before."""
        try:
            free = int(self.db.execute(Q["free_pages"]).fetchall()[0][0])
            if free:
                self.db.execute(Q["incremental_vacuum"].format(pages=int(at_most))).fetchall()
        except DAMAGE_ERRORS:
            raise
        except apsw.Error as exc:
            raise StoreUnavailable(f"{self.path}: giving free pages back: {exc}") from None
        return free

    def backup_output(self, path: str) -> tuple[int, int]:
        """Copy the jobs' output (`<database>.logs/*.log`: every attempt that ended)
        into `<path>.logs/`, a new private folder beside the backup `path`; returns the
        files and bytes copied. Running attempts' spools are left out: those jobs are
        running in the backup too, and are rescued and run again after a restore."""
        import shutil

        source, target = log_dir_for(self.path), log_dir_for(path)
        os.mkdir(target, 0o700)  # FileExistsError: checked by the caller before the backup
        files = size = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(source) as entries:
            for entry in entries:
                if entry.name.endswith(".log") and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):  # pruned meanwhile
                        shutil.copyfile(entry.path, os.path.join(target, entry.name))
                        files += 1
                        size += os.path.getsize(os.path.join(target, entry.name))
        return files, size

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
