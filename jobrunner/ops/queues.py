"""What the config's queue limits hold back now, for every interface that shows it
(`status`, the dashboard's overview, /metrics)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jobrunner.config import Config
    from jobrunner.store.base import Store


def throttled(
    store: Store, config: Config, counts: dict[tuple[str, str], int], now: float
) -> dict[str, dict[str, Any]]:
    """The config's rated queues whose window is used up while jobs of theirs wait
    (ratelimit.throttled), given the job counts by (state, queue)."""
    rates = config.queue_rate
    if not rates:
        return {}
    from jobrunner import ratelimit

    waiting = {q: n for (s, q), n in counts.items() if s == "queued" and q in rates}
    return ratelimit.throttled(rates, store.queue_rate_counts(), waiting, now)
