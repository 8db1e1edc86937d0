"""One attempt against a real HTTP server on 127.0.0.1: each kind of answer becomes the
right outcome, redirects are not followed, the connection goes to the vetted address with
the URL's Host, and the retry schedule's delays."""

from __future__ import annotations

import asyncio
import random
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from jobrunner.webhooks.send import (
    Attempt,
    Clients,
    next_delay,
    parse_retry_after,
    retry_delay,
    send,
)
from tests.webhooks.receiver import Answer, Receiver, receiving

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def attempt(url: str, *, allow_private: bool = True, timeout: float = 5, **kw: object) -> Attempt:
    async def go() -> Attempt:
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
            return await send(
                client,
                url,
                b'{"type":"x"}',
                {"webhook-id": "msg_1", "content-type": "application/json"},
                timeout=timeout,
                allow_private=allow_private,
                now=NOW,
                **kw,  # type: ignore[arg-type]
            )

    return asyncio.run(go())


def test_answers_become_outcomes(receiver: Receiver) -> None:
    receiver.script["/ok"] = [Answer(204, b"")]
    receiver.script["/gone"] = [Answer(410, b"bye")]
    receiver.script["/err"] = [Answer(500, b"e" * 10_000)]
    receiver.script["/busy"] = [Answer(503, b"", {"Retry-After": "7"})]
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    receiver.script["/limited"] = [Answer(429, b"", {"Retry-After": when})]
    ok = attempt(receiver.url("/ok"))
    assert (ok.outcome, ok.status, ok.error) == ("delivered", 204, None)
    assert receiver.at("/ok")[0].body == b'{"type":"x"}'
    assert receiver.at("/ok")[0].headers["webhook-id"] == "msg_1"
    gone = attempt(receiver.url("/gone"))
    assert (gone.outcome, gone.status, gone.body) == ("gone", 410, "bye")
    err = attempt(receiver.url("/err"))
    assert (err.outcome, err.error, len(err.body)) == ("failed", "HTTP 500", 2048)
    assert err.retry_after is None  # a 500 carries no Retry-After worth honouring
    assert attempt(receiver.url("/busy")).retry_after == 7
    assert attempt(receiver.url("/limited")).retry_after == 90


def test_a_redirect_is_a_failure_and_not_followed(receiver: Receiver) -> None:
    receiver.script["/moved"] = [Answer(302, b"", {"Location": receiver.url("/elsewhere")})]
    moved = attempt(receiver.url("/moved"))
    assert moved.outcome == "failed" and moved.status == 302
    assert "redirect to" in (moved.error or "") and "not followed" in (moved.error or "")
    assert receiver.at("/elsewhere") == []


def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    receiver.script["/slow"] = [Answer(200, delay=3)]
    slow = attempt(receiver.url("/slow"), timeout=0.5)
    assert (slow.outcome, slow.error) == ("failed", "timed out after 0.5s")
    assert slow.duration < 2.5


def test_no_connection_is_a_failure() -> None:
    with receiving() as gone:
        url = gone.url("/x")
    closed = attempt(url)
    assert closed.outcome == "failed" and closed.status is None and closed.error


def test_a_private_address_is_refused_before_any_request(receiver: Receiver) -> None:
    refused = attempt(receiver.url("/hooks"), allow_private=False)
    assert refused.outcome == "refused" and "loopback" in (refused.error or "")
    assert receiver.received == []


def test_the_connection_goes_to_the_vetted_address_with_the_names_host(
    receiver: Receiver,
) -> None:
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    url = f"http://hooks.example:{receiver.port}/named"
    done = attempt(url, resolve=resolve)
    assert done.outcome == "delivered"
    assert calls == ["hooks.example"]  # once
    assert receiver.at("/named")[0].headers["host"] == f"hooks.example:{receiver.port}"


def test_retry_delays_follow_the_schedule_with_jitter() -> None:
    rng = random.Random(1)
    schedule = [5.0, 300.0]
    for _ in range(100):
        first = retry_delay(schedule, 1, rng)
        second = retry_delay(schedule, 2, rng)
        assert first is not None and 4.0 <= first <= 6.0
        assert second is not None and 240.0 <= second <= 360.0
    assert retry_delay(schedule, 3, rng) is None  # used up
    assert retry_delay([], 1, rng) is None
    assert next_delay(schedule, 1, 60.0, rng) == 60.0  # a longer Retry-After wins
    assert next_delay(schedule, 3, 60.0, rng) is None
    assert next_delay(schedule, 1, 10**9, rng) == 86400.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(format_datetime(NOW - timedelta(hours=1), usegmt=True), NOW) == 0


def test_an_unresolvable_name_fails_to_be_tried_again_not_refused() -> None:
    def broken(host: str, port: int) -> list[str]:
        raise OSError("Temporary failure in name resolution")

    down = attempt("https://hooks.example/in", resolve=broken)
    assert down.outcome == "failed" and (down.error or "").startswith("cannot resolve")


def test_each_host_name_has_its_own_client_and_no_cookie_is_kept(receiver: Receiver) -> None:
    receiver.script["/c"] = [Answer(200, b"", {"Set-Cookie": "session=abc; Path=/"})]

    async def go() -> tuple[bool, bool, list[str]]:
        clients = Clients(most=2)
        try:
            a, b = clients.get("a.example"), clients.get("b.example")
            same = clients.get("a.example") is a
            clients.get("c.example")  # past `most`: b.example's, the least recent, closed
            evicted = "b.example" not in clients.clients and b.is_closed is False
            await asyncio.sleep(0)  # (its close runs on the loop)
            for _ in range(2):
                await send(
                    clients,
                    receiver.url("/c"),
                    b"{}",
                    {},
                    timeout=5,
                    allow_private=True,
                    now=NOW,
                )
            return (
                same and a is not b,
                evicted,
                [r.headers.get("cookie", "") for r in receiver.at("/c")],
            )
        finally:
            await clients.aclose()

    distinct, evicted, cookies = asyncio.run(go())
    assert distinct and evicted
    assert cookies == ["", ""]  # the second request did not send the first one's cookie


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, ssl.SSLContext, list[str]]]:
    """A receiver over TLS whose certificate names hooks.example only (no address), a
    client context that trusts it, and the names clients asked for (SNI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=hooks.example"]
        + ["-addext", "subjectAltName=DNS:hooks.example"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    names: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    receiver = Receiver()
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver, ssl.create_default_context(cafile=str(cert)), names
    receiver.server.shutdown()
    receiver.server.server_close()
    thread.join(5)


def test_tls_checks_the_certificate_against_the_urls_name(
    tls_receiver: tuple[Receiver, ssl.SSLContext, list[str]],
) -> None:
    receiver, trust, names = tls_receiver

    def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # both names: the same address

    async def go(url: str) -> Attempt:
        async with httpx.AsyncClient(verify=trust, trust_env=False) as client:
            return await send(
                client, url, b"{}", {}, timeout=5, allow_private=True, now=NOW, resolve=resolve
            )

    ok = asyncio.run(go(f"https://hooks.example:{receiver.port}/tls"))
    assert ok.outcome == "delivered", ok.error
    assert names == ["hooks.example"]  # the TLS name is the URL's, not the address
    assert receiver.at("/tls")[0].headers["host"] == f"hooks.example:{receiver.port}"
    # the same address under a name the certificate does not carry: refused by TLS
    other = asyncio.run(go(f"https://other.example:{receiver.port}/tls"))
    assert other.outcome == "failed" and "certificate" in (other.error or "").lower()
    assert len(receiver.at("/tls")) == 1
