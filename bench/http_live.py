"""Live results of `jobrunner serve`: how soon a committed event reaches an SSE and a
WebSocket client, how soon a long poll returns after the job's final commit, and what
500 idle SSE clients cost the server.

    python -m bench.http_live [--n 200] [--idle-clients 500] [--idle-seconds 10] [--json]

Commits are made here, in this process, through the store (as a daemon would make
them); a latency is the time from the commit's return to the client seeing the event,
both read on this process's monotonic clock. One change at a time: each waits for its
event, so the figures are latencies, not a queue's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from typing import Any

import httpx
from websockets.sync.client import connect

from bench.procs import (
    BenchError,
    Service,
    clean_env,
    idle_cpu,
    percentile,
    progress,
    unwind_on_terminate,
)
from jobrunner import ops
from jobrunner.client import Client
from jobrunner.config import Config
from jobrunner.store import open_store
from jobrunner.store.base import Store

WAIT = 30.0  # seconds any one event may take before the run fails


class Serve(Service):
    name = "serve"

    def __init__(self, workdir: str, db: str) -> None:
        argv = [sys.executable, "-m", "jobrunner", "serve", "--listen", "127.0.0.1:0"]
        super().__init__(workdir, argv, clean_env(JOBRUNNER_DB=db))
        self.url = ""

    def start(self) -> float:
        wall = super().start()
        deadline = time.monotonic() + WAIT
        while not self.url:
            self.check_alive()
            with open(self.log_path) as f:
                for line in f:
                    if "listening on http://" in line:
                        self.url = line.split()[-1]
            if time.monotonic() > deadline:
                raise BenchError("the server did not say where it listens")
            time.sleep(0.02)
        return wall


def figures(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
    }


def scheduled_jobs(store: Store, client: Client, n: int) -> list[int]:
    """n jobs due in an hour: each can be ended (cancelled) on cue."""
    jobs = [client.prepare(command=["true"], delay="1h") for _ in range(n)]
    return [r.id for r in ops.submit(store, jobs, time.time())]


def sse_latency(url: str, store: Store, client: Client, n: int) -> dict[str, float]:
    """Submit n jobs one at a time; each job.queued event's arrival at an SSE client."""
    seen: dict[int, float] = {}
    arrived = threading.Condition()
    opened = threading.Event()

    def read() -> None:
        with httpx.Client(timeout=WAIT) as http, http.stream("GET", url + "/events") as res:
            for line in res.iter_lines():
                if line.startswith(":"):
                    opened.set()
                elif line.startswith("data: "):
                    job = json.loads(line[6:])["job"]
                    with arrived:
                        seen[job] = time.monotonic()
                        arrived.notify()
                    if len(seen) >= n:
                        return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not opened.wait(WAIT):
        raise BenchError("the SSE stream did not open")
    latencies = []
    for _ in range(n):
        (result,) = ops.submit(store, [client.prepare(command=["true"])], time.time())
        committed = time.monotonic()
        with arrived:
            if not arrived.wait_for(lambda r=result: r.id in seen, WAIT):
                raise BenchError(f"job {result.id}'s event never reached the SSE client")
        latencies.append((seen[result.id] - committed) * 1000)
    reader.join(WAIT)
    return figures(latencies)


def ws_latency(url: str, store: Store, client: Client, n: int) -> dict[str, float]:
    """Cancel n watched jobs one at a time; each job.cancelled event's arrival at a
    WebSocket client that subscribed to them all."""
    ids = scheduled_jobs(store, client, n)
    latencies = []
    with connect(url.replace("http://", "ws://") + "/ws", max_size=None) as ws:
        for job_id in ids:
            ws.send(json.dumps({"type": "subscribe", "job": job_id}))
            while json.loads(ws.recv(timeout=WAIT))["type"] != "job.scheduled":
                pass
        for job_id in ids:
            store.job_cancel(job_id, time.time())
            committed = time.monotonic()
            while True:
                message = json.loads(ws.recv(timeout=WAIT))
                if message["type"] == "job.cancelled" and message["job"] == job_id:
                    latencies.append((time.monotonic() - committed) * 1000)
                    break
            if json.loads(ws.recv(timeout=WAIT))["type"] != "end":
                raise BenchError("no end message after the final event")
    return figures(latencies)


def long_poll_latency(url: str, store: Store, client: Client, n: int) -> dict[str, float]:
    """A long poll on each of n jobs; the time from the job's cancel (its final commit)
    to the poll's answer. The poll is given 50 ms to be in place before the cancel."""
    ids = scheduled_jobs(store, client, n)
    latencies = []
    with httpx.Client(base_url=url, timeout=WAIT + 5) as http:
        http.get("/healthz")  # the connection is open before the first poll
        for job_id in ids:
            answered: list[float] = []

            def poll(job_id: int = job_id, answered: list[float] = answered) -> None:
                res = http.get(f"/jobs/{job_id}?wait=30s")
                answered.append(time.monotonic())
                if res.json()["state"] != "cancelled":
                    raise BenchError(f"the long poll answered {res.text}")

            poller = threading.Thread(target=poll)
            poller.start()
            time.sleep(0.05)
            store.job_cancel(job_id, time.time())
            committed = time.monotonic()
            poller.join(WAIT)
            if not answered:
                raise BenchError("the long poll did not return")
            latencies.append((answered[0] - committed) * 1000)
    return figures(latencies)


def idle_clients(server: Serve, clients: int, seconds: float) -> dict[str, Any]:
    """The server's CPU over `seconds` with no client, then with `clients` open, idle
    /events streams."""
    base_pct, base_fine, _ = idle_cpu([server.pid], seconds)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    socks = []
    try:
        for _ in range(clients):
            sock = socket.create_connection((host, int(port)), timeout=WAIT)
            sock.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            socks.append(sock)
        for sock in socks:  # every stream is open: its headers and first comment came
            data = b""
            while b": jobrunner events" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    raise BenchError("an SSE stream closed")
                data += chunk
        pct, fine, elapsed = idle_cpu([server.pid], seconds)
    finally:
        for sock in socks:
            sock.close()
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "cpu_pct_of_a_core": round(fine if fine is not None else pct[server.pid], 3),
        "cpu_pct_without_clients": round(
            base_fine if base_fine is not None else base_pct[server.pid], 3
        ),
    }


def measure(n: int = 200, idle: int = 500, idle_seconds: float = 10.0) -> dict[str, Any]:
    """Every figure of this bench, on a fresh database and server."""
    with tempfile.TemporaryDirectory(prefix="jr-http-live-") as workdir:
        db = os.path.join(workdir, "jobs.db")
        open_store(db).close()
        server = Serve(workdir, db)
        store = open_store(db, create=False)
        client = Client(db, Config())
        try:
            server.start()
            progress(f"serve at {server.url}")
            return {
                "sse_event_latency": sse_latency(server.url, store, client, n),
                "ws_event_latency": ws_latency(server.url, store, client, n),
                "long_poll_return": long_poll_latency(server.url, store, client, n),
                "idle_sse": idle_clients(server, idle, idle_seconds),
            }
        finally:
            store.close()
            server.stop()


def main(argv: list[str] | None = None) -> int:
    unwind_on_terminate()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="changes measured per figure")
    parser.add_argument("--idle-clients", type=int, default=500)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = measure(args.n, args.idle_clients, args.idle_seconds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, value in result.items():
            print(f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
