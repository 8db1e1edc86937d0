"""Deleting ended jobs and their output: `prune`, `dlq purge` and the daemon's
retention service share this."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from jobrunner.lifecycle import State
    from jobrunner.store.base import Store

BATCH = 1000  # jobs per delete transaction: the write lock is never held long


def prune(
    store: Store,
    cutoffs: Sequence[tuple[State, float]],
    batch: int = BATCH,
    max_batches: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[dict[str, int], bool]:
    """Delete jobs of each (final state, ended before) in `cutoffs`, one transaction per
    `batch`, and their output. Stops after `max_batches` transactions (None: when
    all are gone). Returns how many went per state, and whether some are left."""
    removed: dict[str, int] = {}
    done = 0
    for state, before in cutoffs:
        while True:
            if max_batches is not None and done >= max_batches:
                return removed, True
            ids = store.job_delete_ended(state.value, before, batch=batch)
            done += 1
            store.output().delete(ids)
            if ids:
                removed[state.value] = removed.get(state.value, 0) + len(ids)
                if on_batch is not None:
                    on_batch(len(ids))
            if len(ids) < batch:
                break
    return removed, False
