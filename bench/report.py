"""Render docs/benchmarks.md and its charts from a `python -m bench.run` document.

    python -m bench.report RESULTS.json [--out docs/benchmarks.md] [--img docs/img]

It renders what the document holds and says what it lacks (a `--suite compare` run
has no `scale`; a failed run, `{"error": ...}`, is listed). Charts are PNGs drawn with
matplotlib's object API: no pyplot, no screen, no date in the image.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

NOTES = Path(__file__).with_name("notes.md")  # the lead's "how to read this"
COLORS = {"jobrunner": "#1f6fb4", "huey": "#e8762b"}
FIGSIZE, DPI, BAR_WIDTH = (8, 4.5), 120, 0.38
SCALE_TARGET = 0.8  # the largest backlog drains at ≥ 80 % of the smallest's rate

# name -> (what it is, the target: a ratio to reach, "below" huey, or None)
COMPARISONS: dict[str, tuple[str, float | str | None]] = {
    "drain": ("Drain a queued backlog", 3.0),
    "e2e": ("Submit and run, end to end (a commit per job)", 3.0),
    "e2e_bulk": ("Submit and run, end to end (100 jobs per submit)", None),
    "pickup": ("Pickup latency, p50", 3.0),
    "submit_single": ("Submit, one job per transaction", None),
    "submit_bulk": ("Submit in bulk, one transaction", None),
    "cpu_heavy": ("CPU-heavy jobs", None),
    "idle": ("Idle CPU, huey tuned", "below"),
    "cli": ("`jobrunner submit` wall time (no huey CLI)", None),
}
BARS = ["drain", "e2e", "e2e_bulk", "submit_single", "submit_bulk"]
UNITS = {"jobs_per_s": "jobs/s", "cpu_pct": "% of a core"}


def unit(figure: str) -> str:
    return UNITS.get(figure, "ms" if figure.endswith("_ms") else figure)


def num(v: float | None) -> str:
    """A figure with the digits that matter: 4,734 · 245 · 21.4 · 2.15 · 0.027."""
    if v is None:
        return "—"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.2g}" if a else "0"


def mib(b: float | None) -> str:
    return "—" if b is None else f"{b / 2**20:,.1f} MiB"


def ok_runs(side: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [r for r in (side or {}).get("runs", []) if "error" not in r]


def cell(side: dict[str, Any] | None, figure: str) -> str:
    """'median [min–max]', with the run count when it is not the whole story."""
    if not side:
        return "—"
    runs, ok = side.get("runs", []), ok_runs(side)
    median = side.get("median", {}).get(figure)
    text = num(median)
    low, high = side.get("spread", {}).get(figure, (None, None))
    if median is not None and len(ok) > 1 and low is not None:
        text += f" [{num(low)}–{num(high)}]"
    elif median is not None and len(ok) == 1:
        text += " (1 run)"
    if len(ok) < len(runs):
        text += f" ⚠ {len(runs) - len(ok)} of {len(runs)} runs failed"
    return text


def median(side: dict[str, Any] | None, figure: str) -> float | None:
    return (side or {}).get("median", {}).get(figure)


def ratio_of(name: str, res: dict[str, Any]) -> tuple[float | None, str]:
    """jobrunner's advantage (>1: jobrunner better) and a note on how it was taken."""
    if res.get("ratio") is not None:
        return res["ratio"], ""
    figure = res.get("figure", "")
    a, b = median(res.get("jobrunner"), figure), median(res.get("huey"), figure)
    if name == "idle" and a == 0:
        # 0 at the 10 ms clock tick: schedstat (ns) still tells the two apart.
        a = median(res.get("jobrunner"), "cpu_pct_schedstat")
        b = median(res.get("huey"), "cpu_pct_schedstat")
        return (b / a if a and b else None), " (schedstat)"
    if not a or not b:
        return None, ""
    return (a / b if res.get("higher_is_better", True) else b / a), ""


def met(ok: bool | None) -> str:
    return "no data" if ok is None else "**met**" if ok else "**not met**"


def verdict(name: str, ratio: float | None) -> tuple[str, str]:
    """(the target, met / not met) for the comparisons the issue sets a target for."""
    target = COMPARISONS.get(name, ("", None))[1]
    if target is None:
        return "—", "—"
    if target == "below":  # huey's CPU / jobrunner's > 1
        return "below huey's tuned consumer", met(None if ratio is None else ratio > 1)
    text = f"p50 ≤ 1/{target:g} of huey's" if name == "pickup" else f"≥ {target:g}×"
    return text, met(None if ratio is None else ratio >= float(target))


