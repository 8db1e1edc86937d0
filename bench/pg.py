"""jobrunner on PostgreSQL beside procrastinate (the Python PostgreSQL job queue users
compare with), on the same server in the same run, runs alternated (A B, then B A...).

    python -m bench.pg [--quick] [--repeat N] [--only drain,pickup,scale,backlog]
                       [--server postgresql://postgres@127.0.0.1:5432/postgres]
                       [--out FILE] [--doc docs/benchmarks.md]

Every run gets a database of its own (bench_<random>), dropped after. Prints one JSON
document on stdout; with --doc, replaces the PostgreSQL section of that document. The
issue's targets: drain >= 4,000 jobs/s and >= 10x procrastinate; pickup p50 <= 5 ms;
three daemons >= 2.5x one on 10 ms jobs; 10^6 waiting >= 80% of 10^3. bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from bench.procs import (
    BenchError,
    Service,
    clean_env,
    progress,
    rounded,
    unwind_on_terminate,
    wait_until,
)

SERVER = os.environ.get("JOBRUNNER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# one module for both runners' work, written into each run's folder
WORK = """
import os, time

def noop():
    return None

def stamp(tag=""):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "stamps"), "a") as f:
        f.write(f"{tag} {time.time()}\\n")

def nap(ms=10):
    time.sleep(ms / 1000)
