"""A daemon with [webhooks] delivers each job's final event, signed (verified with the
Standard Webhooks reference package), to every endpoint that wants it and to the job's
own --callback; retries with the same webhook-id, keeps each answer, disables a URL that
answers 410 until it is enabled, refuses private addresses, and never shows the secret."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.helpers import Daemon, cli, wait_for
from tests.webhooks.receiver import Answer, Receiver, free_port, receiving

SECRET = "whsec_" + base64.b64encode(b"jobrunner-test-key-0123456789ab").decode()


def config(
    receiver: Receiver | str, *, allow_private: bool = True, retries: int = 2, timeout: str = "2s"
) -> str:
    url = receiver if isinstance(receiver, str) else receiver.url("/hooks")
    return f"""
[webhooks]
secret = "{SECRET}"
allow_private = {"true" if allow_private else "false"}
retry_schedule = {json.dumps(["1s"] * retries)}
timeout = "{timeout}"

[[webhooks.endpoints]]
url = "{url}"
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def verified(received: object) -> dict:
    """The body, after the reference package verified its signature."""
    return Webhook(SECRET).verify(received.body, received.headers)  # type: ignore[attr-defined]


def deliveries(workdir: Path, db: Path, *args: str) -> list[dict]:
    result = cli(workdir, db, "webhooks", "deliveries", "--json", *args)
    assert result.code == 0, result.err
    return result.json()


def submit(workdir: Path, db: Path, *args: str) -> int:
    result = cli(workdir, db, "submit", *args)
    assert result.code == 0, result.err
    return int(result.out)


