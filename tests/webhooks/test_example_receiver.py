"""examples/webhook_receiver.py as a real process: a signed delivery is accepted and
printed once, its repeat accepted and not printed, a forged one refused."""

from __future__ import annotations

import base64
import os
import subprocess
import time

import httpx

from jobrunner.webhooks.settings import secret_key
from jobrunner.webhooks.signing import payload, signed_headers
from tests.helpers import PYTHON, REPO, wait_for

SECRET = "whsec_" + base64.b64encode(b"receiver-test-key-0123456789abc").decode()


def test_the_example_receiver_verifies_and_deduplicates(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "receiver.log"
    with open(out, "wb") as log:
        proc = subprocess.Popen(
            [PYTHON, str(REPO / "examples" / "webhook_receiver.py"), "--listen", "127.0.0.1:0"],
            env={**os.environ, "JOBRUNNER_WEBHOOK_SECRET": SECRET},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        line = wait_for(
            lambda: [x for x in out.read_text().splitlines() if x.startswith("receiving on ")],
            what="the receiver listening",
        )[0]
        url = line.removeprefix("receiving on ") + "/hooks"
        body = payload("job.succeeded", "t", {"id": 42, "state": "succeeded", "result": 7})
        headers = signed_headers(secret_key(SECRET, "t"), "msg_abc", int(time.time()), body)
        assert httpx.post(url, content=body, headers=headers).status_code == 204
        assert httpx.post(url, content=body, headers=headers).status_code == 204  # a repeat
        forged = body.replace(b"7", b"8")
        assert httpx.post(url, content=forged, headers=headers).status_code == 401
        wait_for(lambda: "job 42" in out.read_text(), what="the event printed")
        assert out.read_text().count("job.succeeded job 42 succeeded result=7") == 1
    finally:
        proc.terminate()
        proc.wait(10)
