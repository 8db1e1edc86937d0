"""Live results from the event feed: Server-Sent Events on /events (order, resume after a
dropped connection, filters, keep-alive), the long poll of GET /jobs/ID?wait=, and the
WebSocket /ws (submit or subscribe, then the job's events and its final record; auth).

Every read of a stream is bounded by the client's read timeout; nothing sleeps."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.helpers import Daemon, cli, env_for
from tests.http.conftest import Server

TOKEN = "s3cret-live-token"


class Stream:
    """An open GET /events: its events as (id, type, data), comments as ("", ":", text)."""

    def __init__(self, http: httpx.Client, path: str, headers: dict[str, str] | None = None):
        self._cm = http.stream("GET", path, headers=headers or {})
        self.response = self._cm.__enter__()
        assert self.response.status_code == 200, self.response.read()
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self._lines = self.response.iter_lines()
        assert self.next(comments=True)[1] == ":"  # open, and subscribed to the hub

    def next(self, comments: bool = False) -> tuple[str, str, Any]:
        fields: dict[str, str] = {}
        for line in self._lines:
            if line == "":
                if fields:
                    return fields["id"], fields["event"], json.loads(fields["data"])
                continue
            if line.startswith(":"):
                if comments:
                    return "", ":", line[1:].strip()
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        raise AssertionError("the stream ended")

    def take(self, n: int) -> list[tuple[str, str, Any]]:
        return [self.next() for _ in range(n)]

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def allowed(workdir: Path) -> None:
    """The server's config: these tests submit commands and livetasks' functions."""
    (workdir / "jobrunner.toml").write_text(
        '[http]\nallow_commands = true\nallow_tasks = ["livetasks"]\n'
    )


def post(http: httpx.Client, **body: Any) -> dict[str, Any]:
    res = http.post("/jobs", json=body)
    assert res.status_code == 202, res.text
    record: dict[str, Any] = res.json()
    return record


def test_events_come_in_order_and_a_resume_misses_nothing_and_repeats_nothing(
    serve: Callable[..., Server],
) -> None:
    server = serve()
    with server.client(timeout=10) as http:
        stream = Stream(http, "/events")
        first = [post(http, command=["true"], queue="a")["id"] for _ in range(3)]
        got = stream.take(3)
        assert [(g[1], g[2]["job"], g[2]["state"]) for g in got] == [
            ("job.queued", i, "queued") for i in first
        ]
        assert all(g[0] == str(g[2]["seq"]) and g[2]["attempt"] == 0 for g in got)
        seqs = [int(g[0]) for g in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
        stream.close()  # dropped; the feed goes on without it
        missed = [post(http, command=["true"])["id"] for _ in range(3)]
        again = Stream(http, "/events", headers={"Last-Event-ID": got[-1][0]})
        later = post(http, command=["true"])["id"]
        resumed = again.take(4)
        assert [g[2]["job"] for g in resumed] == [*missed, later]
        resumed_seqs = [int(g[0]) for g in resumed]
        assert resumed_seqs == list(range(seqs[-1] + 1, seqs[-1] + 5))  # no gap, no repeat
        again.close()
        # ?after= resumes the same way (the header, when both are sent, wins)
        query = Stream(http, f"/events?after={seqs[0]}", headers={"Last-Event-ID": str(seqs[1])})
        assert [g[2]["job"] for g in query.take(2)] == [first[2], missed[0]]
        query.close()


def test_filters_by_job_type_and_queue_and_keep_alive(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    env = env_for(workdir, db)
    env["JOBRUNNER_SSE_KEEPALIVE"] = "0.2"
    server = serve(env=env)
    with server.client(timeout=10) as http:
        a1 = post(http, command=["true"], queue="a")["id"]
        b1 = post(http, command=["true"], queue="b")["id"]
        a2 = post(http, command=["true"], queue="a", delay="1h")["id"]  # job.scheduled
        # ?job= without a resume point: the job's history from its first event
        by_job = Stream(http, f"/events?job={b1}")
        assert [(g[1], g[2]["job"]) for g in by_job.take(1)] == [("job.queued", b1)]
        by_queue = Stream(http, "/events?queue=a&after=0")
        assert [g[2]["job"] for g in by_queue.take(2)] == [a1, a2]
        by_type = Stream(http, "/events?type=job.scheduled,job.cancelled&after=0")
        assert [(g[1], g[2]["job"]) for g in by_type.take(1)] == [("job.scheduled", a2)]
        # live: a cancel of b1, then one more job of each queue
        assert cli(workdir, db, "cancel", str(b1)).code == 0
        b2 = post(http, command=["true"], queue="b")["id"]
        a3 = post(http, command=["true"], queue="a")["id"]
        assert [(g[1], g[2]["job"]) for g in by_job.take(1)] == [("job.cancelled", b1)]
        assert [(g[1], g[2]["job"]) for g in by_queue.take(1)] == [("job.queued", a3)]
        assert [(g[1], g[2]["job"]) for g in by_type.take(1)] == [("job.cancelled", b1)]
        assert b2 not in (a1, a3)
        # with nothing to say, a comment each keep-alive period
        assert by_type.next(comments=True) == ("", ":", "keep-alive")
        for stream in (by_job, by_queue, by_type):
            stream.close()
        for query, word in [
            ("type=job.bogus", "unknown event type"),
            ("job=abc", "job: expected a job id"),
            ("after=-1", "after: expected an event sequence number"),
        ]:
            bad = http.get(f"/events?{query}")
            assert bad.status_code == 400 and word in bad.json()["detail"], bad.text
        bad = http.get("/events", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["detail"]


def test_long_poll_returns_when_the_job_ends_or_the_wait_passes(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    server = serve()
    with server.client(timeout=90) as http:
        job = post(http, command=["true"], delay="1h")["id"]
        short = http.get(f"/jobs/{job}?wait=0.2s")
        assert (short.status_code, short.json()["state"]) == (200, "scheduled")
        answers: list[tuple[float, httpx.Response]] = []

        def long_poll() -> None:
            start = time.monotonic()
            res = http.get(f"/jobs/{job}?wait=50s")
            answers.append((time.monotonic() - start, res))

        poller = threading.Thread(target=long_poll)
        poller.start()
        assert cli(workdir, db, "cancel", str(job)).code == 0
        poller.join(60)
        ((took, res),) = answers
        assert (res.status_code, res.json()["state"]) == (200, "cancelled")
        assert took < 50  # the job's end woke it, not the wait running out
        missing = http.get("/jobs/424242?wait=1s")
        assert missing.status_code == 404


TASKS = """
import os
import time

