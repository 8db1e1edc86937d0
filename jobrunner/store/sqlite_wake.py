"""The SQLite store's waker: push wake-ups from submitters to idle daemons on this
machine (Store.waker and Store.wake).

Each daemon binds a Unix datagram socket in a folder beside the database; a submit
sends one byte to every socket there. An idle daemon blocks in poll() on its socket,
so pickup takes well under a millisecond and idling costs no CPU. A backend shared by
hosts wakes them its own way (PostgreSQL: LISTEN/NOTIFY) behind the same two methods.
"""

from __future__ import annotations

import _socket
import contextlib
import functools
import os

from jobrunner.store import WAKE_SUBMIT


def wake_dir(db_path: str) -> str:
    return _wake_dir(os.path.abspath(db_path))


@functools.lru_cache(maxsize=16)  # realpath costs a few syscalls on every submit
def _wake_dir(db_path: str) -> str:
    """The folder of wake sockets for the database at `db_path`.

    Beside the database when the path is short enough for a socket address (108 bytes
    on Linux), otherwise in the temp folder under a hash of the database's real path;
    when TMPDIR is itself too long for that (a test runner's folder), in /tmp.
    """
    real = os.path.realpath(db_path)
    beside = real + ".wake"
    if _fits(beside):
        return beside
    import hashlib
    import tempfile

    name = f"jobrunner-{os.getuid()}-{hashlib.sha256(real.encode()).hexdigest()[:16]}"
    in_temp = os.path.join(tempfile.gettempdir(), name)
    return in_temp if _fits(in_temp) else os.path.join("/tmp", name)


def _fits(folder: str) -> bool:
    """Whether a socket in `folder` (a daemon's id, up to ~24 bytes, + ".sock") fits in
    a socket address."""
    return len(folder.encode()) + 24 < 100


class WakeListener:
    """The daemon's end (a base.Waker): a non-blocking datagram socket to poll on."""

    deaf = False

    def __init__(self, db_path: str, name: str) -> None:
        folder = wake_dir(db_path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.path = os.path.join(folder, f"{name}.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        import socket  # only daemons listen; submitters skip the wrapper module

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> bytes:
        """Everything sent since the last drain, concatenated."""
        got = []
        while True:
            try:
                got.append(self.sock.recv(64))
            except (BlockingIOError, InterruptedError):
                return b"".join(got)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def notify(db_path: str, message: bytes = WAKE_SUBMIT) -> int:
    """Wake every daemon of `db_path` on this machine; returns how many were reached.

    Best effort: a daemon that is not reached still finds the work at its next poll.
    Sockets left by a daemon that died are removed.
    """
    folder = wake_dir(db_path)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    reached = 0
    # _socket, not socket: the wrapper module and its enums cost `submit` ~3 ms.
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for name in names:
            if not name.endswith(".sock"):
                continue
            path = os.path.join(folder, name)
            try:
                sock.sendto(message, path)
                reached += 1
            except ConnectionRefusedError:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # nobody listens: its daemon is gone
            except (BlockingIOError, FileNotFoundError, PermissionError):
                pass  # a full queue already means "wake up"
    finally:
        sock.close()
    return reached