def test_a_final_event_reaches_each_endpoint_and_the_callback_signed(
    workdir: Path, db: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    (workdir / "jobrunner.toml").write_text(config(receiver))
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    job = submit(
        workdir, db, "--cmd", "--callback", receiver.url("/mine?t=secret-token"), "--", "echo", "hi"
    )
    wait_for(lambda: receiver.at("/hooks") and receiver.at("/mine?t=secret-token"), what="both")
    for received in (receiver.at("/hooks")[0], receiver.at("/mine?t=secret-token")[0]):
        body = verified(received)
        assert body["type"] == "job.succeeded"
        assert body["data"]["id"] == job and body["data"]["state"] == "succeeded"
        assert body["data"]["callback"] == receiver.url("/mine") + "?..."  # no token shown
        # a tampered body or another secret fails verification
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(received.body.replace(b"succeeded", b"dead"), received.headers)
        other = "whsec_" + base64.b64encode(b"another-key-of-thirty-two-bytes").decode()
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(received.body, received.headers)
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(ids) == 2  # one delivery per URL
    rows = wait_for(
        lambda: (
            [d for d in deliveries(workdir, db, "--job", str(job)) if d["state"] == "delivered"][1:]
            and deliveries(workdir, db, "--job", str(job))
        ),
        what="both recorded delivered",
    )
    assert {d["webhook_id"] for d in rows} == ids
    assert all(d["last_status"] == 200 and d["attempts"] == 1 for d in rows)
    assert "secret-token" not in json.dumps(rows)
    # only the final event: the job's queued and started events went nowhere
    assert len(receiver.received) == 2
    listed = cli(workdir, db, "webhooks", "list")
    status = cli(workdir, db, "status", "--json").json()
    assert status["webhook_deliveries"]["delivered"] == 2
    for text in (listed.out, daemons[0].log(), cli(workdir, db, "status", str(job)).out):
        assert SECRET not in text and SECRET.removeprefix("whsec_") not in text
        assert "secret-token" not in text  # a callback's query string is never shown


def test_a_failed_attempt_is_retried_with_the_same_id_and_each_answer_kept(
    workdir: Path, db: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    receiver.script["/hooks"] = [
        Answer(500, b"x" * 10_000),
        Answer(503, b"busy", {"Retry-After": "1"}),
        Answer(204, b""),
    ]
    (workdir / "jobrunner.toml").write_text(config(receiver))
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    job = submit(workdir, db, "--cmd", "--", "false")  # dies: job.dead is a final event
    wait_for(lambda: len(receiver.at("/hooks")) == 3, timeout=30, what="three attempts")
    assert len({r.headers["webhook-id"] for r in receiver.at("/hooks")}) == 1
    assert len({r.body for r in receiver.at("/hooks")}) == 1  # the same body each time
    assert verified(receiver.at("/hooks")[-1])["type"] == "job.dead"
    (row,) = wait_for(
        lambda: [d for d in deliveries(workdir, db, "--job", str(job)) if d["state"] == "delivered"]
    )
    shown = cli(workdir, db, "webhooks", "show", str(row["id"]), "--json").json()
    history = shown["attempt_history"]
    assert [(a["outcome"], a["status"]) for a in history] == [
        ("failed", 500),
        ("failed", 503),
        ("delivered", 204),
    ]
    assert len(history[0]["body"]) == 2048  # the first 2 KB of the answer


def test_a_delivery_given_up_on_stays_visible_and_can_be_redelivered(
    workdir: Path, db: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    receiver.script["/hooks"] = [Answer(500), Answer(500), Answer(500), Answer(200)]
    (workdir / "jobrunner.toml").write_text(config(receiver))
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    submit(workdir, db, "--cmd", "--", "true")
    (failed,) = wait_for(
        lambda: deliveries(workdir, db, "--failed"), timeout=30, what="given up after 3"
    )
    assert failed["attempts"] == 3 and failed["last_status"] == 500
    status = cli(workdir, db, "status")
    assert "1 webhook deliveries failed" in status.out + status.err
    again = cli(workdir, db, "webhooks", "redeliver", str(failed["id"]))
    assert again.code == 0, again.err
    wait_for(lambda: len(receiver.at("/hooks")) == 4, what="the redelivery")
    assert len({r.headers["webhook-id"] for r in receiver.at("/hooks")}) == 1
    wait_for(lambda: deliveries(workdir, db)[0]["state"] == "delivered", what="delivered")
    unknown = cli(workdir, db, "webhooks", "redeliver", "999")
    assert unknown.code == 2 and "no webhook delivery 999" in unknown.err


def test_410_disables_the_endpoint_until_it_is_enabled(
    workdir: Path, db: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    receiver.script["/hooks"] = [Answer(410, b"gone"), Answer(200)]
    (workdir / "jobrunner.toml").write_text(config(receiver))
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    submit(workdir, db, "--cmd", "--", "true")
    wait_for(lambda: deliveries(workdir, db, "--failed"), what="the 410")
    listed = cli(workdir, db, "webhooks", "list", "--json").json()
    (endpoint,) = listed["endpoints"]
    assert endpoint["enabled"] is False and "410" in endpoint["reason"]
    second = submit(workdir, db, "--cmd", "--", "true")
    wait_for(lambda: deliveries(workdir, db, "--job", str(second)), what="its delivery")
    assert [d["state"] for d in deliveries(workdir, db, "--job", str(second))] == ["pending"]
    assert len(receiver.at("/hooks")) == 1  # nothing sent to a disabled endpoint
    enabled = cli(workdir, db, "webhooks", "enable", receiver.url("/hooks"))
    assert enabled.code == 0, enabled.err
    wait_for(lambda: len(receiver.at("/hooks")) == 2, what="the waiting delivery sent")
    assert cli(workdir, db, "webhooks", "enable", "https://nowhere.example/").code == 2


def test_a_private_address_is_refused_and_recorded(
    workdir: Path, db: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    (workdir / "jobrunner.toml").write_text(config(receiver, allow_private=False))
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    submit(workdir, db, "--cmd", "--", "true")
    (failed,) = wait_for(lambda: deliveries(workdir, db, "--failed"), what="refused")
    assert "loopback" in failed["last_error"] and failed["attempts"] == 1
    shown = cli(workdir, db, "webhooks", "show", str(failed["id"]), "--json").json()
    assert shown["attempt_history"][0]["outcome"] == "refused"
    assert receiver.received == []


@pytest.mark.slow
def test_a_killed_dispatchers_delivery_is_sent_again_after_its_lease(
    workdir: Path, db: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    receiver.script["/hooks"] = [Answer(200, delay=30), Answer(200)]
    (workdir / "jobrunner.toml").write_text(config(receiver, timeout="10s"))
    daemon = Daemon(workdir, db, "--workers", "1")
    daemons.append(daemon)
    submit(workdir, db, "--cmd", "--", "true")
    wait_for(lambda: receiver.at("/hooks"), what="the first attempt")
    started = re.findall(r"webhook dispatcher started \(pid (\d+)\)", daemon.log())
    os.kill(int(started[-1]), signal.SIGKILL)
    wait_for(
        lambda: len(re.findall(r"webhook dispatcher started", daemon.log())) == 2,
        what="the dispatcher restarted",
    )
    wait_for(lambda: len(receiver.at("/hooks")) == 2, timeout=30, what="sent again")
    first, second = receiver.at("/hooks")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    wait_for(lambda: deliveries(workdir, db)[0]["state"] == "delivered", what="recorded")


def test_each_final_state_is_delivered_with_its_type(
    workdir: Path, db: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    (workdir / "jobrunner.toml").write_text(config(receiver))
    daemons.append(Daemon(workdir, db, "--workers", "1"))
    ok = submit(workdir, db, "--cmd", "--", "true")
    dead = submit(workdir, db, "--cmd", "--retries", "0", "--", "false")
    later = submit(workdir, db, "--cmd", "--delay", "1h", "--", "true")
    assert cli(workdir, db, "cancel", str(later)).code == 0
    wait_for(lambda: len(receiver.at("/hooks")) == 3, what="three deliveries")
    by_job = {verified(r)["data"]["id"]: verified(r) for r in receiver.at("/hooks")}
    assert {job: body["type"] for job, body in by_job.items()} == {
        ok: "job.succeeded",
        dead: "job.dead",
        later: "job.cancelled",
    }
    assert by_job[dead]["data"]["state"] == "dead"


@pytest.mark.slow
def test_a_receiver_down_and_a_daemon_killed_meanwhile_lose_no_delivery(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    port = free_port()  # nothing listens there yet: every attempt is refused
    url = f"http://127.0.0.1:{port}/hooks"
    (workdir / "jobrunner.toml").write_text(config(url, retries=30))
    first = Daemon(workdir, db, "--workers", "1")
    daemons.append(first)
    jobs = [submit(workdir, db, "--cmd", "--", "true") for _ in range(3)]
    wait_for(
        lambda: len([d for d in deliveries(workdir, db) if d["attempts"] >= 1]) == 3,
        what="every delivery tried and failed",
    )
    assert all(d["state"] == "pending" for d in deliveries(workdir, db))
    os.killpg(first.pid, signal.SIGKILL)  # the daemon, with its dispatcher and workers
    first.wait(10)
    with receiving(port) as receiver:
        daemons.append(Daemon(workdir, db, "--workers", "1"))
        wait_for(
            lambda: {verified(r)["data"]["id"] for r in receiver.at("/hooks")} == set(jobs),
            timeout=30,
            what="every delivery, after all",
        )
        wait_for(
            lambda: all(d["state"] == "delivered" for d in deliveries(workdir, db)),
            what="recorded delivered",
        )


def test_a_slow_receiver_never_stalls_job_processing(
    workdir: Path, db: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    receiver.script["/hooks"] = [Answer(200, delay=15)]
    (workdir / "jobrunner.toml").write_text(config(receiver, timeout="20s"))
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    submit(workdir, db, "--cmd", "--", "true")
    wait_for(lambda: receiver.at("/hooks"), what="a delivery held by the slow receiver")
    lines = "".join('{"command": ["true"]}\n' for _ in range(30))
    assert cli(workdir, db, "submit", "--file", "-", input=lines).code == 0
    # every job ends while the receiver still holds that first answer back
    wait_for(
        lambda: cli(workdir, db, "status", "--json").json()["counts"]["succeeded"] == 31,
        timeout=10,
        what="the jobs done before the first delivery is answered",
    )
    assert not [d for d in deliveries(workdir, db) if d["state"] == "delivered"]
