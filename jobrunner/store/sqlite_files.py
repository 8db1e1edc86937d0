"""The database file itself: refusing files that are not ours without touching them,
creating a new database so that no half-made file is ever seen at its path, and checking
one for damage."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable

import apsw

from jobrunner.errors import DatabaseCorrupt, NotADatabase, StoreUnavailable, UsageError
from jobrunner.store.sqlite_sql import APPLICATION_ID, Q

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SQLITE_HEADER = b"SQLite format 3\x00"
SIDECARS = ("-wal", "-shm")


def check_foreign_file(path: str) -> None:
    """Refuse, without touching it or opening it with SQLite (which may create -wal and
    -shm files beside it), a file that its header shows is not a usable jobrunner
    database: not SQLite, another application's id, or shorter than its pages."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise NotADatabase(f"{path}: is a directory, not a jobrunner database")
        if not stat.S_ISREG(mode):  # reading a FIFO would block forever
            raise NotADatabase(f"{path}: not a regular file, not a jobrunner database")
        with open(path, "rb") as f:
            header = f.read(100)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return
    except ValueError:  # a NUL byte: no file can have this name
        raise NotADatabase(f"{path!r}: not a usable file name (it holds a NUL byte)") from None
    except OSError as exc:  # name too long, a file as a folder, no permission
        raise NotADatabase(f"{path}: cannot read: {exc.strerror}") from None
    if not header:
        return  # empty: the caller decides
    if not header.startswith(SQLITE_HEADER) or len(header) < 100:
        raise NotADatabase(f"{path}: not a jobrunner database (not an SQLite file); left untouched")
    app_id = int.from_bytes(header[68:72], "big", signed=True)
    if app_id not in (0, APPLICATION_ID):
        raise NotADatabase(f"{path}: an SQLite database of another application; left untouched")
    # The header's page count is valid when its change counter matches (offsets 24, 92);
    # at rest SQLite never leaves a file shorter than that, a cut-off copy is. But while
    # a checkpoint copies the WAL in, page 1 (the header) can be written before the
    # file has grown: only a file with no WAL in use is judged, and on its size taken
    # after the WAL was seen empty (a checkpoint empties the WAL once the file is whole).
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if (
        header[24:28] == header[92:96]
        and size < pages * page_size
        and _size(path + "-wal") == 0
        and _size(path) < pages * page_size
    ):
        raise DatabaseCorrupt(
            f"{path}: the database file is damaged (truncated: {size} bytes of "
            f"{pages * page_size}); left untouched"
        )


