"""The dashboard's pages: each reads what it shows through the operations and the store
(one `read` each, in a worker thread) and renders a template. A page asked for with
`?part=1` answers with its live part alone: the script swaps it in when the feed says
something changed (static/app.js), so a page is never polled."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from jobrunner import clock, ops
from jobrunner.errors import UsageError
from jobrunner.http.jobs import MAX_JOB_ID, job_id, states, whole_number
from jobrunner.http.state import server_of
from jobrunner.lifecycle import FINAL, State
from jobrunner.models import JobQuery, SearchPage
from jobrunner.store.base import Store
from jobrunner.web.render import render

PAGE = 50  # jobs on a page
OUTPUT_TAIL = 64 * 1024  # bytes of a job's output a page shows (the live tail goes on)
MINUTES = 60  # the overview's chart: jobs ended per minute, the last hour
RUNNING_COUNTED = 1000  # running jobs read to say what each daemon runs


async def overview(request: Request) -> Response:
    config = server_of(request).config

    def read(store: Store) -> dict[str, Any]:
        from jobrunner.ops.daemons import alive

        now = clock.now()
        counts = store.job_counts()
        limits = queue_limits(store, config, counts, now)
        queues = sorted({q for _, q in counts} | set(limits))
        by_state = {s.value: 0 for s in State}
        for (state, _), n in counts.items():
            by_state[state] = by_state.get(state, 0) + n
        daemons = alive(store.daemon_list(), now)
        running = store.job_running(RUNNING_COUNTED)
        start = (now // 60 - (MINUTES - 1)) * 60  # the chart's first minute; the last is now's
        per_minute = store.job_ended_per_minute(start)
        chart = [
            {
                "at": start + 60 * m,
                **{s: per_minute.get((s, m), 0) for s in ("succeeded", "dead", "cancelled")},
            }
            for m in range(MINUTES)
        ]
        return {
            "chart": chart,
            "chart_max": max([1] + [b["succeeded"] + b["dead"] + b["cancelled"] for b in chart]),
            "by_state": by_state,
            "queues": queues,
            "counts": counts,
            "states": [s.value for s in State],
            # the chart's hour, summed (not read again: on PostgreSQL a read of the hour
            # costs ~35 ms with 40,000 jobs ended in it)
            "hour": {s: sum(b[s] for b in chart) for s in ("succeeded", "dead", "cancelled")},
            "daemons": daemons,
            "running": running[:20],
            "running_by": {d.id: sum(1 for j in running if j.owner == d.id) for d in daemons},
            "failures": store.job_recent_failures(10),
            "limits": limits,
            "now": now,
        }

    return await page(request, "overview.html", read)


def queue_limits(
    store: Store, config: Any, counts: dict[tuple[str, str], int], now: float
) -> dict[str, str]:
    """Each limited queue's limits as text (`concurrency 1 (1 running) · rate 10/s,
    throttled`), from the server's config."""
    from jobrunner import ratelimit
    from jobrunner.ops import queues

    throttled = queues.throttled(store, config, counts, now)
    out: dict[str, list[str]] = {}
    for q, n in config.queue_concurrency.items():
        out.setdefault(q, []).append(f"concurrency {n} ({counts.get(('running', q), 0)} running)")
    for q, n in config.queue_per_daemon.items():
        out.setdefault(q, []).append(f"{n} per daemon")
    for q, n in config.queue_per_key.items():
        out.setdefault(q, []).append(f"{n} per key")
    for q, (most, period) in config.queue_rate.items():
        text = f"rate {ratelimit.rate_text(most, period)}"
        out.setdefault(q, []).append(text + (", throttled" if q in throttled else ""))
    return {q: " · ".join(parts) for q, parts in out.items()}


async def jobs(request: Request) -> Response:
    """Filtered by state, queue, task, text in the arguments and when they were made,
    newest first. A filter by state alone walks that state's index; any other looks at a
    window of the newest jobs (store/search.py) and offers to look further."""
    query = request.query_params
    filters = {k: query.get(k, "").strip() for k in FILTERS}
    wanted = job_query(filters, clock.now())
    before = cursor(query.get("after"))

    def read(store: Store) -> dict[str, Any]:
        if wanted == JobQuery(states=wanted.states):  # by state alone, or nothing
            found = store.job_list(wanted.states, None, PAGE + 1, None, before)
            more = len(found) > PAGE
            del found[PAGE:]
            page = SearchPage(jobs=found, next=found[-1].id if more else None, scanned=0)
        else:
            page = store.job_search(wanted, before, PAGE)
        return {
            "jobs": page.jobs,
            "next": page.next,
            "scanned": page.scanned,
            "filters": filters,
            "filtered": any(filters.values()),
            "kept": {k: v for k, v in filters.items() if v},
            "states": [s.value for s in State],
            "now": clock.now(),
        }

    return await page(request, "jobs.html", read)


FILTERS = ("state", "queue", "task", "text", "since", "until")
VERBS = {"cancel": "Cancel", "retry": "Retry", "delete": "Delete"}


async def bulk_confirm(request: Request) -> Response:
    """Before a bulk action: how many jobs it would change, and the form that does it."""
    from urllib.parse import urlencode

    from jobrunner.ops.bulk import count

    query = request.query_params
    action = query.get("action", "")
    if action not in VERBS:
        raise UsageError(f"action: expected cancel, retry or delete, got {action!r}")
    filters = {k: query.get(k, "").strip() for k in FILTERS}
    wanted = job_query(filters, clock.now())

    def read(store: Store) -> dict[str, Any]:
        return {
            "action": action,
            "verb": VERBS[action],
            "count": count(store, wanted, action),
            "filters": filters,
            "shown": {k: v for k, v in filters.items() if v},
            "back": "/ui/jobs?" + urlencode({k: v for k, v in filters.items() if v}),
        }

    return await page(request, "bulk.html", read)


def job_query(filters: dict[str, str], now: float) -> JobQuery:
    """The job list's filters, checked: a state (or several, comma-separated); a time as
    ISO 8601 (UTC unless it says otherwise) or a duration ago (`2h`)."""
    return JobQuery(
        states=states(filters["state"]) if filters["state"] else None,
        queue=filters["queue"] or None,
        task=filters["task"] or None,
        text=filters["text"] or None,
        since=instant(filters["since"], now, "since") if filters["since"] else None,
        until=instant(filters["until"], now, "until") if filters["until"] else None,
    )


def instant(text: str, now: float, where: str) -> float:
    """A duration ago (`2h`), or an ISO 8601 time, UTC unless it says otherwise (the page
    shows UTC)."""
    import datetime as dt

    from jobrunner.durations import parse_duration

    try:
        return now - parse_duration(text, where)
    except UsageError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{where}: {text!r} is neither a time (ISO 8601, UTC) nor a duration ago (2h)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


async def job(request: Request) -> Response:
    wanted = job_id(request)

    def read(store: Store) -> dict[str, Any]:
        found = ops.get_job(store, wanted)
        return {
            "job": found,
            "record": found.to_dict(),
            "after": store.job_dependencies(wanted),
            "attempts": store.attempt_list(wanted),
            "events": store.events_after(0, wanted, 1000),
            "output": tail(store, wanted),
            "ended": found.state in FINAL,
            "now": clock.now(),
        }

    return await page(request, "job.html", read)


async def dead_letters(request: Request) -> Response:
    before = cursor(request.query_params.get("after"))

    def read(store: Store) -> dict[str, Any]:
        found = store.job_list([State.DEAD.value], None, PAGE + 1, None, before)
        more = len(found) > PAGE
        del found[PAGE:]
        total = sum(n for (s, _), n in store.job_counts().items() if s == State.DEAD.value)
        return {
            "jobs": found,
            "next": found[-1].id if more else None,
            "total": total,
            "now": clock.now(),
        }

    return await page(request, "dlq.html", read)


async def schedules(request: Request) -> Response:
    config = server_of(request).config

    def read(store: Store) -> dict[str, Any]:
        from jobrunner.ops.schedules import listing

        return {"schedules": listing(store, config, clock.now()), "now": clock.now()}

    return await page(request, "schedules.html", read)


async def webhooks(request: Request) -> Response:
    config = server_of(request).config

    def read(store: Store) -> dict[str, Any]:
        from jobrunner.ops import webhooks as hooks

        return {
            "endpoints": hooks.endpoints(config, store),
            "deliveries": hooks.deliveries(store, limit=PAGE),
            "counts": store.webhook_counts(),
            "now": clock.now(),
        }

    return await page(request, "webhooks.html", read)


# -- helpers ----------------------------------------------------------------------------


async def page(request: Request, template: str, read: Any) -> Response:
    """Read (timed: the footer and the Server-Timing header say how long the server took),
    then render the page, or its live part alone for `?part=1`."""
    started = time.perf_counter()
    data = await server_of(request).read(read)
    took = time.perf_counter() - started
    part = request.query_params.get("part") == "1"
    html = render(request, template, data, part=part, took=took)
    response = HTMLResponse(html)
    response.headers["Server-Timing"] = f"read;dur={took * 1000:.1f}"
    return response


def cursor(text: str | None) -> int | None:
    """?after=: the largest id the page may show (the previous page's next)."""
    if not text:
        return None
    return whole_number(text, "after", MAX_JOB_ID)


def tail(store: Store, wanted: int) -> dict[str, Any]:
    """The last OUTPUT_TAIL bytes of the job's output, and where they end (the live tail
    follows on from there)."""
    output, offset, chunks = store.output(), 0, []
    while chunk := output.read(wanted, offset):
        chunks.append(chunk)
        offset += len(chunk)
    data = b"".join(chunks)
    cut = len(data) > OUTPUT_TAIL
    return {
        "text": data[-OUTPUT_TAIL:].decode("utf-8", "replace"),
        "cut": cut,
        "end": offset,
    }
