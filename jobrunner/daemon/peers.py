"""Which other daemons are dead, judged on this daemon's own clocks.

A peer's lease is not compared with this daemon's wall clock: two machines' wall
clocks disagree, and either may be stepped an hour (NTP, an operator, a VM resumed),
which would rescue live jobs by mistake or leave dead ones for an hour. Instead, like
etcd's and consul's failure detectors, a peer is presumed dead when the heartbeat value
it writes has not changed for `lease` seconds as measured on this daemon's
time.monotonic(), which never jumps. Whatever the peer writes only has to change.

A peer on this node (same machine, boot and pid namespace: jobrunner/node.py) whose pid
is gone is dead at once; one expired on purpose (lease_until 0, see
Store.daemon_expire) too. A peer on another node, or one whose node is not known, is
judged by its heartbeat alone: a pid from another pid namespace means nothing here. A
daemon never judges itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobrunner.models import DaemonInfo
from jobrunner.node import pid_alive


def same_node(peer: DaemonInfo, node: str | None) -> bool:
    """Whether `peer`'s pid can be looked up from `node`."""
    return node is not None and peer.node == node


class PeerWatch:
    def __init__(self, me: str, node: str | None, lease: float) -> None:
        self.me = me
        self.node = node
        self.lease = lease
        # peer id -> (its heartbeat value as last read, our monotonic time it last changed)
        self.seen: dict[str, tuple[float, float]] = {}

    def dead(self, peers: Sequence[DaemonInfo], mono: float) -> dict[str, str]:
        """The peers presumed dead now, each with why."""
        dead: dict[str, str] = {}
        seen: dict[str, tuple[float, float]] = {}
        for peer in peers:
            if peer.id == self.me:
                continue
            if peer.lease_until <= 0:
                dead[peer.id] = "its lease was ended"
                continue
            if same_node(peer, self.node) and not pid_alive(peer.pid):
                dead[peer.id] = f"its pid {peer.pid} is gone"
                continue
            value, since = self.seen.get(peer.id, (peer.heartbeat_at, mono))
            if value != peer.heartbeat_at:
                since = mono
            seen[peer.id] = (peer.heartbeat_at, since)
            if mono - since >= self.lease:
                dead[peer.id] = f"no heartbeat for {mono - since:.1f}s (lease {self.lease:g}s)"
        self.seen = seen
        return dead
