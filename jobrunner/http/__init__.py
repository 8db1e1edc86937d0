"""`jobrunner serve`: the HTTP API, Server-Sent Events and WebSocket (docs/http.md).

Nothing here is imported by `submit` or the other commands: the ASGI stack (Starlette on
uvicorn) loads only when the server starts. The package holds:

- settings.py  the [http] config table (no server imports: the config loader reads it)
- server.py    binding, the start-up refusals, running uvicorn
- app.py       the Starlette app: routes, the token check, problem details
- state.py     what the app holds: config, stores for reads, the writer
- problems.py  RFC 9457 problem details from the project's exceptions
- submit.py    POST /jobs: one job or a batch
- security.py  what may run when submitted over HTTP ([http] allow_tasks, allow_commands)
- commit.py    group commit: concurrent submits share one transaction
- jobs.py      /jobs: get (long poll), list, cancel, retry, logs, status
- live.py      /events (Server-Sent Events) and /ws (WebSocket) from the event feed
- meta.py      /healthz, /readyz, /metrics, /openapi.json, /schedules
"""