import jobrunner


def halves(n, go):
    # reports 50%, holds until the test creates `go` (bounded), returns n * 2
    jobrunner.progress(0.5, "half way")
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)
    return n * 2
"""


@pytest.fixture
def tasks(workdir: Path) -> Path:
    path = workdir / "livetasks.py"
    path.write_text(TASKS)
    return path


def ws_url(server: Server) -> str:
    return server.url.replace("http://", "ws://") + "/ws"


def messages(ws: Any) -> Iterator[dict[str, Any]]:
    while True:
        yield json.loads(ws.recv(timeout=30))


def test_websocket_submits_and_receives_progress_and_the_result(
    serve: Callable[..., Server], workdir: Path, db: Path, tasks: Path
) -> None:
    server = serve()
    daemon = Daemon(workdir, db, "--workers", "1")
    try:
        with connect(ws_url(server)) as ws:
            # what POST /jobs refuses, a submit over the socket is refused too (it stays open)
            ws.send(json.dumps({"type": "submit", "task": "os:system", "args": ["id"]}))
            refused = next(messages(ws))
            assert (refused["type"], refused["status"]) == ("error", 403), refused
            assert "os" in refused["detail"]
            go = str(workdir / "go")
            body = {"type": "submit", "task": "livetasks:halves", "args": [21, go]}
            ws.send(json.dumps(body))
            got: list[dict[str, Any]] = []
            for message in messages(ws):
                got.append(message)
                if message["type"] == "job.progress":
                    Path(go).touch()  # seen while it runs: now it may end
                if message["type"] == "end":
                    break
            assert got[0]["type"] == "submitted"
            job_id = got[0]["job"]["id"]
            events = got[1:-1]
            assert [e["type"] for e in events] == [
                "job.queued",
                "job.started",
                "job.progress",
                "job.succeeded",
            ]
            assert all(e["job"] == job_id for e in events)
            progress = events[2]
            assert (progress["progress"], progress["message"]) == (0.5, "half way")
            end = got[-1]["job"]
            assert (end["id"], end["state"], end["result"]) == (job_id, "succeeded", 42)
            # a job that already ended: its history, then its record, at once
            ws.send(json.dumps({"type": "subscribe", "job": job_id}))
            replay = [next(messages(ws)) for _ in range(6)]
            assert [m["type"] for m in replay] == [
                "subscribed",
                "job.queued",
                "job.started",
                "job.progress",
                "job.succeeded",
                "end",
            ]
            # a bad message is answered; the socket stays open
            ws.send("{")
            error = next(messages(ws))
            assert (error["type"], error["status"]) == ("error", 400)
            ws.send(json.dumps({"type": "subscribe", "job": 424242}))
            assert next(messages(ws))["status"] == 404
    finally:
        daemon.stop()


def test_websocket_needs_the_token_in_the_header_or_the_first_message(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    env = env_for(workdir, db)
    env["JOBRUNNER_TOKEN"] = TOKEN
    server = serve(env=env)
    url = ws_url(server)
    refusals = [
        {"type": "subscribe", "job": 1},  # no auth first
        {"type": "auth", "token": "wrong"},
        {"type": "auth"},
    ]
    with connect(url):
        pass  # gone before sending anything: nothing to refuse, nothing logged
    for first in refusals:
        with connect(url) as ws:
            ws.send(json.dumps(first))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    with connect(url, additional_headers={"Authorization": "Bearer wrong"}) as ws:
        ws.send(json.dumps({"type": "subscribe", "job": 1}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    with server.client(TOKEN) as http:
        job = post(http, command=["true"])["id"]
    with connect(url) as ws:
        ws.send(json.dumps({"type": "auth", "token": TOKEN}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "auth", "ok": True}
        ws.send(json.dumps({"type": "subscribe", "job": job}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
    with connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        ws.send(json.dumps({"type": "subscribe", "job": job}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
    assert TOKEN not in server.log() and "Traceback" not in server.log()
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        assert anonymous.get("/events").status_code == 401


def test_open_streams_end_when_the_server_stops(serve: Callable[..., Server]) -> None:
    server = serve()
    with server.client(timeout=30) as http, connect(ws_url(server)) as ws:
        job = post(http, command=["true"], delay="1h")["id"]
        ws.send(json.dumps({"type": "subscribe", "job": job}))
        assert [next(messages(ws))["type"] for _ in range(2)] == ["subscribed", "job.scheduled"]
        stream = Stream(http, "/events")
        server.stop()
        # (the job's event may come first: a stream without Last-Event-ID starts where
        # the hub is, which can be a commit behind the database)
        with pytest.raises(AssertionError, match="the stream ended"):
            while True:
                stream.next()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code in (1001, 1012)
    assert "graceful shutdown exceeded" not in server.log()  # nothing held the shutdown


def test_a_reader_that_falls_behind_reads_the_store_and_misses_nothing(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process, with a hub that lets a subscriber fall two batches behind: six commits
    the reader did not take in time come from the store instead, once each, in order."""
    import asyncio

    from jobrunner import ops
    from jobrunner.client import Client
    from jobrunner.config import Config
    from jobrunner.http import hub, live
    from jobrunner.http.state import ServerState
    from jobrunner.store import open_store

    monkeypatch.setattr(hub, "MAX_PENDING", 2)
    store = open_store(str(db))
    state = ServerState(Config(), str(db), None)
    client = Client(str(db), Config())

    async def run() -> list[str]:
        state.hub.start()
        try:
            sub = state.hub.subscribe(keepalive=True)
            stream = live.event_stream(state, sub, sub.start, live.Filter(None, None, None))
            assert (await anext(stream)).startswith(":")
            for _ in range(6):  # six commits: six batches for a reader taking none
                ops.submit(store, [client.prepare(command=["true"])], time.time())
            last = store.events_last_seq()
            for _ in range(3000):  # bounded: until the hub handed them all out
                if state.hub.delivered == last:
                    break
                await asyncio.sleep(0.01)
            ids: list[str] = []
            while len(ids) < 6:
                chunk = await asyncio.wait_for(anext(stream), 30)
                ids += [line[4:] for line in chunk.splitlines() if line.startswith("id: ")]
            await stream.aclose()
            return ids
        finally:
            state.hub.stop()
            state.close()

    try:
        assert asyncio.run(run()) == [str(seq) for seq in range(1, 7)]
    finally:
        store.close()


