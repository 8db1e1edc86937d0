"""Signing interoperates with the Standard Webhooks reference package, and a body never
exceeds 64 KB."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from jobrunner.webhooks.settings import secret_key
from jobrunner.webhooks.signing import MAX_PAYLOAD, payload, signed_headers

SECRET = "whsec_" + base64.b64encode(b"signing-test-key-0123456789abcd").decode()
KEY = secret_key(SECRET, "test")


@settings(max_examples=50, deadline=None)
@given(
    msg_id=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    data=st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=50), max_size=5),
)
def test_the_reference_package_verifies_what_we_sign(msg_id: str, data: dict) -> None:
    body = payload("job.succeeded", "2026-12-03T00:00:00.000Z", data)
    headers = signed_headers(KEY, msg_id, int(time.time()), body)
    assert Webhook(SECRET).verify(body, headers)["data"] == data


def test_tampering_or_another_secret_fails_verification() -> None:
    body = payload("job.dead", "2026-12-03T00:00:00.000Z", {"id": 7, "state": "dead"})
    now = int(time.time())
    headers = signed_headers(KEY, "msg_1", now, body)
    Webhook(SECRET).verify(body, headers)
    for bad_body, bad_headers in [
        (body.replace(b"dead", b"succeeded"), headers),
        (body, {**headers, "webhook-id": "msg_2"}),
        (body, {**headers, "webhook-timestamp": str(now + 1)}),
    ]:
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(bad_body, bad_headers)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


def test_a_large_record_goes_without_its_result_and_says_so() -> None:
    record = {"id": 1, "state": "succeeded", "result": "r" * 100_000, "args": [1], "error": None}
    body = payload("job.succeeded", "t", record)
    assert len(body) <= MAX_PAYLOAD
    data = json.loads(body)["data"]
    assert data["result"] is None and data["result_omitted"] is True
    assert data["args"] == [1] and "args_omitted" not in data
    assert record["result"] == "r" * 100_000  # the caller's record is untouched
    huge = {"id": 2, "result": 1, "args": ["a" * 70_000], "error": "e" * 70_000, "key": "k" * 5000}
    body = payload("job.dead", "t", huge)
    data = json.loads(body)["data"]
    assert len(body) <= MAX_PAYLOAD and data["id"] == 2
    assert data["args_omitted"] and data["error_omitted"]
    small = {"id": 3, "result": [1, 2]}
    assert json.loads(payload("job.succeeded", "t", small))["data"] == small