# -- the markdown --------------------------------------------------------------------


def header(doc: dict[str, Any]) -> list[str]:
    m, s = doc.get("machine", {}), doc.get("settings", {})
    sizes = ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v:,}"
        for k, v in s.get("sizes", {}).items()
    )
    load = [
        " / ".join(f"{x:.2f}" for x in m[k]) if k in m else "—"
        for k in ("loadavg_before", "loadavg_after")
    ]
    command = "make bench-quick" if s.get("quick") else "make bench"
    return [
        f"# Benchmarks: {doc.get('benchmark', 'jobrunner vs huey')}",
        "",
        f"Produced by `{command}` on {doc.get('date', '(no date)')}"
        + (f", in {doc['duration_s']:.0f} s." if "duration_s" in doc else "."),
        "",
        f"- **Machine**: {m.get('cpu', '?')}, {m.get('nproc', '?')} CPUs; {m.get('platform', '?')}",
        f"- **Software**: Python {m.get('python', '?')}, SQLite {m.get('sqlite', '?')} "
        f"(apsw {m.get('apsw', '?')}), huey {m.get('huey', 'not installed')}",
        f"- **Settings**: `--repeat {s.get('repeat', '?')}`"
        f"{' (`--quick` sizes)' if s.get('quick') else ''}, `synchronous = "
        f"{s.get('synchronous', '?')}`, {s.get('workers', '?')} workers each, huey consumer "
        f"`-k process {s.get('huey_tuning', '?')}`",
        f"- **Sizes**: {sizes or '—'}",
        f"- **Load average** (1/5/15 min): {load[0]} before, {load[1]} after",
        "",
    ]


def main_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "## jobrunner beside huey",
        "",
        "Medians with [min–max] over the runs. The ratio is how many times better "
        "jobrunner is (> 1: jobrunner better): jobrunner/huey for rates, "
        "huey/jobrunner for latency and CPU.",
        "",
        "| comparison | unit | jobrunner | huey | ratio | target | verdict |",
        "|---|---|--:|--:|--:|---|---|",
    ]
    missing = []
    for name, (label, _) in COMPARISONS.items():
        res = results.get(name)
        if not res:
            missing.append(name)
            continue
        figure = res.get("figure", "")
        ratio, how = ratio_of(name, res)
        target, verdict_text = verdict(name, ratio)
        ratio_text = f"{num(ratio)}×{how}" if ratio is not None else "—"
        lines.append(
            f"| {label} | {unit(figure)} | {cell(res.get('jobrunner'), figure)} | "
            f"{cell(res.get('huey'), figure)} | {ratio_text} | {target} | {verdict_text} |"
        )
    if missing:
        lines += ["", f"Not in this document: {', '.join(missing)}."]
    return lines + [""] + details(results)


def details(results: dict[str, Any]) -> list[str]:
    out = []
    cpu = results.get("cpu_heavy")
    if cpu:
        one = cpu.get("one_worker", {})
        out += [
            "CPU-heavy jobs, jobs/s with one worker and with all of them:",
            "",
            "| runner | 1 worker | all workers | speed-up over one worker |",
            "|---|--:|--:|--:|",
        ]
        for who in ("jobrunner", "huey"):
            speedup = cpu.get(who, {}).get("speedup_over_one_worker")
            out.append(
                f"| {who} | {cell(one.get(who), 'jobs_per_s')} | "
                f"{cell(cpu.get(who), 'jobs_per_s')} | "
                f"{f'{speedup:.2f}×' if speedup is not None else '—'} |"
            )
        out.append("")
    idle = results.get("idle")
    if idle:
        jr_m = idle.get("jobrunner", {}).get("median", {})
        hy_m = idle.get("huey", {}).get("median", {})
        default = median(idle.get("huey_default_tuning"), "cpu_pct")
        out.append(
            f"- Idle: jobrunner {num(jr_m.get('cpu_pct'))} % of a core "
            f"({num(jr_m.get('cpu_pct_schedstat'))} % by schedstat), daemon RSS "
            f"{num(jr_m.get('daemon_rss_mib'))} MiB, all processes PSS "
            f"{num(jr_m.get('total_pss_mib'))} MiB; huey tuned {num(hy_m.get('cpu_pct'))} % "
            f"({num(hy_m.get('cpu_pct_schedstat'))} % by schedstat), consumer RSS "
            f"{num(hy_m.get('consumer_rss_mib'))} MiB; huey with its default polling "
            f"{num(default)} %."
        )
    bulk = results.get("submit_bulk")
    if bulk:
        sizes = [num(median(bulk.get(w), "jobs")) for w in ("jobrunner", "huey")]
        out.append(f"- Bulk submit sizes: jobrunner {sizes[0]} jobs, huey {sizes[1]} jobs.")
    cli = results.get("cli")
    if cli:
        floor = median(cli.get("jobrunner"), "python_pass_median_ms")
        out.append(f"- `jobrunner submit`: the floor, `python -c pass`, is {num(floor)} ms.")
    return out + ([""] if out else [])


