"""jobrunner beside huey, in one run on one machine, and jobrunner at scale.

    python -m bench.run [--quick] [--repeat N] [--only a,b] [--suite compare|scale|all]
                        [--out FILE] [--synchronous FULL|NORMAL]

Prints one JSON document on stdout (progress goes to stderr). Each comparison runs
jobrunner and huey alternately (A B A B ...), each run on a fresh database in a fresh
temp dir, and reports the medians, the spread and the ratios. See bench/README.md.
`make bench` runs everything and renders docs/benchmarks.md (bench/report.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import apsw

from bench import http, http_live, hy, jr, scale
from bench.procs import (
    PYCACHE,
    BenchError,
    clean_env,
    progress,
    rounded,
    summarize,
    unwind_on_terminate,
)
from bench.workload import calibrate_burn, write_workload

Measurement = Callable[[str, Any, jr.Settings], dict[str, Any]]

FULL = {
    "drain": 20_000,
    "e2e": 5_000,
    "e2e_bulk": 20_000,
    "pickup": 50,
    "single": 2_000,
    "bulk": 100_000,
    "huey_bulk": 10_000,
    "cpu": 400,
    "idle": 10.0,
    "cli": 20,
}
QUICK = {
    "drain": 5_000,
    "e2e": 2_000,
    "e2e_bulk": 5_000,
    "pickup": 20,
    "single": 1_000,
    "bulk": 20_000,
    "huey_bulk": 3_000,
    "cpu": 100,
    "idle": 5.0,
    "cli": 10,
}

# name -> (jobrunner's, huey's or None, size key, huey's size key, the figure, higher is better)
COMPARISONS: dict[str, tuple[Measurement, Measurement | None, str, str, str, bool]] = {
    "drain": (jr.drain, hy.drain, "drain", "drain", "jobs_per_s", True),
    "e2e": (jr.end_to_end, hy.end_to_end, "e2e", "e2e", "jobs_per_s", True),
    "e2e_bulk": (
        jr.end_to_end_bulk,
        hy.end_to_end_bulk,
        "e2e_bulk",
        "e2e_bulk",
        "jobs_per_s",
        True,
    ),
    "pickup": (jr.pickup, hy.pickup, "pickup", "pickup", "p50_ms", False),
    "submit_single": (jr.submit_single, hy.submit_single, "single", "single", "jobs_per_s", True),
    "submit_bulk": (jr.submit_bulk, hy.submit_bulk, "bulk", "huey_bulk", "jobs_per_s", True),
    "cpu_heavy": (jr.cpu_heavy, hy.cpu_heavy, "cpu", "cpu", "jobs_per_s", True),
    "idle": (
        jr.idle,
        lambda p, n, s: hy.idle(p, n, s, hy.TUNED),
        "idle",
        "idle",
        "cpu_pct",
        False,
    ),
    "cli": (jr.cli, None, "cli", "cli", "median_ms", False),
}
SUITES = {"compare", "scale", "http", "all"}


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[str]:
    """A fresh temp dir holding the workload modules; removed afterwards."""
    path = tempfile.mkdtemp(prefix="jrbench-")
    try:
        write_workload(path)
        yield path
    finally:
        if keep:
            progress(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def one_run(label: str, fn: Measurement, size: Any, s: jr.Settings, keep: bool) -> dict[str, Any]:
    progress(f"{label} (size {size}, workers {s.workers})")
    load = os.getloadavg()[0]  # other work on the machine skews every figure
    with workdir(keep) as path:
        try:
            run = fn(path, size, s)
        except (BenchError, OSError, apsw.Error, subprocess.SubprocessError) as exc:
            progress(f"{label} FAILED: {exc}")
            run = {"error": str(exc)}
    run["loadavg_1m_before"] = load
    shown = {k: v for k, v in rounded(run).items() if not isinstance(v, list | dict)}
    progress(f"  {shown}")
    return run


def ratio(a: float | None, b: float | None, higher_is_better: bool) -> float | None:
    """How many times better jobrunner's median is than huey's (>1: jobrunner wins)."""
    if not a or not b:
        return None
    return a / b if higher_is_better else b / a


def compare(name: str, sizes: dict[str, Any], s: jr.Settings, repeat: int, keep: bool) -> dict:
    jr_fn, hy_fn, size_key, hy_size_key, figure, higher = COMPARISONS[name]
    runs: dict[str, list[dict[str, Any]]] = {"jobrunner": [], "huey": []}
    for i in range(repeat):
        # A B A B: neither runner always goes first, so drift in the machine's load
        # lands on both.
        order = ["jobrunner", "huey"] if i % 2 == 0 else ["huey", "jobrunner"]
        for who in order:
            if who == "jobrunner":
                label = f"{name} jobrunner {i + 1}/{repeat}"
                runs[who].append(one_run(label, jr_fn, sizes[size_key], s, keep))
            elif hy_fn is not None:
                label = f"{name} huey {i + 1}/{repeat}"
                runs[who].append(one_run(label, hy_fn, sizes[hy_size_key], s, keep))
    out: dict[str, Any] = {"figure": figure, "higher_is_better": higher}
    for who, who_runs in runs.items():
        if who_runs:
            out[who] = summarize(who_runs)
    if hy_fn is not None:
        a = out["jobrunner"]["median"].get(figure)
        b = out["huey"]["median"].get(figure)
        if name == "idle" and not a:  # under one clock tick: use the ns-resolution figure
            a = out["jobrunner"]["median"].get("cpu_pct_schedstat")
            b = out["huey"]["median"].get("cpu_pct_schedstat")
        out["ratio"] = ratio(a, b, higher)
    return out


def compare_cpu(sizes: dict[str, Any], s: jr.Settings, repeat: int, keep: bool) -> dict:
    """CPU-heavy jobs with s.workers and with one worker, for the speed-up."""
    out = compare("cpu_heavy", sizes, s, repeat, keep)
    one = jr.Settings(s.synchronous, 1, s.burn_n)
    single = compare("cpu_heavy", sizes, one, max(1, repeat // 2), keep)
    out["one_worker"] = {k: single[k] for k in ("jobrunner", "huey", "ratio")}
    for who in ("jobrunner", "huey"):
        many = out[who]["median"].get("jobs_per_s")
        solo = single[who]["median"].get("jobs_per_s")
        out[who]["speedup_over_one_worker"] = many / solo if many and solo else None
    return out


def compare_idle_default(sizes: dict[str, Any], s: jr.Settings, keep: bool) -> dict:
    run = one_run(
        "idle huey default tuning",
        lambda p, n, st: hy.idle(p, n, st, hy.DEFAULT),
        sizes["idle"],
        s,
        keep,
    )
    return summarize([run])


def http_suite(quick: bool) -> dict[str, Any]:
    """`jobrunner serve`: POST /jobs (group commit, beside Client.submit in a loop, and
    batches), GET /jobs/ID, and how soon events, long polls and WebSocket messages follow
    a commit; a failed part is {"error": ...} and the others still run."""
    out: dict[str, Any] = {}
    try:
        out["submit"] = http.submit_rates(seconds=1.0 if quick else 3.0)
    except Exception as exc:  # noqa: BLE001 - reported, the other part still runs
        out["submit"] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        out["live"] = http_live.measure(
            50 if quick else 200, 100 if quick else 500, 3.0 if quick else 10.0
        )
    except Exception as exc:  # noqa: BLE001
        out["live"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "apsw": apsw.apsw_version(),
        "sqlite": apsw.sqlite_lib_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(ImportError):
        import huey

        info["huey"] = huey.__version__
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    return info


def warm_pycache() -> None:
    """Compile what the daemon, the CLI and huey import into the private .pyc prefix."""
    modules = "jobrunner.cli.main, jobrunner.cli.submit, jobrunner.cli.daemon, jobrunner.client"
    code = f"import {modules}, jobrunner.daemon.supervisor, jobrunner.store.sqlite, huey"
    subprocess.run([sys.executable, "-c", code], env=clean_env(), check=True, timeout=60)


def main(argv: list[str] | None = None) -> int:
    unwind_on_terminate()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    parser.add_argument("--repeat", type=int, help="runs per runner and measurement (default 4)")
    parser.add_argument("--suite", choices=sorted(SUITES), default="all")
    parser.add_argument("--only", metavar="a,b", help=f"some of: {','.join(COMPARISONS)}")
    parser.add_argument("--scale", metavar="N,N", help="backlogs for the scale suite")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON here")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (debugging)")
    args = parser.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (2 if args.quick else 4)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes = dict(QUICK if args.quick else FULL)
    only = set(args.only.split(",")) if args.only else set(COMPARISONS)
    if only - set(COMPARISONS):
        parser.error(f"--only: unknown {sorted(only - set(COMPARISONS))}")
    try:
        backlogs = scale.parse_backlogs(args.scale, args.quick)
    except ValueError as exc:
        parser.error(f"--scale: {exc}")

    # A SIGTERM to the bench unwinds like ^C, so every `finally` stops its processes.
    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    started = time.time()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        progress(f"warning: load average {load_before[0]:.2f}; other work skews the figures")
    settings = jr.Settings(args.synchronous, 2, calibrate_burn())
    progress(f"burn: {settings.burn_n} loop turns take about 50 ms here")
    document: dict[str, Any] = {
        "benchmark": "jobrunner vs huey",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "settings": {
            "quick": args.quick,
            "repeat": repeat,
            "synchronous": args.synchronous,
            "workers": settings.workers,
            "burn_loop_turns": settings.burn_n,
            "sizes": sizes,
            "huey_tuning": " ".join(hy.TUNED),
        },
        "machine": machine_info(),
    }
    PYCACHE["dir"] = tempfile.mkdtemp(prefix="jrbench-pycache-")
    try:
        warm_pycache()
        results: dict[str, Any] = {}
        if args.suite in ("compare", "all"):
            for name in COMPARISONS:
                if name not in only:
                    continue
                if name == "cpu_heavy":
                    results[name] = compare_cpu(sizes, settings, max(2, repeat // 2), args.keep)
                else:
                    results[name] = compare(name, sizes, settings, repeat, args.keep)
                if name == "idle":
                    results["idle"]["huey_default_tuning"] = compare_idle_default(
                        sizes, settings, args.keep
                    )
            document["results"] = results
        if args.suite in ("scale", "all"):
            with workdir(args.keep) as path:
                document["scale"] = scale.run(path, backlogs, settings, max(2, repeat // 2))
        if args.suite in ("http", "all"):
            document["http"] = http_suite(args.quick)
    finally:
        shutil.rmtree(PYCACHE.pop("dir"), ignore_errors=True)
    document["duration_s"] = time.time() - started
    document["machine"]["loadavg_before"] = list(load_before)
    document["machine"]["loadavg_after"] = list(os.getloadavg())
    text = json.dumps(rounded(document), indent=2)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
    sys.stdout.write(text + "\n")
    return 1 if any_failed(document) else 0


def any_failed(value: Any) -> bool:
    """Whether any run in the document failed (a run that failed is {"error": ...})."""
    if isinstance(value, dict):
        return "error" in value or any(any_failed(v) for v in value.values())
    if isinstance(value, list):
        return any(any_failed(v) for v in value)
    return False


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        progress("interrupted; every process started here has been stopped")
        raise SystemExit(130) from None
