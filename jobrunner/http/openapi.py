"""GET /openapi.json: the API described as OpenAPI 3.1, written by hand (docs/http.md
explains it). The job record's schema is `Job.to_dict()`'s; the test suite runs schemathesis
against a real server with this document (tests/http/test_openapi.py)."""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobrunner import __version__
from jobrunner.lifecycle import State

JSON = "application/json"
PROBLEM_TYPE = "application/problem+json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(kind, str):
        return {"type": [kind, "null"]}
    return {"oneOf": [kind, {"type": "null"}]}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {JSON: {"schema": schema}}}


def problems(*statuses: int) -> dict[str, Any]:
    """Problem-details responses; 401 is on every operation (a server with a token)."""
    why = {
        400: "bad input (the CLI's one-line message in `detail`); nothing written",
        401: "no token, or a wrong one",
        403: "a task or command not allowed over HTTP",
        404: "no such job or schedule",
        409: "the job is not in a state that allows it",
        413: "the body is over [http] max_body",
        415: "the body is not application/json",
        503: "the database cannot be reached or written",
    }
    return {
        str(status): {
            "description": why[status],
            "content": {PROBLEM_TYPE: {"schema": ref("Problem")}},
        }
        for status in (*statuses, 401)
    }


DURATION = {
    "description": "seconds, or text like 30s, 5m, 1h30m",
    "oneOf": [{"type": "string"}, {"type": "number", "minimum": 0}],
}

JOB_FIELDS: dict[str, Any] = {
    "id": {"type": "integer"},
    "state": {"type": "string", "enum": [s.value for s in State]},
    "task": nullable("string"),
    "command": nullable({"type": "array", "items": {"type": "string"}}),
    "args": {"type": "array"},
    "kwargs": {"type": "object"},
    "queue": {"type": "string"},
    "priority": {"type": "integer"},
    "attempts": {"type": "integer"},
    "max_attempts": {"type": "integer"},
    "result": {"description": "the task's return value (any JSON), once it succeeded"},
    "error": nullable("string"),
    "created_at": {"type": "string", "format": "date-time"},
    "run_at": {"type": "string", "format": "date-time"},
    "started_at": nullable("string"),
    "finished_at": nullable("string"),
    "key": nullable("string"),
    "schedule": nullable("string"),
    "scheduled_for": nullable("string"),
    "timeout": nullable("number"),
    "owner": nullable("string"),
    "cancel_requested": {"type": "boolean"},
    "progress": nullable("number"),
    "progress_message": nullable("string"),
    "manual": {"type": "boolean"},
    "wall_seconds": nullable("number"),
    "created_at_epoch": {"type": "number"},
    "run_at_epoch": {"type": "number"},
    "started_at_epoch": nullable("number"),
    "finished_at_epoch": nullable("number"),
    "scheduled_for_epoch": nullable("number"),
    "damage": {"type": "string", "description": "stored JSON that cannot be read back"},
    "callback": {
        "type": "string",
        "description": "where the final event is sent (its query string shown as ?...)",
    },
    "concurrency_key": {"type": "string", "description": "when it was submitted with one"},
    "after": {
        "type": "array",
        "description": "GET /jobs/ID only, when it runs after other jobs: each one, what it "
        "needs of it, and where it is now (null: deleted)",
        "items": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "needs": {"enum": ["succeeded", "ended"]},
                "state": nullable("string"),
            },
            "required": ["id", "needs", "state"],
        },
    },
}

SUBMIT_FIELDS: dict[str, Any] = {
    "task": {"type": "string", "description": "a [tasks.NAME], or module:function"},
    "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "args": {"type": "array"},
    "kwargs": {"type": "object"},
    "queue": {"type": "string", "minLength": 1},
    "priority": {"type": "integer"},
    "delay": DURATION,
    "at": {"type": "string", "description": "ISO 8601, HH:MM or tomorrow HH:MM"},
    "retries": {"type": "integer", "minimum": 0},
    "backoff": DURATION,
    "timeout": DURATION,
    "key": {"type": "string", "minLength": 1, "description": "idempotency key"},
    "memory_limit": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 1}]},
    "cpu_limit": DURATION,
    "nice": {"type": "integer", "minimum": 0, "maximum": 19},
    "callback": {
        "type": "string",
        "format": "uri",
        "description": "an http(s) URL that gets the job's final event, signed (Standard "
        "Webhooks); needs [webhooks] in the server's config",
    },
    "after": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1},
        "description": "jobs that must succeed first (blocked until then; cancelled if one "
        "ends dead or cancelled)",
    },
    "after_ended": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1},
        "description": "jobs that must end first, however they end",
    },
    "concurrency_key": {
        "type": "string",
        "minLength": 1,
        "description": "with the queue's per_key: at most that many of its running jobs "
        "share this key",
    },
}

