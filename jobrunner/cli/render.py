"""Human output with rich; imported only by commands that print tables."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobrunner import clock
from jobrunner.durations import format_duration
from jobrunner.models import Attempt, DaemonInfo, Job, iso

console = Console(highlight=False, soft_wrap=False)
if not console.is_terminal:
    console.width = 160  # piped or captured: room for whole lines instead of 80 columns

STATE_STYLE = {
    "scheduled": "cyan",
    "queued": "blue",
    "running": "yellow",
    "retrying": "magenta",
    "succeeded": "green",
    "dead": "bold red",
    "cancelled": "dim",
}
STATE_ORDER = list(STATE_STYLE)


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


def ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    delta = clock.now() - ts
    if delta < 0:
        return "in " + format_duration(-delta)
    return format_duration(delta) + " ago"


def short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def overview(
    counts: dict[tuple[str, str], int],
    daemons: list[DaemonInfo],
    failures: list[Job],
    dead: dict[str, str] | None = None,
    awaiting_rescue: list[Job] | None = None,
) -> None:
    """`dead`: why each daemon presumed dead is (ops/daemons.py); `awaiting_rescue`: the
    running jobs such daemons held."""
    dead = dead or {}
    queues = sorted({q for _, q in counts})
    table = Table(title="Jobs", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("queue")
    for state in STATE_ORDER:
        table.add_column(
            state, justify="right", style=STATE_STYLE[state], no_wrap=True, min_width=len(state)
        )
    for queue in queues:
        table.add_row(queue, *[str(counts.get((s, queue), 0) or "") for s in STATE_ORDER])
    if len(queues) != 1:
        table.add_row(
            Text("all", style="bold"),
            *[
                str(sum(n for (s, _), n in counts.items() if s == state) or "")
                for state in STATE_ORDER
            ],
        )
    console.print(table)
    if daemons:
        d = Table(title="Daemons", box=box.SIMPLE_HEAD, title_justify="left")
        for col in ("id", "workers", "queues", "started", "heartbeat", "alive"):
            d.add_column(col)
        for info in daemons:
            why = dead.get(info.id)
            alive = Text("yes", style="green") if why is None else Text(why, style="red")
            d.add_row(
                info.id,
                str(info.workers),
                ",".join(info.queues or ["*"]),
                ago(info.started_at),
                ago(info.heartbeat_at),
                alive,
            )
        console.print(d)
    else:
        console.print(Text("No daemon is running.", style="yellow"))
    if awaiting_rescue:
        ids = ", ".join(str(j.id) for j in awaiting_rescue[:20])
        more = ", ..." if len(awaiting_rescue) > 20 else ""
        console.print(
            Text(
                f"{len(awaiting_rescue)} running job(s) awaiting rescue (their daemon is "
                f"dead; a live daemon sends them back to wait): {ids}{more}",
                style="yellow",
            )
        )
    if failures:
        f = Table(title="Latest failures", box=box.SIMPLE_HEAD, title_justify="left")
        for col in ("id", "state", "task", "attempts", "when", "error"):
            f.add_column(col)
        for job in failures:
            f.add_row(
                str(job.id),
                state_text(job.state),
                short(job.label, 40),
                f"{job.attempts}/{job.max_attempts}",
                ago(job.finished_at or job.run_at),
                short(job.error),
            )
        console.print(f)


def warnings(messages: list[str]) -> None:
    for message in messages:
        console.print(Text(f"warning: {message}", style="yellow"))


def job_detail(job: Job, attempts: list[Attempt], tracebacks: bool = False) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", str(job.id)),
        ("state", state_text(job.state)),
        ("task" if job.task else "command", job.label),
        ("args", _json(job.args)),
        ("kwargs", _json(job.kwargs)),
        ("queue", job.queue),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("created", f"{iso(job.created_at)} ({ago(job.created_at)})"),
        ("run at", f"{iso(job.run_at)} ({ago(job.run_at)})"),
    ]
    if job.started_at:
        rows.append(("started", f"{iso(job.started_at)} ({ago(job.started_at)})"))
    if job.finished_at:
        rows.append(("finished", f"{iso(job.finished_at)} ({ago(job.finished_at)})"))
    if job.timeout:
        rows.append(("timeout", format_duration(job.timeout)))
    if job.key:
        rows.append(("key", job.key))
    if job.owner:
        rows.append(("daemon", job.owner))
    if job.result is not None:
        rows.append(("result", _json(job.result)))
    if job.progress is not None and job.state == "running":
        rows.append(("progress", progress_text(job)))
    if job.error:
        rows.append(("error", Text(job.error, style="red")))
    if job.damage:
        rows.append(("damage", Text(job.damage, style="red")))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for name, value in rows:
        grid.add_row(name, value)
    console.print(grid)
    if attempts:
        table = Table(title="Attempts", box=box.SIMPLE_HEAD, title_justify="left")
        for col in ("#", "outcome", "started", "took", "cpu", "peak rss", "error"):
            table.add_column(col)
        for a in attempts:
            took = format_duration(a.finished_at - a.started_at) if a.started_at else "-"
            style = "green" if a.outcome == "succeeded" else "red"
            table.add_row(
                str(a.attempt),
                Text(a.outcome, style=style),
                iso(a.started_at) or "-",
                took,
                "-" if a.cpu_seconds is None else format_duration(a.cpu_seconds),
                "-" if a.max_rss_kb is None else f"{a.max_rss_kb / 1024:.1f} MiB",
                short(a.error, 80),
            )
        console.print(table)
    if tracebacks:
        for a in attempts:
            if a.traceback:
                console.print(Text(f"attempt {a.attempt} traceback:", style="bold"))
                console.print(Text(a.traceback.rstrip()), soft_wrap=True)


def progress_text(job: Job) -> Text:
    """`[#####-----]  40%  resizing` for a running job's last report."""
    fraction = job.progress or 0.0
    filled = int(round(fraction * 10))
    text = Text("[" + "#" * filled + "-" * (10 - filled) + f"] {fraction * 100:3.0f}%")
    if job.progress_message:
        text.append(f"  {short(job.progress_message, 40)}", style="dim")
    return text