def file_id(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def sidecar_ids(path: str) -> dict[str, tuple[int, int] | None]:
    return {suffix: file_id(path + suffix) for suffix in SIDECARS}


def leave_moved_path(db: Any, path: str, sidecars: dict[str, tuple[int, int] | None]) -> None:
    """Before closing a database whose path names another file now, or none. SQLite does
    not checkpoint a moved file on close and leaves its -wal and -shm at the path, where
    a database made later would take that WAL for its own and be damaged by it. So the
    WAL is folded into the file still open (a renamed database keeps its last
    transactions), and the sidecars at the path that are this connection's are removed;
    those of a new database there are left alone."""
    db.setbusytimeout(0)
    with contextlib.suppress(apsw.Error):
        db.execute(Q["wal_checkpoint"]).fetchall()
    for suffix, ident in sidecars.items():
        if ident is not None and file_id(path + suffix) == ident:
            with contextlib.suppress(OSError):
                os.remove(path + suffix)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def open_or_create_file(path: str, create: bool, build: Callable[[str], None]) -> None:
    """Check, before SQLite opens it, that `path` can be a jobrunner database; with
    `create`, make one with `build` when nothing is there."""
    if not path.isascii():
        try:
            path.encode()
        except UnicodeEncodeError:  # undecodable bytes in argv: SQLite takes UTF-8 names
            raise NotADatabase(
                f"{path!r}: the file name is not valid UTF-8, which SQLite needs"
            ) from None
    check_foreign_file(path)
    if os.path.exists(path):
        if os.path.getsize(path) == 0:
            # SQLite would take an empty file for an empty database and make it ours. We
            # never leave one (create_database), so it is someone else's: refuse it.
            raise NotADatabase(
                f"{path}: an empty file, not a jobrunner database; left untouched "
                "(remove it to start a new database there)"
            )
        return
    if not create:
        raise NotADatabase(
            f"{path}: no jobrunner database here (submit a job or start the daemon "
            "to create one, or pass --db)"
        )
    # A symlink to a database not made yet: made at the link's target, the link kept.
    # (Built beside the target: linked into place under the link's own name, it would
    # meet the symlink there and take it for a database another process just made.)
    target = os.path.realpath(path) if os.path.islink(path) else path
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        link = f" (a symbolic link to {target})" if target != path else ""
        raise NotADatabase(f"{path}{link}: directory {parent} does not exist")
    try:
        create_database(target, build)
    except OSError as exc:  # a read-only file system, no permission, no space
        raise StoreUnavailable(
            f"{path}: cannot create the database: {exc.strerror or exc}"
        ) from None


def read_only_reason(path: str) -> str | None:
    """Why the database at `path` cannot be written (a read-only mount, no permission),
    or None when it can. SQLite must also be able to make its -wal and -shm beside the
    file, unless both are there already. (access() tells a read-only file system even to
    root, which permissions do not stop.)"""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(path, os.W_OK):
        target = path
    elif not os.access(folder, os.W_OK | os.X_OK) and not all(
        os.access(path + suffix, os.W_OK) for suffix in SIDECARS
    ):
        target = folder
    else:
        return None
    try:
        if os.statvfs(target).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return f"{target} is not writable"


def read_only_name(path: str) -> tuple[str, int]:
    """The name and flags to open a database that cannot be written, reading it only and
    creating nothing. With its -shm there (a copy of a database in use), SQLite reads it
    as it is; without, and no -shm can be made in its folder, only as an immutable file,
    which ignores any -wal: one holding transactions is refused rather than read stale."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path + "-shm") or os.access(folder, os.W_OK | os.X_OK):
        return path, apsw.SQLITE_OPEN_READONLY
    if _size(path + "-wal") > 0:
        raise StoreUnavailable(
            f"{path}: cannot read the database: its -wal holds transactions, which SQLite "
            "reads only with a -shm file, and none can be made in its read-only folder; "
            "copy the database and its -wal to a writable folder"
        )
    from urllib.parse import quote

    uri = f"file:{quote(os.path.abspath(path))}?immutable=1"
    return uri, apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI


def remove_new_sidecars(path: str, existed: set[str]) -> None:
    """Reading a WAL-mode file creates its -wal and -shm: remove those a refused file did
    not have before, so a refusal leaves the folder as it was. (Nothing was written to
    them: closing without a checkpoint leaves an empty -wal.)"""
    for suffix in set(SIDECARS) - existed:
        with contextlib.suppress(OSError):
            os.remove(path + suffix)


def create_database(path: str, build: Callable[[str], None]) -> None:
    """Make a new database at `path` atomically: `build` makes it complete (schema and
    application id) under a temporary name, which is then hard-linked into place. A
    creation cut short (kill -9, disk full) leaves no empty or half-made file at `path`,
    so every file found there that is not a jobrunner database can be refused. Two
    processes creating it at once: the first link wins, the other opens that one."""
    tmp = f"{path}.{os.getpid()}-{os.urandom(4).hex()}.new"  # not `secrets`: it imports random
    # 0600 ourselves: SQLite would honour the umask (often 0644), and the -wal/-shm
    # files copy the main file's mode.
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        build(tmp)  # closed again: checkpointed, its -wal folded in and removed
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first
        except OSError:  # a file system without hard links: a narrower race instead
            if not os.path.exists(path):
                os.rename(tmp, path)
    finally:
        for suffix in ("", *SIDECARS):
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp + suffix)


def create_backup_file(path: str) -> None:
    """Create `path` for a backup: exclusively (never over a file) and private."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise UsageError(f"{path}: already exists; a backup never overwrites a file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot create the backup: {exc.strerror}") from None
    os.close(fd)


def integrity_problems(db: Any) -> list[str]:
    """What PRAGMA integrity_check finds, a line each; [] when the file is sound."""
    try:
        return _problems(db.execute(Q["integrity_check"]))
    except (apsw.CorruptError, apsw.NotADBError):
        pass
    # The check itself stopped on a page it cannot read (a damaged page header, say) and
    # its findings went with it: check table by table, to name at least where it is.
    problems = []
    for (table,) in db.execute(Q["table_names"]).fetchall():
        try:
            problems += _problems(db.execute(Q["integrity_check_table"], (table,)))
        except (apsw.CorruptError, apsw.NotADBError) as exc:
            problems.append(f"table {table} or one of its indexes: {exc}")
    return problems or ["the integrity check stopped: database disk image is malformed"]


def _problems(rows: Iterable[tuple[str]]) -> list[str]:
    lines = [line for (text,) in rows for line in text.splitlines()]
    return [] if lines == ["ok"] else lines
