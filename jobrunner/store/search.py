"""The dashboard's job search, the same on every backend: a filter applied to a window
of the newest jobs below a cursor (100,000 by default: ~35 ms on SQLite), so that no view
walks the whole table. A search that finds fewer than a page in its window says where to
go on (`SearchPage.next`), and the page offers "older"; the SQL is each store's
(`job_search`, `job_search_window`)."""

from __future__ import annotations

import json

from jobrunner.models import SearchPage

TYPE_CHECKING = False  # imported by the stores: keep `jobrunner submit` from typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from jobrunner.models import Job, JobQuery

MAX_ID = 2**63 - 1


PAGE_TAIL = "ORDER BY id DESC LIMIT {limit}"  # job_search's {tail} for a page
IDS_TAIL = "ORDER BY id DESC"  # and for every id in a window


def params_of(
    query: JobQuery,
    before: int | None,
    limit: int,
    window: int,
    states_param: Callable[[list[str]], Any],
) -> dict[str, Any]:
    return {
        "before": MAX_ID if before is None else before,
        "window": window,
        "limit": limit,
        "states": None if query.states is None else states_param(list(query.states)),
        "queue": query.queue,
        "task": query.task,
        "text": query.text,
        "text_json": None if query.text is None else json.dumps(query.text)[1:-1],
        "since": query.since,
        "until": query.until,
    }


def search(
    matches: Callable[[dict[str, Any]], list[Job]],
    window_of: Callable[[dict[str, Any]], tuple[int, int | None]],
    query: JobQuery,
    before: int | None,
    limit: int,
    window: int,
    states_param: Callable[[list[str]], Any] = lambda states: states,
) -> SearchPage:
    """`matches(params)`: the store's job_search rows (a page: PAGE_TAIL); `window_of`:
    (how many jobs the window held, its lowest id). `states_param`: how the store passes
    a list. One more than the page is asked for: whether it is full before the window
    ends."""
    params = params_of(query, before, limit + 1, window, states_param)
    found = matches(params)
    if len(found) > limit:  # a full page: go on below its last job
        del found[limit:]
        return SearchPage(jobs=found, next=found[-1].id, scanned=params["window"])
    held, lowest = window_of(params)
    more = held == window and lowest is not None and lowest > 1
    return SearchPage(jobs=found, next=lowest if more else None, scanned=held)


def every_id(
    ids: Callable[[dict[str, Any]], list[int]],
    window_of: Callable[[dict[str, Any]], tuple[int, int | None]],
    query: JobQuery,
    window: int,
    states_param: Callable[[list[str]], Any] = lambda states: states,
) -> list[int]:
    """The ids of every job `query` matches, newest first, window by window
    (`ids(params)`: the store's job_search with IDS_TAIL)."""
    found: list[int] = []
    before = None
    while True:
        params = params_of(query, before, 0, window, states_param)
        found += ids(params)
        held, lowest = window_of(params)
        if held < window or lowest is None or lowest <= 1:
            return found
        before = lowest
