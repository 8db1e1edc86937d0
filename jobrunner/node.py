"""Where a process runs, precisely enough to look its peers' pids up.

A pid means something only in one boot of one machine and inside one pid namespace.
Two daemons with the same hostname may be in different containers (Docker's
`--network host`, Kubernetes' `hostNetwork`): each sees the other's pid as gone, or
as some unrelated process. So a process's *node* is its hostname, the kernel's boot
id and the inode of its pid namespace; pids are compared only between equal nodes
(invariant 12, docs/architecture.md "Liveness").
"""

from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1)
def node() -> str | None:
    """`hostname/boot id/pid namespace`, or None where the kernel does not say (then
    no pid of a peer can be trusted, and peers are judged by heartbeat alone)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{os.uname().nodename}/{boot}/{namespace}"


@functools.lru_cache(maxsize=1)
def file_tag() -> str:
    """A name for this node in file names (`host.1a2b3c4d`): files of processes on other
    nodes are never taken for this node's."""
    import hashlib  # here: `jobrunner submit` loads this module but never names files

    host = os.uname().nodename.replace(os.sep, "_")
    ident = node()
    if ident is None:
        return host
    return f"{host}.{hashlib.sha256(ident.encode()).hexdigest()[:8]}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists here (only evidence between processes of
    the same node). Someone else's process, which we may not signal, is alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
