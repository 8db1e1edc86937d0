"""/webhooks over HTTP, and `callback` in POST /jobs: the same views and actions as
`jobrunner webhooks`, behind the same token, with their refusals."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from tests.helpers import cli
from tests.http.conftest import Server

SECRET = "whsec_" + base64.b64encode(b"http-test-key-0123456789abcdef!").decode()
TOKEN = "t0k3n-for-tests"
ENDPOINT = "https://hooks.example/in"


def configure(workdir: Path, webhooks: bool = True) -> None:
    text = f'[http]\ntoken = "{TOKEN}"\nallow_commands = true\n'
    if webhooks:
        text += f'\n[webhooks]\nsecret = "{SECRET}"\n\n[[webhooks.endpoints]]\nurl = "{ENDPOINT}"\n'
    (workdir / "jobrunner.toml").write_text(text)


def test_a_callback_is_taken_with_webhooks_configured_and_refused_without(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    configure(workdir)
    server = serve()
    with server.client(TOKEN) as http:
        answer = http.post(
            "/jobs", json={"command": ["true"], "callback": "https://me.example/cb?sig=abc"}
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["callback"] == "https://me.example/cb?..."
        for bad in ("ftp://me.example/", "https://u:p@me.example/", 7):
            refused = http.post("/jobs", json={"command": ["true"], "callback": bad})
            assert refused.status_code == 400, refused.text
            assert refused.json()["detail"].startswith("body: callback: ")
        listing = http.get("/webhooks").json()
        assert [e["url"] for e in listing["endpoints"]] == [ENDPOINT]
        assert SECRET.removeprefix("whsec_") not in http.get("/webhooks").text
    server.stop()
    ids = cli(workdir, db, "list", "--json").json()
    assert len(ids) == 1  # the refused ones wrote nothing

    configure(workdir, webhooks=False)
    bare = serve()
    with bare.client(TOKEN) as http:
        refused = http.post("/jobs", json={"command": ["true"], "callback": "https://me.example/"})
        assert refused.status_code == 400
        assert "no [webhooks] table" in refused.json()["detail"]
        assert http.get("/webhooks").status_code == 400


def test_webhooks_routes_refuse_what_they_must(serve: Callable[..., Server], workdir: Path) -> None:
    configure(workdir)
    server = serve()
    with server.client() as anonymous:
        assert anonymous.get("/webhooks").status_code == 401
        assert anonymous.post("/webhooks/test", json={"url": ENDPOINT}).status_code == 401
    with server.client("wrong-token") as wrong:
        assert wrong.get("/webhooks/deliveries").status_code == 401
    with server.client(TOKEN) as http:
        # only configured endpoints are tested over HTTP: no fetching hosts for a caller
        other = http.post("/webhooks/test", json={"url": "http://169.254.169.254/latest"})
        assert other.status_code == 403
        assert (
            http.post(
                "/webhooks/test", content=b"{}", headers={"content-type": "text/plain"}
            ).status_code
            == 415
        )
        big = {"url": "https://x.example/" + "a" * 5000}
        assert http.post("/webhooks/enable", json=big).status_code == 413
        assert http.post("/webhooks/enable", json={"url": 3}).status_code == 400
        assert http.post("/webhooks/enable", json={"url": "https://x.example/"}).status_code == 404
        assert http.get("/webhooks/deliveries/abc").status_code == 400
        assert http.get("/webhooks/deliveries/5").status_code == 404
        assert http.post("/webhooks/deliveries/5/redeliver").status_code == 404
        assert http.get("/webhooks/deliveries?state=lost").status_code == 400
        assert http.get("/webhooks/deliveries?colour=red").status_code == 400
        page = http.get("/webhooks/deliveries").json()
        assert page == {"deliveries": [], "next": None}
        assert 'jobrunner_webhook_deliveries{state="failed"} 0.0' in http.get("/metrics").text
