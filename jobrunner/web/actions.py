"""What the dashboard changes: each action is a form POST with the session's CSRF token,
done through the same operations as the CLI's, then a redirect (303) back to the page
with a note saying what was done. Refused (403, nothing done): a wrong or missing CSRF
token, a request another site made, the read-only dashboard."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from jobrunner import clock
from jobrunner.errors import UsageError
from jobrunner.http.jobs import job_id
from jobrunner.http.problems import Forbidden, Problem, TooLarge
from jobrunner.http.state import server_of
from jobrunner.store.base import Store
from jobrunner.web.session import COOKIE

MAX_FORM = 16 * 1024  # bytes of a form: a token and a few fields


async def form_of(request: Request, changes: bool = True) -> dict[str, str]:
    """The posted form (urlencoded), after the refusals every action shares (`changes`
    False: one the read-only dashboard allows, logging out)."""
    if changes and request.app.state.dashboard != "on":
        raise Forbidden("the dashboard is read-only ([http] dashboard)")
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("a form posted from another site")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise TooLarge(f"a form of more than {MAX_FORM} bytes")
    fields = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    sessions = request.app.state.sessions
    if not sessions.csrf_ok(request.cookies.get(COOKIE), fields.get("csrf", "")):
        raise Forbidden("missing or stale form token: reload the page and try again")
    return fields


def back(path: str, note: str) -> Response:
    return RedirectResponse(f"{path}?{urlencode({'note': note})}", status_code=303)


async def cancel_job(request: Request) -> Response:
    from jobrunner.ops.control import CancelOutcome, cancel

    await form_of(request)
    wanted = job_id(request)
    done = await server_of(request).write(lambda s: cancel(s, wanted, clock.now()))
    notes = {
        CancelOutcome.CANCELLED: f"job {wanted} cancelled",
        CancelOutcome.REQUESTED: f"job {wanted}: its daemon was told to stop it",
        CancelOutcome.ALREADY_ENDED: f"job {wanted} had already ended {done.state.value}",
    }
    return back(f"/ui/jobs/{wanted}", notes[done.outcome])


async def retry_job(request: Request) -> Response:
    from jobrunner.ops.control import retry

    await form_of(request)
    wanted = job_id(request)
    done = await server_of(request).write(lambda s: retry(s, [wanted], clock.now()))
    if done.unknown:
        raise Problem(f"no job with id {wanted}", 404)
    if wanted in done.not_dead:
        return back(f"/ui/jobs/{wanted}", f"job {wanted} is {done.not_dead[wanted]}, not dead")
    return back(f"/ui/jobs/{wanted}", f"job {wanted} queued again")


async def bulk(request: Request) -> Response:
    """Every job the filter matches that the action applies to (the confirmation page
    said how many; the note says how many it was by now)."""
    from jobrunner.ops.bulk import act, matching
    from jobrunner.web.pages import FILTERS, VERBS, job_query

    fields = await form_of(request)
    action = fields.get("action", "")
    if action not in VERBS:
        raise UsageError(f"action: expected cancel, retry or delete, got {action!r}")
    filters = {k: fields.get(k, "").strip() for k in FILTERS}
    wanted = job_query(filters, clock.now())

    def do(store: Store) -> int:
        return act(store, action, matching(store, wanted, action), clock.now())

    done = await server_of(request).write(do)
    past = {"cancel": "cancelled", "retry": "queued again", "delete": "deleted"}[action]
    note = f"{done} job{'' if done == 1 else 's'} {past}"
    expected = fields.get("expect", "")
    if expected.isdigit() and int(expected) != done:
        note += f" ({expected} matched when you were asked: jobs changed meanwhile)"
    kept = {k: v for k, v in filters.items() if v}
    return RedirectResponse(f"/ui/jobs?{urlencode({**kept, 'note': note})}", status_code=303)


async def retry_dead(request: Request) -> Response:
    from jobrunner.ops.control import retry

    await form_of(request)
    done = await server_of(request).write(lambda s: retry(s, None, clock.now()))
    note = f"{len(done.moved)} dead jobs queued again"
    if done.kept:
        note += f"; {done.kept} kept (they cannot run as named: retry each by its id)"
    return back("/ui/dlq", note)


async def purge_dead(request: Request) -> Response:
    from jobrunner.ops.control import purge_dead as purge

    await form_of(request)
    done = await server_of(request).write(lambda s: purge(s, 0.0, clock.now()))
    return back("/ui/dlq", f"{done.total} dead jobs deleted")


async def schedule_action(request: Request) -> Response:
    from jobrunner.ops import schedules

    await form_of(request)
    state = server_of(request)
    name, verb = request.path_params["name"], request.path_params["verb"]
    schedules.find_schedule(state.config, name)  # 400 before anything is written

    def do(store: Store) -> str:
        now = clock.now()
        if verb == "run":
            return f"schedule {name} ran now: job {schedules.run(store, state.config, name, now)}"
        if verb == "pause":
            schedules.pause(store, state.config, name, now)
            return f"schedule {name} paused"
        schedules.resume(store, state.config, name, now)
        return f"schedule {name} resumed"

    if verb not in ("run", "pause", "resume"):
        raise UsageError(f"{verb!r}: a schedule can be run, paused or resumed")
    return back("/ui/schedules", await state.write(do))


async def redeliver(request: Request) -> Response:
    from jobrunner.ops import webhooks

    await form_of(request)
    text = request.path_params["id"]
    if not text.isdigit():
        raise UsageError(f"delivery id: expected a whole number, got {text!r}")
    found = await server_of(request).write(lambda s: webhooks.redeliver(s, int(text), clock.now()))
    return back("/ui/webhooks", f"delivery {found.id} will be sent again")


def login_target(given: str | None) -> str:
    """Where to go after logging in: a path of this server only (never another site)."""
    if given and given.startswith("/") and not given.startswith("//"):
        return given
    return "/"
