"""Shipping jobs' output to a store that keeps it for every host (PostgreSQL).

Workers write output to files on their own host, as on SQLite (worker/spool.py). Where
the store's output is `shared`, the supervisor copies it into the database: while a job
runs, what it printed since the last look, every SHIP_EVERY (so `logs --follow` on
another machine trails by about that much), at most `log_max_bytes` of it; and before an
attempt's end is recorded, the rest, so that a reader who saw the job end reads all it
wrote. An attempt whose log was capped at its end (the tail kept, worker/spool.py
`keep_tail`) replaces what was shipped of it live. Once the end is recorded the file
here is removed: the database holds it (docs/architecture.md, "PostgreSQL").

Live output is advice: a shipment that fails is tried again at the next look, and never
holds up a job. The rest of an attempt is not: its end waits for it, as ends wait for
the database anyway.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jobrunner.errors import StoreUnavailable
from jobrunner.worker.spool import read_output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.models import AttemptEnd
    from jobrunner.store.base import SharedOutput

log = logging.getLogger("jobrunner.daemon")

SHIP_EVERY = 0.25  # seconds between looks at running jobs' output
HEAD = 64  # bytes of an attempt's output kept to tell whether its log was rewritten


@dataclass
class Shipped:
    """What of one attempt's output (on this host) is in the database."""

    sent: int = 0  # bytes of the attempt's output here that were shipped
    base: int | None = None  # where the first of them went in the job's output
    head: bytes = b""  # their first HEAD bytes


class OutputShipper:
    def __init__(self, output: SharedOutput) -> None:
        self.output = output
        self.local_dir = output.local_dir
        self.attempts: dict[tuple[int, int], Shipped] = {}
        self.next_look = float("-inf")

    def deadline(self, running: bool) -> float | None:
        """The monotonic time of the next look, while any job runs."""
        return self.next_look if running else None

    def look(self, mono: float, running: Iterable[tuple[int, int]], cap: int) -> None:
        """Ship what running attempts (job, attempt) printed since the last look."""
        if mono < self.next_look:
            return
        self.next_look = mono + SHIP_EVERY
        batch: list[tuple[tuple[int, int], bytes]] = []
        for key in running:
            shipped = self.attempts.get(key) or Shipped()
            if shipped.sent >= cap:
                continue  # the rest goes at its end, once its log is capped
            data = read_output(self.local_dir, key[0], shipped.sent)[: cap - shipped.sent]
            if data:
                batch.append((key, data))
        if not batch:
            return
        try:
            offsets = self.output.ship([], [(key[0], data) for key, data in batch])
        except StoreUnavailable:
            return  # the next look ships it
        except Exception as exc:  # noqa: BLE001 - live output is advice: log, go on
            log.warning("live output not shipped: %s: %s", type(exc).__name__, exc)
            return
        for (key, data), at in zip(batch, offsets, strict=True):
            shipped = self.attempts.setdefault(key, Shipped())
            if shipped.base is None and at is not None:
                shipped.base = at
            shipped.head = (shipped.head + data)[:HEAD]
            shipped.sent += len(data)

    def ship_ends(self, ends: Sequence[AttemptEnd]) -> None:
        """Ship the rest of each ending attempt's output, before its end is recorded.
        StoreUnavailable propagates: the ends wait with it. Shipping it again after a
        failed end transaction sends nothing twice."""
        cuts: list[tuple[int, int]] = []
        pieces: list[tuple[int, bytes]] = []
        done: list[tuple[tuple[int, int], bytes]] = []
        for end in ends:
            key = (end.job_id, end.attempt)
            shipped = self.attempts.get(key) or Shipped()
            data = _log_of(self.local_dir, end.job_id)
            if len(data) == shipped.sent and data[:HEAD] == shipped.head:
                continue  # nothing more (or nothing at all)
            if len(data) < shipped.sent or data[: len(shipped.head)] != shipped.head:
                if shipped.base is not None:  # capped at its end: ship it again, whole
                    cuts.append((end.job_id, shipped.base))
                pieces.append((end.job_id, data))
            else:
                pieces.append((end.job_id, data[shipped.sent :]))
            done.append((key, data))
        if not pieces:
            return
        try:
            self.output.ship(cuts, pieces)
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the end must not wait on its output
            log.warning("output of %d ending jobs not shipped: %s", len(pieces), exc)
            return
        for key, data in done:
            base = self.attempts.get(key, Shipped()).base
            self.attempts[key] = Shipped(len(data), base, data[:HEAD])

    def adopt(self, job_ids: Sequence[int]) -> None:
        """Ship what a killed daemon's workers here printed and it had not shipped (their
        spools, salvaged into logs at start): the part of each log past what the database
        already ends with, then drop the file."""
        pieces = []
        for job_id in job_ids:
            data = _log_of(self.local_dir, job_id)
            if data:
                rest = data[_overlap(self.output.read(job_id, 0), data) :]
                if rest:
                    pieces.append((job_id, rest))
        if pieces:
            self.output.ship([], pieces)
        for job_id in job_ids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.local_dir, f"{job_id}.log"))

    def forget(self, ends: Sequence[AttemptEnd]) -> None:
        """The ends are recorded: their output is the database's; drop this host's copy."""
        for end in ends:
            self.attempts.pop((end.job_id, end.attempt), None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.local_dir, f"{end.job_id}.log"))


def _log_of(local_dir: str, job_id: int) -> bytes:
    """An ended attempt's output here: its log (the worker published it before it said
    the attempt ended; a dead worker's was salvaged before its end was made)."""
    try:
        with open(os.path.join(local_dir, f"{job_id}.log"), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def _overlap(stored: bytes, local: bytes) -> int:
    """How much of `local` (an attempt's whole output) `stored` (the job's output in the
    database) already ends with: what a dead daemon shipped of it live. The longest such
    overlap, so that nothing is shipped twice."""
    probe = local[:HEAD]
    at = stored.find(probe, max(0, len(stored) - len(local)))
    while at >= 0:  # shipped at least HEAD bytes: one of these positions
        if local.startswith(stored[at:]):
            return len(stored) - at
        at = stored.find(probe, at + 1)
    for size in range(min(len(probe) - 1, len(stored)), 0, -1):  # shipped fewer
        if stored.endswith(local[:size]):
            return size
    return 0