def scale_section(sc: dict[str, Any] | None, img: str | None) -> list[str]:
    lines = ["## jobrunner with a backlog", ""]
    if not sc:
        return lines + ["Not in this document (the run had no scale suite).", ""]
    lines += [
        "| backlog | jobs/s | daemon RSS, max | database with the backlog waiting |",
        "|--:|--:|--:|--:|",
    ]
    backlogs = sc.get("backlogs", {})
    for key in sorted(backlogs, key=int):
        side = backlogs[key]
        rss = median(side, "daemon_rss_mib_max")
        lines.append(
            f"| {int(key):,} | {cell(side, 'jobs_per_s')} | "
            f"{num(rss) + ' MiB' if rss is not None else '—'} | "
            f"{mib(median(side, 'db_bytes_waiting'))} |"
        )
    if backlogs:
        kept = sc.get("largest_vs_smallest")
        share, ok = ("—", None) if kept is None else (f"{kept:.0%}", kept >= SCALE_TARGET)
        lines += [
            "",
            f"The largest backlog drains at {share} of the smallest backlog's rate "
            f"(target ≥ {SCALE_TARGET:.0%}): {met(ok)}.",
        ]
    fp = sc.get("footprint")
    if fp and "error" not in fp:
        lines += [
            "",
            f"Footprint, {num(fp.get('jobs'))} jobs drained to the end "
            f"({num(fp.get('drain_jobs_per_s'))} jobs/s): "
            f"{mib(fp.get('bytes_per_million_finished'))} per million finished jobs; "
            f"`jobrunner prune` took {num(fp.get('prune_s'))} s and left a "
            f"{mib(fp.get('after_prune_file_bytes'))} file with "
            f"{mib(fp.get('after_prune_used_bytes'))} in use.",
        ]
    else:
        lines += ["", f"No footprint: {(fp or {}).get('error', 'not in this document')}."]
    return lines + [""] + chart_link(img, "Throughput against backlog")


# The HTTP API's targets (issue 13): figure path -> (label, target, higher is better)
HTTP_TARGETS = [
    (
        ("submit", "http_group_commit", "jobs_per_s"),
        "POST /jobs, 64 connections (jobs/s)",
        5000,
        True,
    ),
    (("submit", "group_vs_loop"), "POST /jobs beside Client.submit in a loop (×)", 2.0, True),
    (
        ("submit", "http_batch_1000", "jobs_per_s"),
        "POST /jobs, batches of 1,000 (jobs/s)",
        100_000,
        True,
    ),
    (
        ("submit", "http_batch_1000_minimal", "jobs_per_s"),
        "the same, with Prefer: return=minimal (jobs/s)",
        100_000,
        True,
    ),
    (("submit", "http_get_job", "requests_per_s"), "GET /jobs/ID (requests/s)", 5000, True),
    (("live", "sse_event_latency", "p50_ms"), "SSE event after its commit, p50 (ms)", 10, False),
    (
        ("live", "ws_event_latency", "p50_ms"),
        "WebSocket event after its commit, p50 (ms)",
        10,
        False,
    ),
    (
        ("live", "long_poll_return", "p50_ms"),
        "Long poll after the final commit, p50 (ms)",
        10,
        False,
    ),
]