def job_table(jobs: list[Job], title: str | None = None) -> None:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("id", "state", "task", "queue", "prio", "attempts", "created", "progress / error"):
        table.add_column(col)
    for job in jobs:
        running = job.state == "running" and job.progress is not None
        table.add_row(
            str(job.id),
            state_text(job.state),
            short(job.label, 40),
            job.queue,
            str(job.priority),
            f"{job.attempts}/{job.max_attempts}",
            ago(job.created_at),
            progress_text(job) if running else short(job.error, 50),
        )
    console.print(table)


def _json(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:199] + "…"


def schedules(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("No [[schedules]] in the config.", markup=False)  # not a rich tag
        return
    table = Table(title="Schedules", box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("name", "when", "timezone", "next fires (local / UTC)", "last fire", "last job"):
        table.add_column(col)
    for row in rows:
        when = row["expression"] + ("  [paused]" if row["paused"] else "")
        upcoming = "\n".join(f"{n['local']}  {n['utc']}" for n in row["next"])
        job = row["last_job"]
        last_job = (
            "-"
            if job is None
            else Text.assemble(
                f"{job['id']} ", state_text(job["state"]), " (manual)" if job["manual"] else ""
            )
        )
        table.add_row(
            row["name"],
            Text(when, style="yellow" if row["paused"] else ""),
            row["timezone"],
            upcoming,
            row["last_fire"] or "-",
            last_job,
        )
    console.print(table)


def config_summary(path: str | None, parsed: dict[str, Any]) -> None:
    import json

    console.print(f"config: {path or '(none: defaults)'}  ok", style="green")
    console.print(json.dumps(parsed, indent=2), soft_wrap=True)


@contextlib.contextmanager
def progress_display(job_id: int) -> Iterator[Callable[[Job], None]]:
    """A live progress bar for `wait --progress` (on stderr, so stdout stays the result):
    yields the function to call with the job each time it changes."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True, highlight=False)
    columns = (
        TextColumn("job {task.fields[job]} {task.fields[state]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[message]}"),
    )
    with Progress(*columns, console=err, transient=not err.is_terminal) as bar:
        task = bar.add_task("", total=1.0, job=job_id, state="", message="")

        def show(job: Job) -> None:
            bar.update(
                task,
                completed=job.progress or 0.0,
                state=str(job.state),
                message=short(job.progress_message, 40),
            )

        yield show
