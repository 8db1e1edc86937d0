"""GET /openapi.json describes the API, and a real server keeps to it: schemathesis
generates requests from the document (valid and invalid ones) for the endpoints the
server has, and checks that none gets a 5xx and every response matches the document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobrunner.durations import parse_duration
from jobrunner.errors import UsageError
from tests.http.conftest import Server

# What the server serves today; the rest of the document (cancel, retry, list, logs,
# events, schedules, metrics, readyz) joins here as each endpoint is merged.
# /readyz is left out: without a daemon its 503 is the answer (tests/http/test_meta.py)
SERVED = {
    ("POST", "/jobs"),
    ("GET", "/jobs"),
    ("GET", "/jobs/{id}"),
    ("GET", "/jobs/{id}/status"),
    ("POST", "/jobs/{id}/cancel"),
    ("POST", "/jobs/{id}/retry"),
    ("GET", "/schedules"),
    ("GET", "/healthz"),
    ("GET", "/webhooks"),
    ("GET", "/webhooks/deliveries"),
    ("GET", "/webhooks/deliveries/{id}"),
    ("POST", "/webhooks/deliveries/{id}/redeliver"),
    ("POST", "/webhooks/enable"),
    ("POST", "/webhooks/test"),
}  # (schemathesis leaves out the document's own URL, /openapi.json)
BARE = {
    "/healthz",
    "/readyz",
    "/schedules",
    "/webhooks",
}  # GETs without parameters: no wrong request
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 30  # per operation and mode: bounded, a few seconds in all


def test_the_document_is_openapi_3_1_for_every_endpoint(serve: Callable[..., Server]) -> None:
    server = serve()
    with server.client() as http:
        doc = http.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    for path in ("/jobs", "/jobs/{id}", "/jobs/{id}/cancel", "/events", "/ws", "/metrics"):
        assert path in doc["paths"], path
    for path in ("/webhooks", "/webhooks/deliveries/{id}/redeliver", "/webhooks/test"):
        assert path in doc["paths"], path
    assert "/" not in doc["paths"]  # the dashboard is not served yet


def short_wait(case: schemathesis.Case) -> None:
    """A valid ?wait= would hold the request up to its duration (a long poll): keep the
    bad ones (a 400 to check), make the good ones return at once."""
    wait = (case.query or {}).get("wait")
    if isinstance(wait, str):
        try:
            parse_duration(wait, "wait")
        except UsageError:
            return
        case.query["wait"] = "0s"


def fuzz(url: str, operation: Any, mode: schemathesis.GenerationMode) -> None:
    @given(data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        short_wait(case)
        response = case.call(base_url=url, timeout=30)
        case.validate_response(response, checks=CHECKS)

    run()


def test_schemathesis_finds_no_5xx_and_no_response_off_the_document(
    serve: Callable[..., Server],
) -> None:
    server = serve()
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if (op.method.upper(), op.path) in SERVED
    ]
    assert len(operations) == len(SERVED)
    for operation in operations:
        for mode in schemathesis.GenerationMode:
            if mode is schemathesis.GenerationMode.NEGATIVE and operation.path in BARE:
                continue  # nothing to get wrong: no parameters, no body

            fuzz(server.url, operation, mode)
