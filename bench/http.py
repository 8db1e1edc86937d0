"""POST /jobs under load: jobs/s acknowledged by `jobrunner serve` (group commit: many
requests share each fsync) against Client.submit in a loop (one commit per job), both
on a fresh database with FULL durability, in the same run.

    .venv/bin/python -m bench.http [--seconds 3] [--connections 64]

or `bench.http.submit_rates(seconds, connections)` -> a dict of figures. The load
generator is a plain asyncio HTTP/1.1 keep-alive client (one request in flight per
connection): httpx spends more CPU per request than the server does, and on a small
machine would measure itself. It shares the machine's cores with the server, so the
figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.procs import percentile, progress, rounded, unwind_on_terminate

CONFIG = '[tasks.hello]\ncommand = ["true"]\n'
JOB = b'{"task": "hello"}'


def start_server(workdir: str, db: str) -> tuple[subprocess.Popen[bytes], str]:
    """`jobrunner serve` on a free port; (process, host:port) once it listens."""
    env = dict(os.environ, JOBRUNNER_DB=db)
    env.pop("JOBRUNNER_CONFIG", None)
    env.pop("JOBRUNNER_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobrunner", "serve", "--listen", "127.0.0.1:0"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()  # the first line says where (or it exited)
    if "listening on http://" not in line:
        proc.wait(10)
        raise RuntimeError(f"serve did not start (exit {proc.returncode}): {line!r}")
    return proc, line.rsplit("http://", 1)[1].strip()


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(15)


def post_request(address: str, body: bytes, minimal: bool = False) -> bytes:
    prefer = "Prefer: return=minimal\r\n" if minimal else ""
    return (
        f"POST /jobs HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n"
        f"{prefer}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def get_request(address: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()


async def one_connection(
    address: str,
    request: bytes,
    expect: bytes,
    deadline: float,
    latencies: list[float],
    ids: list[int] | None,
) -> None:
    """Send `request` again and again on one keep-alive connection until `deadline`; each
    answer must have status `expect`; the ids of the records answered go to `ids`."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            answer = await reader.readexactly(length)
            if status != expect:
                raise RuntimeError(f"{request[:20]!r} answered {status!r}: {answer[:200]!r}")
            latencies.append((time.perf_counter() - start) * 1000)
            if ids is not None:
                record = json.loads(answer)
                if isinstance(record, list):
                    ids.extend(r["id"] for r in record)
                else:
                    ids.append(record["id"])
    finally:
        writer.close()


async def load(
    address: str,
    request: bytes,
    seconds: float,
    connections: int,
    expect: bytes = b"202",
    collect: bool = True,
) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    ids: list[int] = []
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(
        *(
            one_connection(address, request, expect, deadline, latencies, ids if collect else None)
            for _ in range(connections)
        )
    )
    return latencies, ids, time.monotonic() - start


def stored_count(db: str) -> int:
    from jobrunner.store import open_store

    store = open_store(db, create=False)
    try:
        return sum(store.job_counts().values())
    finally:
        store.close()


def http_rate(
    workdir: str,
    name: str,
    body: bytes,
    seconds: float,
    connections: int,
    minimal: bool = False,
) -> dict[str, Any]:
    """POST `body` on `connections` connections for `seconds`; with `minimal`, asking for
    ids only (Prefer: return=minimal)."""
    db = os.path.join(workdir, f"{name}.db")
    proc, address = start_server(workdir, db)
    try:
        request = post_request(address, body, minimal)
        latencies, ids, elapsed = asyncio.run(load(address, request, seconds, connections))
    finally:
        stop_server(proc)
    if len(set(ids)) != len(ids) or stored_count(db) != len(ids):
        raise RuntimeError(f"{len(ids)} acknowledged, {stored_count(db)} stored")
    return {
        "jobs": len(ids),
        "jobs_per_s": len(ids) / elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def get_rate(workdir: str, seconds: float, connections: int) -> dict[str, Any]:
    """GET /jobs/ID of one job, `connections` at once: requests/s and latencies."""
    db = os.path.join(workdir, "get.db")
    proc, address = start_server(workdir, db)
    try:
        import urllib.request

        first = urllib.request.Request(
            f"http://{address}/jobs", JOB, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(first, timeout=30) as answer:  # job 1
            assert answer.status == 202
        request = get_request(address, "/jobs/1")
        latencies, _, elapsed = asyncio.run(
            load(address, request, seconds, connections, expect=b"200", collect=False)
        )
    finally:
        stop_server(proc)
    return {
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def client_rate(workdir: str, seconds: float) -> dict[str, Any]:
    """Client.submit in a loop: one transaction, one fsync, per job."""
    from jobrunner.client import Client

    db = os.path.join(workdir, "client.db")
    jobs = 0
    with Client(db, os.path.join(workdir, "jobrunner.toml")) as client:
        client.submit("hello")  # the database made, outside the clock
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            client.submit("hello")
            jobs += 1
        elapsed = time.monotonic() - start
    return {"jobs": jobs, "jobs_per_s": jobs / elapsed}


def submit_rates(seconds: float = 3.0, connections: int = 64, batch: int = 1000) -> dict[str, Any]:
    """POST /jobs with `connections` connections (one job a request), Client.submit in a
    loop, and POST /jobs of `batch` jobs a request on one connection, each for `seconds`,
    in this order, on fresh databases."""
    loadavg = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="jr-bench-http-") as workdir:
        with open(os.path.join(workdir, "jobrunner.toml"), "w") as f:
            f.write(CONFIG)
        progress(f"POST /jobs: {connections} connections, {seconds:g}s")
        grouped = http_rate(workdir, "http", JOB, seconds, connections)
        progress(f"Client.submit in a loop, {seconds:g}s")
        single = client_rate(workdir, seconds)
        progress(f"POST /jobs: batches of {batch}, {seconds:g}s")
        array = b"[" + b",".join([JOB] * batch) + b"]"
        batched = http_rate(workdir, "batch", array, seconds, 1)
        progress(f"POST /jobs: batches of {batch}, Prefer: return=minimal, {seconds:g}s")
        minimal = http_rate(workdir, "minimal", array, seconds, 1, minimal=True)
        progress(f"GET /jobs/ID: {connections} connections, {seconds:g}s")
        reads = get_rate(workdir, seconds, connections)
    return rounded(
        {
            "loadavg_1m_before": loadavg,
            "http_group_commit": grouped,
            "client_submit_loop": single,
            "group_vs_loop": grouped["jobs_per_s"] / single["jobs_per_s"],
            f"http_batch_{batch}": batched,
            f"http_batch_{batch}_minimal": minimal,
            "http_get_job": reads,
        }
    )


def main() -> None:
    unwind_on_terminate()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(submit_rates(args.seconds, args.connections), indent=2))


if __name__ == "__main__":
    main()