SCHEMAS: dict[str, Any] = {
    "Job": {
        "type": "object",
        "description": "the job record, as `jobrunner status ID --json`",
        "properties": JOB_FIELDS,
        "required": [
            name
            for name in JOB_FIELDS
            if name not in ("damage", "callback", "after", "concurrency_key")
        ],
    },
    "JobSubmit": {
        "type": "object",
        "description": "one job: exactly one of task and command",
        "properties": SUBMIT_FIELDS,
        "additionalProperties": False,
        "oneOf": [{"required": ["task"]}, {"required": ["command"]}],
    },
    "Submitted": {
        "type": "object",
        "description": "a job as Prefer: return=minimal answers it",
        "properties": {"id": {"type": "integer"}, "created": {"type": "boolean"}},
        "required": ["id", "created"],
        "additionalProperties": False,
    },
    "JobPage": {
        "type": "object",
        "properties": {
            "jobs": {"type": "array", "items": ref("Job")},
            "next": {
                "type": ["string", "integer", "null"],
                "description": "the cursor for `after`, null on the last page",
            },
        },
        "required": ["jobs", "next"],
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
        "required": ["type", "title", "status", "detail"],
    },
}

JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": (1 << 63) - 1},
}
SCHEDULE_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def job_response(description: str) -> dict[str, Any]:
    return {"description": description, **json_content(ref("Job"))}


def schedule_action(does: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": does,
            "parameters": [SCHEDULE_NAME],
            "responses": {
                "200": {"description": "done", **json_content({"type": "object"})},
                **problems(400, 404, 503),
            },
        }
    }


DELIVERY_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
URL_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"url": {"type": "string"}},
                "required": ["url"],
                "additionalProperties": False,
            }
        }
    },
}
OBJECT = json_content({"type": "object"})


def webhook_paths() -> dict[str, Any]:
    """/webhooks: as `jobrunner webhooks` (400 when the config has no [webhooks])."""
    return {
        "/webhooks": {
            "get": {
                "summary": "the endpoints (enabled or disabled by a 410) and delivery counts",
                "responses": {"200": {"description": "endpoints", **OBJECT}, **problems(400)},
            }
        },
        "/webhooks/deliveries": {
            "get": {
                "summary": "deliveries, newest first, a page at a time",
                "parameters": [
                    query("job", {"type": "integer", "minimum": 1}, "only this job's"),
                    query(
                        "state",
                        {"enum": ["pending", "delivered", "failed"]},
                        "only those in this state",
                    ),
                    query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page"),
                    query("after", {"type": "integer", "minimum": 1}, "a page's `next`"),
                ],
                "responses": {"200": {"description": "a page", **OBJECT}, **problems(400)},
            }
        },
        "/webhooks/deliveries/{id}": {
            "get": {
                "summary": "one delivery with every attempt's answer",
                "parameters": [DELIVERY_ID],
                "responses": {
                    "200": {"description": "the delivery", **OBJECT},
                    **problems(400, 404),
                },
            }
        },
        "/webhooks/deliveries/{id}/redeliver": {
            "post": {
                "summary": "send it again, with the same webhook-id",
                "parameters": [DELIVERY_ID],
                "responses": {
                    "202": {"description": "pending again", **OBJECT},
                    **problems(400, 404, 409),
                },
            }
        },
        "/webhooks/enable": {
            "post": {
                "summary": "re-enable a URL a 410 Gone disabled",
                "requestBody": URL_BODY,
                "responses": {
                    "200": {"description": "enabled", **OBJECT},
                    **problems(400, 404, 413, 415),
                },
            }
        },
        "/webhooks/test": {
            "post": {
                "summary": "POST a signed webhook.test event to a configured endpoint now",
                "requestBody": URL_BODY,
                "responses": {
                    "200": {"description": "the attempt's outcome", **OBJECT},
                    **problems(400, 403, 413, 415),
                },
            }
        },
    }