def dig(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def http_section(h: dict[str, Any] | None) -> list[str]:
    """`jobrunner serve`: each figure beside its target."""
    lines = ["## The HTTP API", ""]
    if not h:
        return lines + ["Not in this document (the run had no http suite).", ""]
    lines += ["| measure | this run | target | |", "|---|--:|--:|---|"]
    for path, label, target, higher in HTTP_TARGETS:
        value = dig(h, path)
        ok = None if value is None else (value >= target if higher else value <= target)
        sign = "≥" if higher else "≤"
        lines.append(f"| {label} | {num(value)} | {sign} {num(target)} | {met(ok)} |")
    idle = dig(h, ("live", "idle_sse"))
    if isinstance(idle, dict) and "cpu_pct_of_a_core" in idle:
        extra = idle["cpu_pct_of_a_core"] - idle.get("cpu_pct_without_clients", 0.0)
        lines += [
            "",
            f"{num(idle.get('clients'))} idle SSE clients: the server used "
            f"{idle['cpu_pct_of_a_core']:.2f}% of a core ({idle.get('cpu_pct_without_clients', 0):.2f}% "
            f"without them; target: under 2% more): {met(extra < 2.0)}.",
        ]
    for part in ("submit", "live"):
        if isinstance(h.get(part), dict) and "error" in h[part]:
            lines += ["", f"The {part} part failed: {h[part]['error']}"]
    return lines + [""]


def chart_link(path: str | None, alt: str) -> list[str]:
    return [f"![{alt}]({path})", ""] if path else [f"(No data for the chart: {alt}.)", ""]


def failures(doc: dict[str, Any]) -> list[str]:
    """Every run that failed, with where it was and its message."""
    found: list[str] = []

    def scan(where: str, side: Any) -> None:
        for i, run in enumerate(side.get("runs", []) if isinstance(side, dict) else []):
            if "error" in run:
                found.append(f"- {where}, run {i + 1}: {run['error']}")

    for name, res in (doc.get("results") or {}).items():
        for who in ("jobrunner", "huey"):
            scan(f"{name}, {who}", res.get(who))
            scan(f"{name}, {who}, one worker", res.get("one_worker", {}).get(who))
        scan(f"{name}, huey, default tuning", res.get("huey_default_tuning"))
    sc = doc.get("scale") or {}
    for key, side in sc.get("backlogs", {}).items():
        scan(f"scale, backlog {int(key):,}", side)
    if "error" in (sc.get("footprint") or {}):
        found.append(f"- scale, footprint: {sc['footprint']['error']}")
    return ["## Failed runs", "", "Left out of the medians:", "", *found, ""] if found else []


# -- the charts ----------------------------------------------------------------------


def new_axes() -> tuple[Figure, Any]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, which="major", alpha=0.3)
    return fig, ax


def finish(fig: Figure, ax: Any, path: Path, title: str, x: str, y: str, legend: str) -> bool:
    ax.set_title(title)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(loc=legend)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})  # no version, no date
    return True


def chart_scale(sc: dict[str, Any] | None, path: Path) -> bool:
    backlogs = sorted((sc or {}).get("backlogs", {}).items(), key=lambda kv: int(kv[0]))
    points = [
        (int(k), r["jobs_per_s"]) for k, s in backlogs for r in ok_runs(s) if "jobs_per_s" in r
    ]
    medians = [(int(k), m) for k, s in backlogs if (m := median(s, "jobs_per_s")) is not None]
    if not points:
        return False
    fig, ax = new_axes()
    c = COLORS["jobrunner"]
    ax.scatter(*zip(*points, strict=True), color=c, alpha=0.45, label="each run")
    ax.plot(*zip(*medians, strict=True), color=c, marker="o", label="median")
    if medians:
        label = "80 % of the smallest backlog's median"
        ax.axhline(SCALE_TARGET * medians[0][1], color="grey", linestyle="--", label=label)
    ax.set_xscale("log")
    ticks = [int(k) for k, _ in backlogs]
    ax.set_xticks(ticks, [f"{b:,}" for b in ticks])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    title = "jobrunner: drain rate against the backlog waiting"
    x_label = "jobs waiting when the daemon starts (log scale)"
    return finish(fig, ax, path, title, x_label, "jobs/s", "lower left")


def chart_pickup(res: dict[str, Any] | None, path: Path) -> bool:
    pooled = {
        who: sorted(x for r in ok_runs((res or {}).get(who)) for x in r.get("latencies_ms", []))
        for who in ("jobrunner", "huey")
    }
    if not any(pooled.values()):
        return False
    fig, ax = new_axes()
    for who, lat in pooled.items():
        if not (n := len(lat)):
            continue
        label = f"{who}: {n} jobs, pooled p50 {num(statistics.median(lat))} ms"
        ax.step(lat, [(i + 1) / n for i in range(n)], where="post", color=COLORS[who], label=label)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 1, 2, 5, 10, 20, 50 ms...
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(0, 1.02)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    title = "Pickup latency, created → started, all runs pooled"
    y_label = "fraction of jobs picked up within"
    return finish(fig, ax, path, title, "latency, ms (log scale)", y_label, "lower right")


