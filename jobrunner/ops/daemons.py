"""What a reader can tell about the daemons registered in the database: `status`, and
submit's warning about a queue no daemon serves.

A daemon's row stays until it unregisters or a peer rescues its jobs, so a daemon killed
with `kill -9` looks alive until its lease runs out. A reader on the same node (machine,
boot and pid namespace: jobrunner/node.py) can tell at once that its pid is gone, as the
rescue does (daemon/peers.py); elsewhere only the lease can tell. Loaded by `jobrunner
submit`: nothing here imports more than node.py.
"""

from __future__ import annotations

from jobrunner.node import node, pid_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from jobrunner.models import DaemonInfo, Job

PID_GONE = "dead (pid gone)"
LEASE_ENDED = "dead (lease ended)"
LEASE_EXPIRED = "lease expired"


def why_dead(info: DaemonInfo, now: float, here: str | None = None) -> str | None:
    """None while the daemon is presumed alive; else what shows it is not. `here` is this
    process's node (default: looked up)."""
    if info.lease_until <= 0:  # expired on purpose (its database file was replaced)
        return LEASE_ENDED
    here = node() if here is None else here
    if here is not None and info.node == here and not pid_alive(info.pid):
        return PID_GONE
    if info.lease_until < now:
        return LEASE_EXPIRED
    return None


def alive(daemons: Sequence[DaemonInfo], now: float) -> list[DaemonInfo]:
    return [d for d in daemons if why_dead(d, now) is None]


def awaiting_rescue(running: Sequence[Job], daemons: Sequence[DaemonInfo], now: float) -> list[Job]:
    """The running jobs whose daemon is dead or gone: a live daemon takes them back once
    it presumes that daemon dead (at once on its node, else after the lease)."""
    live = {d.id for d in alive(daemons, now)}
    return [job for job in running if job.owner not in live]


def unserved(queues: Sequence[str], daemons: Sequence[DaemonInfo], now: float) -> list[str]:
    """The queues that no live daemon serves, when at least one daemon is alive (with none
    alive, jobs wait for one to start: that is no mistake)."""
    live = alive(daemons, now)
    if not live or any(d.queues is None for d in live):
        return []
    served = {q for d in live for q in d.queues or ()}
    return [q for q in dict.fromkeys(queues) if q not in served]


def split_by_node(
    daemons: Sequence[DaemonInfo], now: float
) -> tuple[list[DaemonInfo], list[DaemonInfo]]:
    """The live daemons this process can signal (its node: machine, boot and pid
    namespace), and the live ones elsewhere, which only a command run there can."""
    here = node()
    live = alive(daemons, now)
    local = [d for d in live if here is not None and d.node == here]
    return local, [d for d in live if d not in local]


def runs_a_daemon(pid: int) -> bool:
    """Whether `pid` is still a `jobrunner daemon` process (its command line says so): a
    pid in a row is never signalled once the kernel has given it to another program."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"daemon" in argv and any(b"jobrunner" in a for a in argv)
