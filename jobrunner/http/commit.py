"""Group commit: concurrent POST /jobs requests share one transaction.

Each request puts its checked jobs on a queue and awaits a future. One writer task takes
everything queued, writes it with one `ops.submit` (one transaction, the configured
durability, FULL by default, and one wake-up of the daemons) in a worker thread, then
resolves each request's future with its own results. While a transaction commits, the
next requests gather on the queue: the busier the server, the more jobs share each
fsync, with no timer and no added wait for a lone request.

Jobs are checked before they are queued, so a group holds only writable jobs; should a
group's transaction still fail, each request of it is retried alone, so that one
request's failure is never another's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobrunner import clock, ops
from jobrunner.models import InsertResult, JobInsert, submitted_job
from jobrunner.store.base import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.http.state import ServerState

# Jobs in one transaction at most (a request's jobs are never split): a bound on how long
# the writer holds the database's write lock, which daemons wait on to claim and finish.
GROUP_JOBS = 20_000


Committed = tuple[list[InsertResult], dict[int, dict[str, Any]]]  # results, records by id


@dataclass
class Pending:
    jobs: Sequence[JobInsert]
    records: bool  # whether the request answers with the records (not Prefer: return=minimal)
    done: asyncio.Future[Committed]


def write_group(
    store: Store, jobs: Sequence[JobInsert], wanted: Sequence[bool]
) -> tuple[list[InsertResult], dict[int, dict[str, Any]]]:
    """The jobs written, then the records of those `wanted` (a flag per job): a new job's
    as its insert wrote it, an existing one's (a key matched) read back after the commit,
    in the same thread: one hop to a worker thread for the whole group."""
    now = clock.now()
    results = ops.submit(store, jobs, now)
    records: dict[int, dict[str, Any]] = {}
    for job, result, want in zip(jobs, results, wanted, strict=True):
        if want and result.id not in records:
            # a job after others was settled in its insert: blocked, queued or cancelled
            built = result.created and not (job.after or job.after_ended)
            found = submitted_job(result.id, job, now) if built else None
            records[result.id] = (found or ops.get_job(store, result.id)).to_dict()
    return results, records


class GroupCommit:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._queue: asyncio.Queue[Pending] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0  # how many groups were written (for tests and the bench)

    async def submit(self, jobs: Sequence[JobInsert], records: bool = True) -> Committed:
        """Write `jobs` (one request's, checked); once they are committed, their results
        and (with `records`) the records of the jobs they name."""
        if self._queue is None or self._writer is None or self._writer.done():
            self._queue = asyncio.Queue()
            self._writer = asyncio.create_task(self._write_forever(self._queue))
        pending = Pending(jobs, records, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        # shield: a client that hangs up does not cancel its jobs' write; they are written
        # (as a submit whose answer is lost is) and the writer goes on
        return await asyncio.shield(pending.done)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write_forever(self, queue: asyncio.Queue[Pending]) -> None:
        while True:
            group = [await queue.get()]
            size = len(group[0].jobs)
            while not queue.empty() and size < GROUP_JOBS:
                group.append(queue.get_nowait())
                size += len(group[-1].jobs)
            await self._write(group)

    async def _write(self, group: list[Pending]) -> None:
        jobs = [job for pending in group for job in pending.jobs]
        wanted = [pending.records for pending in group for _ in pending.jobs]
        try:
            results, records = await self.state.write(write_group, jobs, wanted)
        except asyncio.CancelledError:
            for pending in group:
                if not pending.done.done():
                    pending.done.cancel()
            raise
        except Exception as exc:
            if len(group) == 1:
                if not group[0].done.done():
                    group[0].done.set_exception(exc)
                return
            for pending in group:  # alone, each request gets its own outcome
                await self._write([pending])
            return
        self.transactions += 1
        start = 0
        for pending in group:
            end = start + len(pending.jobs)
            if not pending.done.done():
                mine = results[start:end]
                mine_records = {r.id: records[r.id] for r in mine} if pending.records else {}
                pending.done.set_result((mine, mine_records))
            start = end
