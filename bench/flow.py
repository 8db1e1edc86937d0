"""Flow control's cost (issue 18's targets), in one run, alternated:

- a queue with `concurrency = 1` drained by three daemons beside one daemon, on jobs of
  10 ms: the three must reach >= 80% of the one's rate (the limit, counted in every
  claim's transaction, must not make daemons trip over each other);
- a drain of 20,000 no-op jobs in queues without limits, this checkout beside another
  one (`--baseline PATH`, a checkout of the code before flow control, run with
  PYTHONPATH=PATH): within 5%.

    python -m bench.flow [--db postgresql://...] [--repeat 4] [--baseline /tmp/base]

Each run uses a fresh SQLite file in a temp dir (or a fresh PostgreSQL database from
the URL's server). Prints JSON; medians with [min, max]."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.procs import unwind_on_terminate

TASKS = "import time\n\ndef sleep10():\n    time.sleep(0.01)\n\ndef noop():\n    pass\n"


@contextmanager
def database(server: str | None) -> Iterator[tuple[str, str]]:
    """(workdir, database) fresh for one run: an SQLite path, or a new PostgreSQL one."""
    with tempfile.TemporaryDirectory(prefix="jr-flow-") as work:
        with open(os.path.join(work, "flowtasks.py"), "w") as f:
            f.write(TASKS)
        if server is None:
            yield work, os.path.join(work, "jobs.db")
            return
        import psycopg

        name = f"flow_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        try:
            yield work, server.rsplit("/", 1)[0] + "/" + name
        finally:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


SUCCEEDED = "SELECT count(*) FROM jobs WHERE state = 'succeeded'"  # both schemas


@contextmanager
def counter(db: str) -> Iterator[Any]:
    """How many jobs succeeded, read directly (no store: a baseline's schema is older
    and must not be migrated by this code)."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            yield lambda: conn.execute(SUCCEEDED).fetchone()[0]
        return
    import apsw

    conn = apsw.Connection(db, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        yield lambda: next(iter(conn.execute(SUCCEEDED)))[0]
    finally:
        conn.close()


def env_for(work: str, db: str, baseline: str | None) -> dict[str, str]:
    env = dict(os.environ, JOBRUNNER_DB=db, JOBRUNNER_PG_LOGS=os.path.join(work, "pg-logs"))
    env.pop("JOBRUNNER_CONFIG", None)
    if baseline is not None:
        env["PYTHONPATH"] = baseline
    return env


def run(work: str, db: str, env: dict[str, str], *args: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "jobrunner", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"jobrunner {args}: {res.stderr.strip()}")
    return res.stdout


def drain(
    server: str | None, jobs: int, task: str, daemons: int, config: str, baseline: str | None
) -> float:
    """Submit `jobs` of `task` in one file, start `daemons` daemons (2 workers each),
    and time from their start to every job succeeded: jobs/s."""
    with database(server) as (work, db):
        env = env_for(work, db, baseline)
        with open(os.path.join(work, "jobrunner.toml"), "w") as f:
            f.write(f"[daemon]\nworkers = 2\n{config}")
        lines = "".join(json.dumps({"task": task, "queue": "one"}) + "\n" for _ in range(jobs))
        with open(os.path.join(work, "jobs.jsonl"), "w") as f:
            f.write(lines)
        run(work, db, env, "submit", "--file", "jobs.jsonl")
        procs = []
        t0 = time.perf_counter()
        try:
            for _ in range(daemons):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "jobrunner", "daemon"],
                        cwd=work,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            deadline = t0 + 600
            with counter(db) as succeeded:
                while time.perf_counter() < deadline:
                    if succeeded() >= jobs:
                        return jobs / (time.perf_counter() - t0)
                    time.sleep(0.02)
            raise RuntimeError("the drain did not finish in 10 minutes")
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


def summary(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> int:
    unwind_on_terminate()
    parser = argparse.ArgumentParser(prog="python -m bench.flow")
    parser.add_argument("--db", help="a PostgreSQL server URL (default: SQLite files)")
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--baseline", help="a checkout to compare the unconstrained drain with")
    parser.add_argument("--doc", help="write (or replace) its section of this markdown file")
    args = parser.parse_args()
    one, three, now, before = [], [], [], []
    limited = "[queues.one]\nconcurrency = 1\n"
    for i in range(args.repeat):
        pair = [(one, 1), (three, 3)] if i % 2 == 0 else [(three, 3), (one, 1)]
        for out, daemons in pair:
            out.append(drain(args.db, 300, "flowtasks:sleep10", daemons, limited, None))
            print(f"limited, {daemons} daemon(s): {out[-1]:.1f} jobs/s", file=sys.stderr)
        if args.baseline:
            pair2 = [(now, None), (before, args.baseline)]
            for out, base in pair2 if i % 2 == 0 else pair2[::-1]:
                out.append(drain(args.db, 20_000, "flowtasks:noop", 1, "", base))
                print(f"drain, {'baseline' if base else 'now'}: {out[-1]:.0f}", file=sys.stderr)
    result: dict[str, Any] = {
        "backend": "postgresql" if args.db else "sqlite",
        "limited_one_daemon": summary(one),
        "limited_three_daemons": summary(three),
        "three_over_one": statistics.median(three) / statistics.median(one),
    }
    if args.baseline:
        result["drain_now"] = summary(now)
        result["drain_baseline"] = summary(before)
        result["now_over_baseline"] = statistics.median(now) / statistics.median(before)
    print(json.dumps(result, indent=2))
    if args.doc:
        write_section(args.doc, result)
    return 0


def write_section(doc: str, r: dict[str, Any]) -> None:
    """Its section of the benchmarks page, between markers (bench.report keeps it)."""

    def cell(s: dict[str, Any], unit: str) -> str:
        return f"{s['median']:,.1f} {unit} [{s['min']:,.1f}, {s['max']:,.1f}]"

    rows = [
        "| measure | this run | against | ratio | target |",
        "|---|---|---|---|---|",
        f"| a queue with concurrency = 1, 300 jobs of 10 ms, three daemons vs one | "
        f"{cell(r['limited_three_daemons'], 'jobs/s')} | "
        f"{cell(r['limited_one_daemon'], 'jobs/s')} | {r['three_over_one']:.2f}x | >= 0.80x |",
    ]
    if "drain_now" in r:
        rows.append(
            f"| drain of 20,000 no-op jobs without limits, this code vs before flow control | "
            f"{cell(r['drain_now'], 'jobs/s')} | {cell(r['drain_baseline'], 'jobs/s')} | "
            f"{r['now_over_baseline']:.3f}x | within 5% |"
        )
    section = "\n".join(
        [
            f"## Flow control ({r['backend']}, `python -m bench.flow`)",
            "",
            f"{time.strftime('%Y-%m-%d')}, medians [min, max] of the runs, alternated.",
            "",
            *rows,
            "",
        ]
    )
    name = f"flow-{r['backend']}"
    start, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = Path(doc).read_text() if os.path.exists(doc) else ""
    block = f"{start}\n{section}{end}\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    Path(doc).write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