"""
PROCRASTINATE = """
import os
import procrastinate
import work

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["PC_URL"]))
noop = app.task(name="noop")(work.noop)   # sync tasks: procrastinate runs them in threads
stamp = app.task(name="stamp")(work.stamp)
"""
FULL = {"drain": 20_000, "pickup": 200, "scale": 3_000, "backlog": 1_000_000, "probe": 5_000}
QUICK = {"drain": 3_000, "pickup": 40, "scale": 1_000, "backlog": 100_000, "probe": 2_000}


@contextlib.contextmanager
def database() -> Iterator[str]:
    name = f"bench_{secrets.token_hex(5)}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def folder() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="jr-bench-pg-")
    with open(os.path.join(path, "work.py"), "w") as f:
        f.write(WORK)
    with open(os.path.join(path, "pctasks.py"), "w") as f:
        f.write(PROCRASTINATE)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def env(path: str, url: str) -> dict[str, str]:
    return clean_env(
        JOBRUNNER_DB=url, PC_URL=url, PYTHONPATH=path, JOBRUNNER_PG_LOGS=f"{path}/logs"
    )


# -- jobrunner -----------------------------------------------------------------------------


def daemon(path: str, url: str, *args: str) -> Service:
    argv = [sys.executable, "-m", "jobrunner", "daemon", "--workers", "2", *args]
    service = Service(path, argv, env(path, url))
    service.name = f"daemon-{secrets.token_hex(3)}"
    service.log_path = os.path.join(path, f"{service.name}.log")
    return service


def insert(url: str, n: int, task: str = "work:noop", args: list[Any] | None = None) -> None:
    from jobrunner.models import JobInsert
    from jobrunner.store import open_store

    store = open_store(url)
    try:
        for start in range(0, n, 20_000):
            count = min(20_000, n - start)
            store.job_insert_many([JobInsert(task=task, args=args or [])] * count, time.time())
    finally:
        store.close()


def succeeded(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(
            conn.execute("SELECT count(*) FROM jobs WHERE state = 'succeeded'").fetchone()[0]
        )


def wait_done(url: str, n: int, services: list[Service], timeout: float) -> None:
    def done() -> bool:
        for s in services:
            s.check_alive()
        return succeeded(url) >= n

    wait_until(f"{n} jobs to succeed", done, timeout, every=0.02)


def jr_drain(path: str, url: str, n: int) -> dict[str, Any]:
    insert(url, n)
    d = daemon(path, url)
    t0 = time.perf_counter()
    d.start()
    try:
        wait_done(url, n, [d], 60 + n / 100)
        took = time.perf_counter() - t0
    finally:
        d.stop()
    return {"jobs": n, "seconds": took, "jobs_per_s": n / took}


def ready(d: Service, url: str, count: int = 1) -> None:
    def registered() -> bool:
        d.check_alive()
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM daemons").fetchone()[0] >= count

    wait_until("the daemon registered", registered, 30)


def stamps(path: str) -> dict[str, float]:
    try:
        with open(os.path.join(path, "stamps")) as f:
            return {tag: float(t) for tag, t in (line.split() for line in f if line.strip())}
    except FileNotFoundError:
        return {}


def pickup_samples(path: str, n: int, submit: Callable[[str], None]) -> dict[str, Any]:
    latencies = []
    for i in range(n):
        tag = f"p{i}"
        t0 = time.time()
        submit(tag)
        wait_until("the job to start", lambda tag=tag: tag in stamps(path), 10, every=0.0005)
        latencies.append(1000 * (stamps(path)[tag] - t0))
        time.sleep(0.02)
    latencies.sort()
    return {
        "samples": n,
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(0.95 * (n - 1))],
    }


def jr_pickup(path: str, url: str, n: int) -> dict[str, Any]:
    from jobrunner.client import Client

    d = daemon(path, url)
    d.start()
    client = Client(url)
    try:
        client.store  # noqa: B018 - made before the daemon looks
        ready(d, url)
        time.sleep(0.5)  # its workers forked
        return pickup_samples(
            path, n, lambda tag: client.submit("work:stamp", args=[tag], check=False)
        )
    finally:
        client.close()
        d.stop()


def jr_scale(path: str, url: str, n: int, daemons: int) -> dict[str, Any]:
    """`daemons` daemons (2 workers each) started and ready; n jobs of 10 ms inserted at
    once; from the insert to all succeeded."""
    from jobrunner.store import open_store

    open_store(url).close()  # the schema, before the daemons race to make it
    ds = [daemon(path, url) for _ in range(daemons)]
    for d in ds:
        d.start()
    try:
        for d in ds:
            ready(d, url, daemons)
        time.sleep(0.5)
        t0 = time.perf_counter()
        insert(url, n, "work:nap", [10])
        wait_done(url, n, ds, 120)
        took = time.perf_counter() - t0
    finally:
        for d in ds:
            d.stop()
    return {"jobs": n, "daemons": daemons, "seconds": took, "jobs_per_s": n / took}


def jr_backlog(path: str, url: str, n: int, waiting: int) -> dict[str, Any]:
    """`waiting` jobs in a queue no daemon serves (made by SQL from one submitted row:
    10^6 submits would take minutes), then the drain of n jobs of the served queue."""
    from jobrunner.models import JobInsert
    from jobrunner.store import open_store

    store = open_store(url)
    store.job_insert_many([JobInsert(task="work:noop", queue="backlog")], time.time())
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        columns = "state, task, command, args, kwargs, queue, priority, max_attempts, retries, backoff, timeout, created_at, run_at, options"
        conn.execute(
            f"INSERT INTO jobs ({columns}) SELECT {columns} FROM jobs, generate_series(2, %s) "
            "WHERE queue = 'backlog'",
            (waiting,),
        )
        conn.execute("ANALYZE jobs")
    insert(url, n)
    d = daemon(path, url, "--queues", "default")
    t0 = time.perf_counter()
    d.start()
    try:
        wait_done(url, n, [d], 60 + n / 100)
        took = time.perf_counter() - t0
    finally:
        d.stop()
    return {"jobs": n, "waiting": waiting, "seconds": took, "jobs_per_s": n / took}


# -- procrastinate -------------------------------------------------------------------------


def pc(path: str, url: str, code: str) -> None:
    import subprocess

    subprocess.run(
        [sys.executable, "-c", f"import pctasks\nwith pctasks.app.open():\n{code}"],
        cwd=path,
        env=env(path, url),
        check=True,
        capture_output=True,
        timeout=600,
    )


def pc_drain(path: str, url: str, n: int) -> dict[str, Any]:
    import subprocess

    pc(
        path,
        url,
        f"    pctasks.app.schema_manager.apply_schema()\n    pctasks.noop.batch_defer(*[{{}}] * {n})",
    )
    t0 = time.perf_counter()
    # wait=False: the worker exits once the queue is empty
    subprocess.run(
        [sys.executable, "-c", "import pctasks; pctasks.app.run_worker(concurrency=2, wait=False)"],
        cwd=path,
        env=env(path, url),
        check=True,
        capture_output=True,
        timeout=60 + n / 20,
    )
    took = time.perf_counter() - t0
    with psycopg.connect(url) as conn:
        done = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        ).fetchone()[0]
    if done != n:
        raise BenchError(f"procrastinate finished {done} of {n}")
    return {"jobs": n, "seconds": took, "jobs_per_s": n / took}


def pc_pickup(path: str, url: str, n: int) -> dict[str, Any]:
    import procrastinate

    pc(path, url, "    pctasks.app.schema_manager.apply_schema()")
    argv = [
        sys.executable,
        "-c",
        "import pctasks; pctasks.app.run_worker(concurrency=2, listen_notify=True)",
    ]
    worker = Service(path, argv, env(path, url))
    worker.start()
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    sys.path.insert(0, path)
    try:
        time.sleep(1.5)  # the worker listening
        with app.open():
            deferrer = app.configure_task("stamp")
            return pickup_samples(path, n, lambda tag: deferrer.defer(tag=tag))
    finally:
        sys.path.remove(path)
        worker.stop()


# -- running and reporting -----------------------------------------------------------------


def once(measure: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with database() as url, folder() as path:
        try:
            return {**measure(path, url, *args), "loadavg_1m_before": os.getloadavg()[0]}
        except (BenchError, Exception) as exc:  # noqa: BLE001 - a failed run is reported
            progress(f"run failed: {exc}")
            return {"error": str(exc)[:500]}


def alternate(a: Callable[[], dict[str, Any]], b: Callable[[], dict[str, Any]], repeat: int):
    runs_a, runs_b = [], []
    for i in range(repeat):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        r1, r2 = first(), second()
        (runs_a if first is a else runs_b).append(r1)
        (runs_b if first is a else runs_a).append(r2)
    return runs_a, runs_b


def figure(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    values = [r[key] for r in runs if "error" not in r]
    failed = len(runs) - len(values)
    if not values:
        return {"median": None, "runs": [], "failed": failed}
    spread = [min(values), max(values)]
    return {"median": statistics.median(values), "spread": spread, "runs": values, "failed": failed}


def run(sizes: dict[str, Any], repeat: int, only: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"server": SERVER.rsplit("@", 1)[-1], "repeat": repeat, "sizes": sizes}
    if "drain" in only:
        progress("drain: jobrunner and procrastinate, alternated")
        a, b = alternate(
            lambda: once(jr_drain, sizes["drain"]), lambda: once(pc_drain, sizes["drain"]), repeat
        )
        out["drain"] = {
            "jobrunner": figure(a, "jobs_per_s"),
            "procrastinate": figure(b, "jobs_per_s"),
        }
    if "pickup" in only:
        progress("pickup: jobrunner and procrastinate, alternated")
        a, b = alternate(
            lambda: once(jr_pickup, sizes["pickup"]),
            lambda: once(pc_pickup, sizes["pickup"]),
            repeat,
        )
        out["pickup"] = {
            "jobrunner": figure(a, "p50_ms"),
            "procrastinate": figure(b, "p50_ms"),
            "jobrunner_p95": figure(a, "p95_ms"),
            "procrastinate_p95": figure(b, "p95_ms"),
        }
    if "scale" in only:
        progress("scale: one daemon and three, alternated")
        a, b = alternate(
            lambda: once(jr_scale, sizes["scale"], 1),
            lambda: once(jr_scale, sizes["scale"], 3),
            repeat,
        )
        out["scale"] = {"one": figure(a, "jobs_per_s"), "three": figure(b, "jobs_per_s")}
    if "backlog" in only:
        progress("backlog: 10^3 and 10^6 waiting, alternated")
        a, b = alternate(
            lambda: once(jr_backlog, sizes["probe"], 1_000),
            lambda: once(jr_backlog, sizes["probe"], sizes["backlog"]),
            repeat,
        )
        out["backlog"] = {"small": figure(a, "jobs_per_s"), "large": figure(b, "jobs_per_s")}
    return rounded(out)


def ratio(x: Any, y: Any) -> float | None:
    return x / y if x and y else None


def markdown(r: dict[str, Any]) -> str:
    """The PostgreSQL section of docs/benchmarks.md."""

    def fig(f: dict[str, Any], unit: str) -> str:
        if f.get("median") is None:
            return "failed"
        lo, hi = f["spread"]
        return f"{f['median']:,.1f} {unit} [{lo:,.1f}, {hi:,.1f}]"

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "missed")

    rows = []
    if "drain" in r:
        j, p = r["drain"]["jobrunner"]["median"], r["drain"]["procrastinate"]["median"]
        x = ratio(j, p)
        rows.append(
            (
                f"drain of {r['sizes']['drain']:,} no-op jobs, 2 workers",
                fig(r["drain"]["jobrunner"], "jobs/s"),
                fig(r["drain"]["procrastinate"], "jobs/s"),
                f"{x:.1f}x" if x else "-",
                ">= 4,000 jobs/s and >= 10x",
                verdict(None if x is None else (j >= 4000 and x >= 10)),
            )
        )
    if "pickup" in r:
        j, p = r["pickup"]["jobrunner"]["median"], r["pickup"]["procrastinate"]["median"]
        x = ratio(p, j)
        rows.append(
            (
                "pickup p50, LISTEN/NOTIFY (p95 below)",
                fig(r["pickup"]["jobrunner"], "ms")
                + "; p95 "
                + fig(r["pickup"]["jobrunner_p95"], "ms"),
                fig(r["pickup"]["procrastinate"], "ms")
                + "; p95 "
                + fig(r["pickup"]["procrastinate_p95"], "ms"),
                f"{x:.1f}x" if x else "-",
                "<= 5 ms",
                verdict(None if j is None else j <= 5),
            )
        )
    if "scale" in r:
        one, three = r["scale"]["one"]["median"], r["scale"]["three"]["median"]
        x = ratio(three, one)
        rows.append(
            (
                f"three daemons vs one, {r['sizes']['scale']:,} jobs of 10 ms",
                "three: " + fig(r["scale"]["three"], "jobs/s"),
                "one: " + fig(r["scale"]["one"], "jobs/s"),
                f"{x:.2f}x" if x else "-",
                ">= 2.5x",
                verdict(None if x is None else x >= 2.5),
            )
        )
    if "backlog" in r:
        small, large = r["backlog"]["small"]["median"], r["backlog"]["large"]["median"]
        x = ratio(large, small)
        rows.append(
            (
                f"drain of {r['sizes']['probe']:,} with {r['sizes']['backlog']:,} waiting vs 1,000",
                "10^6: " + fig(r["backlog"]["large"], "jobs/s"),
                "10^3: " + fig(r["backlog"]["small"], "jobs/s"),
                f"{100 * x:.0f}%" if x else "-",
                ">= 80%",
                verdict(None if x is None else x >= 0.8),
            )
        )
    lines = [
        "## PostgreSQL, beside procrastinate",
        "",
        f"`python -m bench.pg` (part of `make bench`): PostgreSQL 15 at {r['server']}, the",
        f"same server for both, {r['repeat']} runs each alternated, medians [min, max].",
        "procrastinate runs its worker with concurrency 2 (its sync tasks in threads);",
        "jobrunner its daemon with 2 forked workers.",
        "",
        "| measure | jobrunner | procrastinate / baseline | ratio | target | |",
        "|---|---|---|---|---|---|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def write_section(doc: str, section: str) -> None:
    start, end = "<!-- postgres:begin -->", "<!-- postgres:end -->"
    text = ""
    if os.path.exists(doc):
        with open(doc) as f:
            text = f.read()
    block = f"{start}\n{section}{end}\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(doc, "w") as f:
        f.write(text)


def main() -> int:
    unwind_on_terminate()
    parser = argparse.ArgumentParser(prog="python -m bench.pg")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--only", default="drain,pickup,scale,backlog")
    parser.add_argument("--out")
    parser.add_argument("--doc")
    args = parser.parse_args()
    try:
        psycopg.connect(SERVER, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        progress(f"PostgreSQL section skipped: no server at {SERVER}: {str(exc).strip()}")
        return 0
    repeat = args.repeat or (2 if args.quick else 4)
    result = run(QUICK if args.quick else FULL, repeat, set(args.only.split(",")))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.doc:
        write_section(args.doc, markdown(result))
    failed = any(
        f.get("failed")
        for measure in result.values()
        if isinstance(measure, dict)
        for f in measure.values()
        if isinstance(f, dict)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
