"""Templates (Jinja2, autoescaped: a task's arguments or output never become markup) and
the filters they format with. Every page gets the CSRF token of its session and whether
actions are shown (`[http] dashboard = "read-only"` hides them)."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import jinja2
from starlette.requests import Request

from jobrunner.models import iso

HERE = os.path.dirname(os.path.abspath(__file__))
MACROS = ("state", "progress", "action", "job_rows", "chart_svg")
NAV = [
    ("/", "Overview"),
    ("/ui/jobs", "Jobs"),
    ("/ui/dlq", "Dead letters"),
    ("/ui/schedules", "Schedules"),
    ("/ui/webhooks", "Webhooks"),
]


def ago(ts: float | None, now: float) -> str:
    """How long before `now`, in the largest unit that says it (or in, for the future)."""
    if ts is None:
        return "–"
    delta = now - ts
    text = span(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


def span(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
    return f"{seconds // 86400:.0f} d {seconds % 86400 // 3600:.0f} h"


def utc(ts: float | None) -> str:
    if ts is None:
        return "–"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def size_kb(kb: int | None) -> str:
    if kb is None:
        return "–"
    return f"{kb / 1024:.1f} MiB" if kb >= 1024 else f"{kb} KiB"


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name is an error, not a blank
    )
    env.filters.update(span=span, utc=utc, iso=iso, size_kb=size_kb, as_json=as_json)
    env.globals.update(ago=ago, nav=NAV)
    # the macros every page uses, as globals: a page's live block, rendered alone, has
    # no imports of its own
    macros = env.get_template("macros.html").module
    env.globals.update({name: getattr(macros, name) for name in MACROS})
    return env


ENV = _environment()


def render(
    request: Request, template: str, data: dict[str, Any], *, part: bool, took: float
) -> str:
    from jobrunner.web.session import COOKIE

    sessions = request.app.state.sessions
    cookie = request.cookies.get(COOKIE) or request.scope.get("jobrunner_session", "")
    context = {
        **data,
        "path": request.url.path,
        "query": request.url.query,
        "csrf": sessions.csrf(cookie) if cookie else "",
        "actions": request.app.state.dashboard == "on",
        "logged_in": sessions.token is not None,
        "took_ms": took * 1000,
    }
    page = ENV.get_template(template)
    if not part:
        return page.render(context)
    # the live part alone: the page's `live` block (the script swaps it in)
    return "".join(page.blocks["live"](page.new_context(context)))


def error_page(status: int, title: str, detail: str) -> str:
    return ENV.get_template("error.html").render(
        status=status, title=title, detail=detail, path="", nav=NAV, logged_in=False
    )
