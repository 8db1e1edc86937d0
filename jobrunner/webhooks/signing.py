"""Standard Webhooks signing: the headers that let a receiver check a delivery came from
us and was not changed, and the body they sign (docs/webhooks.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_PAYLOAD = 64 * 1024  # bytes of a body; a larger record is sent without its result


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` (the spec's signed content)."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": "jobrunner-webhooks",
    }


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def payload(event_type: str, timestamp: str, data: dict[str, Any]) -> bytes:
    """The body: `{"type", "timestamp", "data"}`, at most MAX_PAYLOAD bytes. Too large, the
    record goes without its result (`result_omitted`), then without its args and kwargs
    (`args_omitted`), then without its error and progress message (`error_omitted`): what
    identifies the job and its state is always there, and the receiver can fetch the rest
    (GET /jobs/ID). `data` itself is never changed."""
    body = _encode({"type": event_type, "timestamp": timestamp, "data": data})
    if len(body) <= MAX_PAYLOAD:
        return body
    slim = dict(data)
    for flag, keys in (
        ("result_omitted", ("result",)),
        ("args_omitted", ("args", "kwargs", "command")),
        ("error_omitted", ("error", "progress_message")),
    ):
        for key in keys:
            slim[key] = None
        slim[flag] = True
        body = _encode({"type": event_type, "timestamp": timestamp, "data": slim})
        if len(body) <= MAX_PAYLOAD:
            return body
    # Only the record's short fields are left, and each is bounded where it is stored;
    # the key and the task name are the last that could be long.
    slim = {k: v for k, v in slim.items() if not isinstance(v, str) or len(v) <= 1024}
    return _encode({"type": event_type, "timestamp": timestamp, "data": slim})