def paths() -> dict[str, Any]:
    return {
        **webhook_paths(),
        "/jobs": {
            "post": {
                "summary": "submit one job (an object) or many in one transaction (an array)",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "as the body's key",
                    },
                    {
                        "name": "Prefer",
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "return=minimal: answer {id, created} per job, "
                        "not the record (RFC 7240)",
                    },
                ],
                "requestBody": {
                    "required": True,
                    **json_content(
                        {
                            "oneOf": [
                                ref("JobSubmit"),
                                {"type": "array", "items": ref("JobSubmit"), "maxItems": 10000},
                            ]
                        }
                    ),
                },
                "responses": {
                    "202": {
                        "description": "accepted: committed; Location names the job",
                        "headers": {
                            "Location": {"schema": {"type": "string"}},
                            "Retry-After": {"schema": {"type": "string"}},
                            "Preference-Applied": {"schema": {"type": "string"}},
                        },
                        **json_content(
                            {
                                "anyOf": [
                                    ref("Job"),
                                    {"type": "array", "items": ref("Job")},
                                    ref("Submitted"),
                                    {"type": "array", "items": ref("Submitted")},
                                ]
                            }
                        ),
                    },
                    "200": {
                        "description": "the key was used before: that job, nothing written",
                        **json_content({"oneOf": [ref("Job"), ref("Submitted")]}),
                    },
                    **problems(400, 403, 413, 415, 503),
                },
            },
            "get": {
                "summary": "jobs, newest first, a page at a time",
                "parameters": [
                    query("state", {"type": "string", "enum": [s.value for s in State]}, "state"),
                    query("queue", {"type": "string"}, "queue"),
                    query("task", {"type": "string"}, "task"),
                    query("limit", {"type": "integer", "minimum": 1}, "jobs per page"),
                    query("after", {"type": "string"}, "the `next` of the page before"),
                ],
                "responses": {
                    "200": {"description": "a page", **json_content(ref("JobPage"))},
                    **problems(400, 503),
                },
            },
        },
        "/jobs/{id}": {
            "get": {
                "summary": "the job record; `wait` long-polls until the job ends",
                "parameters": [
                    JOB_ID,
                    query("wait", {"type": "string"}, "a duration: hold until the job ends"),
                ],
                "responses": {"200": job_response("the job"), **problems(400, 404, 503)},
            }
        },
        "/jobs/{id}/cancel": {
            "post": {
                "summary": "cancel, as `jobrunner cancel`",
                "parameters": [JOB_ID],
                "responses": {"200": job_response("the job"), **problems(400, 404, 409, 503)},
            }
        },
        "/jobs/{id}/retry": {
            "post": {
                "summary": "a dead job's fresh round of attempts, as `jobrunner dlq retry`",
                "parameters": [JOB_ID],
                "responses": {"200": job_response("the job"), **problems(400, 404, 409, 503)},
            }
        },
        "/jobs/{id}/logs": {
            "get": {
                "summary": "the job's output; `follow=1` streams it while the job runs",
                "parameters": [JOB_ID, query("follow", {"type": "string"}, "1: stream")],
                "responses": {
                    "200": {
                        "description": "output",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **problems(400, 404, 503),
                },
            }
        },
        "/jobs/{id}/status": {
            "get": {
                "summary": "the status poll: state, progress, result once done",
                "parameters": [JOB_ID],
                "responses": {
                    "200": {
                        "description": "the status",
                        **json_content(
                            {
                                "type": "object",
                                "properties": {k: JOB_FIELDS[k] for k in ("id", "state")},
                                "required": ["state"],
                            }
                        ),
                    },
                    **problems(400, 404, 503),
                },
            }
        },
        "/events": {
            "get": {
                "summary": "Server-Sent Events: `id:` sequence, `event:` type, `data:` JSON",
                "parameters": [
                    query("job", {"type": "integer"}, "only this job's events"),
                    query("queue", {"type": "string"}, "only this queue's"),
                    query("type", {"type": "string"}, "only events of this type"),
                    query("after", {"type": "integer", "minimum": 0}, "resume after this seq"),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "resume after this sequence number",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **problems(400, 503),
                },
            }
        },
        "/ws": {
            "get": {
                "summary": "WebSocket: send {type: submit, ...} or {type: subscribe, job}; "
                "receive the events of /events, ending with the final state",
                "responses": {"101": {"description": "switching to WebSocket"}},
            }
        },
        "/schedules": {
            "get": {
                "summary": "the schedules, as `jobrunner schedules`",
                "responses": {
                    "200": {"description": "the schedules", **json_content({})},
                    **problems(503),
                },
            }
        },
        "/schedules/{name}/run": schedule_action("run the schedule's job now"),
        "/schedules/{name}/pause": schedule_action("pause the schedule"),
        "/schedules/{name}/resume": schedule_action("resume the schedule"),
        "/metrics": {
            "get": {
                "summary": "Prometheus text format; names start with jobrunner_",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "liveness: the server answers",
                "responses": {
                    "200": {
                        "description": "alive",
                        **json_content(
                            {"type": "object", "properties": {"ok": {"type": "boolean"}}}
                        ),
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "readiness: the database reachable and a daemon alive",
                "responses": {
                    "200": {"description": "ready", **json_content({"type": "object"})},
                    "503": {"description": "not ready", **json_content({"type": "object"})},
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "this document",
                "responses": {
                    "200": {"description": "OpenAPI 3.1", **json_content({"type": "object"})}
                },
            }
        },
    }


@functools.cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobrunner",
            "version": __version__,
            "description": "Submit, poll, long-poll and watch background jobs "
            "(docs/http.md). Errors are RFC 9457 problem details.",
        },
        "paths": paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        # a server with a token needs it on every request; one without takes none
        "security": [{"bearer": []}, {}],
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(document())


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
