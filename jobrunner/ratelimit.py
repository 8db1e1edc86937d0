"""Rate limits of queues (`[queues.NAME] rate = "10/s"`): at most that many starts in each
window of the period, across every daemon. Fixed windows aligned to the epoch: the
claim counts its starts in the window `now` falls in (store: queue_rates), so over any
whole number of periods the starts are at most the rate times the periods. Pure: the
store reads and writes the counts, the daemon asks when the next window opens."""

from __future__ import annotations

import math


def window_start(now: float, period: float) -> float:
    return math.floor(now / period) * period


def room(most: int, period: float, now: float, counted: tuple[float, int] | None) -> int:
    """Starts left in `now`'s window, given the (window start, starts) counted so far.

    A count of a later window than `now`'s holds too: daemons tell time each by their
    own view of the clock, a few milliseconds apart, and one a little behind must not
    open a window another has closed (a fresh count for its window, then a fresh one for
    the next, would let twice the rate through). Its starts count in the latest window
    (queue_rate_add keeps the later start)."""
    if counted is None or counted[0] < window_start(now, period):
        return most
    return max(0, most - counted[1])


def throttled(
    rates: dict[str, tuple[int, float]],
    counted: dict[str, tuple[float, int]],
    waiting: dict[str, int],
    now: float,
) -> dict[str, dict[str, object]]:
    """The rated queues whose window is used up while jobs of theirs wait (`status`):
    each with its rate as text, how many wait, and when the next window opens."""
    out: dict[str, dict[str, object]] = {}
    for queue, (most, period) in sorted(rates.items()):
        if waiting.get(queue) and room(most, period, now, counted.get(queue)) == 0:
            out[queue] = {
                "rate": rate_text(most, period),
                "waiting": waiting[queue],
                "next_window": next_window(now, period),
            }
    return out


def rate_text(most: int, period: float) -> str:
    """(10, 1.0) -> "10/s"; (5, 30.0) -> "5/30s"."""
    unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(period)
    if unit is None:
        from jobrunner.durations import format_duration

        unit = format_duration(period)
    return f"{most}/{unit}"


def next_window(now: float, period: float) -> float:
    """When the window after `now`'s opens."""
    return window_start(now, period) + period