def test_streams_opened_while_an_idle_hub_skips_events_miss_nothing(db: Path) -> None:
    """With nobody subscribed the hub moves past commits without reading them; streams
    opened while commits keep coming (each from the next event, or resumed from an
    older one) still get every event after their start, once, in order."""
    import asyncio

    from jobrunner import ops
    from jobrunner.client import Client
    from jobrunner.config import Config
    from jobrunner.http import live
    from jobrunner.http.state import ServerState
    from jobrunner.store import open_store

    store = open_store(str(db))
    state = ServerState(Config(), str(db), None)
    client = Client(str(db), Config())
    job = client.prepare(command=["true"])

    async def run() -> None:
        state.hub.start()
        try:
            for round_ in range(20):  # bounded: twenty streams, commits around each
                ops.submit(store, [job], time.time())
                await asyncio.sleep(0.002 * (round_ % 3))  # the hub idle or catching up
                resume = round_ % 2 == 1
                sub = state.hub.subscribe(keepalive=True)
                after = max(0, sub.start - 2) if resume else sub.start
                stream = live.event_stream(state, sub, after, live.Filter(None, None, None))
                assert (await anext(stream)).startswith(":")
                ops.submit(store, [job], time.time())
                last = store.events_last_seq()
                seen: list[int] = []
                while not seen or seen[-1] < last:
                    chunk = await asyncio.wait_for(anext(stream), 30)
                    seen += [int(x[4:]) for x in chunk.splitlines() if x.startswith("id: ")]
                await stream.aclose()
                assert seen == list(range(after + 1, last + 1)), (round_, after, seen)
        finally:
            state.hub.stop()
            state.close()

    try:
        asyncio.run(run())
    finally:
        store.close()
