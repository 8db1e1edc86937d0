"""bench/report.py renders what a bench.run document holds, and says what it lacks."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from bench.report import render


def side(*runs: dict[str, Any]) -> dict[str, Any]:
    """runs, median and spread the way bench.run summarizes them (failed runs left out)."""
    ok = [r for r in runs if "error" not in r]
    keys = [k for k, v in ok[0].items() if isinstance(v, int | float)] if ok else []
    return {
        "runs": list(runs),
        "median": {k: statistics.median(r[k] for r in ok) for k in keys},
        "spread": {k: [min(r[k] for r in ok), max(r[k] for r in ok)] for k in keys},
    }


def compare(figure: str, higher: bool, jr: list[Any], hy: list[Any] | None) -> dict[str, Any]:
    def runs(values: list[Any]) -> list[dict[str, Any]]:
        return [v if isinstance(v, dict) else {figure: v, "jobs": 100} for v in values]

    out: dict[str, Any] = {
        "figure": figure,
        "higher_is_better": higher,
        "jobrunner": side(*runs(jr)),
    }
    if hy is not None:
        out["huey"] = side(*runs(hy))
        a, b = out["jobrunner"]["median"][figure], out["huey"]["median"][figure]
        out["ratio"] = (a / b if higher else b / a) if a and b else None
    return out


def document(with_scale: bool = True) -> dict[str, Any]:
    pickup_jr = [{"p50_ms": 1.0, "latencies_ms": [0.8, 1.0, 1.3]}] * 2
    pickup_hy = [{"p50_ms": 4.0, "latencies_ms": [3.0, 4.0, 9.0]}] * 2
    idle_jr = {"cpu_pct": 0.0, "cpu_pct_schedstat": 0.02, "daemon_rss_mib": 22.0}
    idle_hy = {"cpu_pct": 2.0, "cpu_pct_schedstat": 2.0, "consumer_rss_mib": 21.0}
    cpu = compare("jobs_per_s", True, [38.0, 40.0], [30.0, 36.0])
    cpu["one_worker"] = compare("jobs_per_s", True, [20.0], [22.0])
    cpu["jobrunner"]["speedup_over_one_worker"] = 39.0 / 20.0
    cpu["huey"]["speedup_over_one_worker"] = 33.0 / 22.0
    doc: dict[str, Any] = {
        "benchmark": "jobrunner vs huey",
        "date": "2026-11-29T08:00:00+0000",
        "settings": {"quick": False, "repeat": 3, "synchronous": "FULL", "workers": 2,
                     "sizes": {"drain": 20000, "idle": 10.0}, "huey_tuning": "-d 0.001 -m 0.01"},
        "machine": {"cpu": "Test CPU", "nproc": 2, "python": "3.11.7", "sqlite": "3.54.1",
                    "huey": "3.5.4", "loadavg_before": [0.1, 0.2, 0.3],
                    "loadavg_after": [1.0, 0.5, 0.4]},
        "results": {
            "drain": compare("jobs_per_s", True, [10000, 12000, {"error": "daemon died: boom"}],
                             [3000, 4000, 3500]),
            "e2e": compare("jobs_per_s", True, [2000], [1000]),
            "pickup": compare("p50_ms", False, pickup_jr, pickup_hy),
            "submit_single": compare("jobs_per_s", True, [5000], [4000]),
            "submit_bulk": compare("jobs_per_s", True, [100000], [2500]),
            "cpu_heavy": cpu,
            "idle": compare("cpu_pct", False, [idle_jr], [idle_hy]),
            "cli": compare("median_ms", False, [{"median_ms": 47.5}], None),
        },
    }  # fmt: skip
    doc["results"]["idle"]["huey_default_tuning"] = side({"cpu_pct": 0.2})
    if with_scale:
        backlogs = {1000: [10000, 12000], 100000: [9500, 10500], 1000000: [9000, 9000]}
        doc["scale"] = {
            "backlogs": {
                str(b): side(*({"jobs_per_s": v, "daemon_rss_mib_max": 25.0,
                                "db_bytes_waiting": 240 * b} for v in rates))
                for b, rates in backlogs.items()
            },
            "largest_vs_smallest": 0.818,
            "footprint": {"jobs": 1000000, "drain_jobs_per_s": 9000.0, "prune_s": 3.5,
                          "bytes_per_million_finished": 240 * 2**20,
                          "after_prune_file_bytes": 250 * 2**20,
                          "after_prune_used_bytes": 2**20},
        }  # fmt: skip
    return doc


def row(md: str, label: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(f"| {label}"))


def test_renders_medians_ratios_verdicts_and_charts(tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("## How to read this\n\nThe fsync bounds single submit.\n")
    out, img = tmp_path / "docs" / "benchmarks.md", tmp_path / "docs" / "img"
    md = render(document(), out, img, notes)
    assert out.read_text() == md
    assert "`make bench`" in md and "Test CPU" in md and "0.10 / 0.20 / 0.30 before" in md
    assert "-d 0.001 -m 0.01" in md and "SQLite 3.54.1" in md and "huey 3.5.4" in md

    drain = row(md, "Drain")  # the failed run is left out of the median and counted
    assert "11,000 [10,000–12,000] ⚠ 1 of 3 runs failed" in drain
    assert "3,500 [3,000–4,000]" in drain and "3.14×" in drain and "**met**" in drain
    e2e = row(md, "Submit and run")
    assert "2.00×" in e2e and "**not met**" in e2e
    pickup = row(md, "Pickup")
    assert "| 1.00 [1.00–1.00] |" in pickup and "4.00×" in pickup and "**met**" in pickup
    idle = row(md, "Idle")  # 0 % at tick resolution: the ratio comes from schedstat
    assert "100× (schedstat)" in idle and "**met**" in idle
    assert "| jobrunner | 20.0 (1 run) | 39.0 [38.0–40.0] | 1.95× |" in md
    assert "| huey | 22.0 (1 run) | 33.0 [30.0–36.0] | 1.50× |" in md
    assert "47.5 (1 run) | — | — |" in row(md, "`jobrunner submit`")
    assert "- drain, jobrunner, run 3: daemon died: boom" in md

    assert "| 1,000,000 | 9,000 [9,000–9,000] | 25.0 MiB | 228.9 MiB |" in md
    assert "82% of the smallest backlog's rate (target ≥ 80%): **met**" in md
    assert "240.0 MiB per million finished jobs" in md and "took 3.50 s" in md
    assert "250.0 MiB file with 1.0 MiB in use" in md
    assert md.rstrip().endswith("The fsync bounds single submit.")

    for name in ("compare.png", "pickup.png", "scale.png"):
        assert (img / name).read_bytes().startswith(b"\x89PNG")
        assert f"](img/{name})" in md


def test_a_document_without_scale_or_pickup_says_so(tmp_path: Path) -> None:
    doc = document(with_scale=False)
    del doc["results"]["pickup"]
    doc["results"]["e2e"]["ratio"] = 3.2
    img = tmp_path / "img"
    img.mkdir()
    (img / "scale.png").write_bytes(b"stale")  # from an earlier render
    md = render(doc, tmp_path / "benchmarks.md", img, notes=None)
    assert re.search(r"Not in this document: [^\n]*\bpickup\b", md)
    assert "Not in this document (the run had no scale suite)." in md
    assert "**met**" in row(md, "Submit and run")
    assert not (img / "scale.png").exists() and not (img / "pickup.png").exists()
    assert (img / "compare.png").stat().st_size > 0


def test_the_http_section_sets_each_figure_beside_its_target(tmp_path: Path) -> None:
    doc = document(with_scale=False)
    doc["http"] = {
        "submit": {
            "http_group_commit": {"jobs_per_s": 5200.0},
            "group_vs_loop": 1.6,
            "http_batch_1000": {"jobs_per_s": 19000.0},
            "http_get_job": {"requests_per_s": 8700.0},
        },
        "live": {"error": "BenchError: the server did not say where it listens"},
    }
    md = render(doc, tmp_path / "benchmarks.md", tmp_path / "img", notes=None)
    assert "**met**" in row(md, "POST /jobs, 64 connections")
    assert "**met**" not in row(md, "POST /jobs beside")
    assert "**met**" not in row(md, "POST /jobs, batches of 1,000")
    assert "**met**" in row(md, "GET /jobs/ID")
    assert "The live part failed: BenchError" in md
    assert "Not in this document (the run had no http suite)." in render(
        document(with_scale=False), tmp_path / "b2.md", tmp_path / "img2", notes=None
    )