def chart_bars(results: dict[str, Any], path: Path) -> bool:
    sides = {n: results.get(n) or {} for n in BARS}
    names = [n for n in BARS if any(median(sides[n].get(w), "jobs_per_s") for w in COLORS)]
    if not names:
        return False
    fig, ax = new_axes()
    above = {"xytext": (0, 3), "textcoords": "offset points", "ha": "center", "fontsize": 8}
    for i, who in enumerate(("jobrunner", "huey")):
        bars: list[tuple[float, float, float, float]] = []  # x, median, min, max
        for x, name in enumerate(names):
            side = results[name].get(who) or {}
            if (value := median(side, "jobs_per_s")) is not None:
                low, high = side.get("spread", {}).get("jobs_per_s", (value, value))
                bars.append((x + (i - 0.5) * BAR_WIDTH, value, low, high))
        if not bars:
            continue
        xs, ys, lows, highs = (list(column) for column in zip(*bars, strict=True))
        ax.bar(xs, ys, BAR_WIDTH, color=COLORS[who], label=who)
        yerr = [
            [y - lo for y, lo in zip(ys, lows, strict=True)],
            [h - y for y, h in zip(ys, highs, strict=True)],
        ]
        ax.errorbar(xs, ys, yerr=yerr, fmt="none", ecolor="black", capsize=3, lw=1)
        for x, y, h in zip(xs, ys, highs, strict=True):  # the value above the error bar
            ax.annotate(num(y), (x, h), **above)
    labels = []
    for name in names:
        ratio = ratio_of(name, results[name])[0]
        label = COMPARISONS[name][0].replace(", ", ",\n")
        labels.append(label + (f"\njobrunner {num(ratio)}×" if ratio else ""))
    ax.set_xticks(range(len(names)), labels)
    ax.set_yscale("log")
    ax.margins(y=0.15)
    title = "jobrunner beside huey: medians, min–max bars"
    return finish(fig, ax, path, title, "", "jobs/s (log scale)", "upper left")


# -- putting it together -------------------------------------------------------------


def render(doc: dict[str, Any], out: Path, img: Path, notes: Path | None = NOTES) -> str:
    """Write the markdown to out and the charts under img; returns the markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    img.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(img, out.parent)

    def draw(ok: bool, name: str) -> str | None:
        if not ok:  # no chart this time: an old one must not pass for this run's
            (img / name).unlink(missing_ok=True)
        return f"{rel}/{name}".replace(os.sep, "/") if ok else None

    results = doc.get("results") or {}
    bars = draw(chart_bars(results, img / "compare.png"), "compare.png")
    pickup = draw(chart_pickup(results.get("pickup"), img / "pickup.png"), "pickup.png")
    scale = draw(chart_scale(doc.get("scale"), img / "scale.png"), "scale.png")
    lines = header(doc)
    if results:
        lines += main_table(results)
        lines += chart_link(bars, "jobrunner beside huey: medians")
        lines += chart_link(pickup, "Pickup latency distribution")
    else:
        lines += ["## jobrunner beside huey", "", "Not in this document (no compare suite).", ""]
    lines += scale_section(doc.get("scale"), scale)
    lines += http_section(doc.get("http"))
    lines += failures(doc)
    if notes is not None and notes.exists():
        lines += [notes.read_text().rstrip("\n"), ""]
    text = "\n".join(lines)
    text += kept_section(out)
    out.write_text(text)
    return text


KEPT_SECTIONS = ("postgres", "flow-sqlite", "flow-postgresql")  # bench.pg, bench.flow


def kept_section(out: Path) -> str:
    """The sections `python -m bench.pg --doc` and `bench.flow --doc` wrote into `out`:
    kept when the rest is rendered again (they come from other runs and files)."""
    old = out.read_text() if out.exists() else ""
    kept = ""
    for name in KEPT_SECTIONS:
        start, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if start in old and end in old:
            kept += "\n" + old[old.index(start) : old.index(end) + len(end)] + "\n"
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="the JSON document bench.run wrote")
    parser.add_argument("--out", default="docs/benchmarks.md", help="the markdown to write")
    parser.add_argument("--img", default="docs/img", help="the directory for the charts")
    args = parser.parse_args(argv)
    with open(args.results) as f:
        doc = json.load(f)
    render(doc, Path(args.out), Path(args.img))
    print(f"wrote {args.out} and its charts in {args.img}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
