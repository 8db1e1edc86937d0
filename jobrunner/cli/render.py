"""Human output with rich; imported only by commands that print tables."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, cast

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobrunner import clock
from jobrunner.durations import format_duration
from jobrunner.models import Attempt, DaemonInfo, Job


class _Unpadded:
    """stdout when it is not a terminal: each line without the spaces rich pads it with
    (a table's last column), so piped output is the text alone."""

    def __init__(self) -> None:
        self.pending = ""

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        if lines:
            sys.stdout.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self.pending:
            sys.stdout.write(self.pending)
            self.pending = ""
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return sys.stdout.fileno()


def _piped() -> bool:
    try:
        return not os.isatty(sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):
        return True


PIPED_WIDTH = 100_000  # piped or captured: whole lines, never cut to a terminal's width

if _piped():
    unpadded = cast("IO[str]", _Unpadded())  # rich needs write, flush, isatty, fileno
    console = Console(file=unpadded, highlight=False, soft_wrap=False, width=PIPED_WIDTH)
else:
    console = Console(highlight=False, soft_wrap=False)

STATE_STYLE = {
    "blocked": "dim cyan",
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


def short(text: str | None, width: int | None = None) -> str:
    """The first line of `text`; cut to `width` only on a terminal (piped: whole)."""
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if width is None or not console.is_terminal or len(line) <= width:
        return line
    return line[: width - 1] + "…"


# -- times: local (as TZ says) unless --utc; JSON stays in UTC --------------------------

_show_utc = [False]


def use_utc(utc: bool) -> None:
    _show_utc[0] = utc


def _datetime(ts: float) -> dt.datetime:
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment if _show_utc[0] else moment.astimezone()  # local: follows TZ


def when(ts: float | None) -> str:
    """`2026-12-02 15:03:07+01:00` (local), `2026-12-02 14:03:07Z` (--utc)."""
    if ts is None:
        return "-"
    text = _datetime(ts).isoformat(sep=" ", timespec="seconds")
    return text.replace("+00:00", "Z") if _show_utc[0] else text


def when_short(ts: float | None, now: float) -> str:
    """The time alone within the day around `now`, else the date and minute."""
    if ts is None:
        return "-"
    moment = _datetime(ts)
    if abs(ts - now) < 43_200 and moment.date() == _datetime(now).date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _table(title: str | None = None) -> Table:
    """A compact table: two spaces between columns, none at the edges, no blank lines."""
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        padding=(0, 1, 0, 0),  # with the box's divider: two spaces between columns
        pad_edge=False,
        show_edge=False,
        title_style="bold",
    )


def fitted(
    title: str | None,
    headers: list[str],
    rows: list[list[Any]],
    flex: dict[str, int],
    width: int | None = None,
    right: tuple[str, ...] = (),
) -> Table:
    """A table laid out for `width` (the console's): every column as wide as its widest
    cell, except the `flex` ones (header -> share), which share what is left and are cut
    with … . Piped, the console is wide enough for every cell: nothing is cut."""
    width = console.width if width is None else width
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(headers)
    natural = [
        max([cell_len(h)] + [cell_len(c.plain if isinstance(c, Text) else str(c)) for c in col])
        for h, col in zip(headers, columns, strict=True)
    ]
    widths = list(natural)
    flexible = [i for i, h in enumerate(headers) if h in flex]
    left = (
        width - 2 * (len(headers) - 1) - sum(w for i, w in enumerate(natural) if i not in flexible)
    )
    # the narrowest first: what one leaves of its share goes to the wider ones
    shares = sum(flex[headers[i]] for i in flexible)
    for i in sorted(flexible, key=lambda i: natural[i]):
        share = flex[headers[i]]
        widths[i] = max(4, min(natural[i], left * share // max(shares, 1)))
        left -= widths[i]
        shares -= share
    table = _table(title)
    for header, w in zip(headers, widths, strict=True):
        table.add_column(
            header,
            width=w,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if header in right else "left",
        )
    for row in rows:
        table.add_row(*row)
    return table


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
    rows: list[list[Any]] = [
        [queue, *[str(counts.get((s, queue), 0) or "") for s in STATE_ORDER]] for queue in queues
    ]
    if len(queues) != 1:
        totals = [sum(n for (s, _), n in counts.items() if s == st) for st in STATE_ORDER]
        rows.append([Text("all", style="bold"), *[str(n or "") for n in totals]])
    table = fitted("Jobs", ["queue", *STATE_ORDER], rows, {"queue": 1}, right=tuple(STATE_ORDER))
    for column in table.columns[1:]:
        column.style = STATE_STYLE[str(column.header)]
    console.print(table)
    console.print()
    if daemons:
        rows = [
            [
                info.id,
                str(info.workers),
                ",".join(info.queues or ["*"]),
                ago(info.started_at),
                ago(info.heartbeat_at),
                Text("yes", style="green")
                if info.id not in dead
                else Text(dead[info.id], style="red"),
            ]
            for info in daemons
        ]
        headers = ["id", "workers", "queues", "started", "heartbeat", "alive"]
        console.print(fitted("Daemons", headers, rows, {"id": 2, "queues": 1}))
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
        console.print()
        rows = [
            [
                str(job.id),
                state_text(job.state),
                short(job.label),
                f"{job.attempts}/{job.max_attempts}",
                ago(job.finished_at or job.run_at),
                short(job.error),
            ]
            for job in failures
        ]
        headers = ["id", "state", "task", "tries", "when", "error"]
        console.print(fitted("Latest failures", headers, rows, {"task": 1, "error": 2}))


def warnings(messages: list[str]) -> None:
    for message in messages:
        console.print(Text(f"warning: {message}", style="yellow"))


def _dependency(dep: dict[str, Any]) -> str:
    need = "must succeed" if dep["needs"] == "succeeded" else "must end"
    return f"{dep['id']} {dep['state'] or 'deleted'} ({need})"


def _at(ts: float) -> str:
    return f"{when(ts)} ({ago(ts)})"


def job_detail(
    job: Job,
    attempts: list[Attempt],
    tracebacks: bool = False,
    after: Sequence[dict[str, Any]] = (),
) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", str(job.id)),
        ("state", state_text(job.state)),
        ("task" if job.task else "command", job.label),
        ("args", _json(job.args)),
        ("kwargs", _json(job.kwargs)),
        ("queue", job.queue),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
    ]
    if job.schedule:
        fire = "a manual run" if job.options.get("manual") else f"the fire of {_at_fire(job)}"
        rows.append(("schedule", f"{job.schedule} ({fire})"))
    if after:  # the jobs it runs after: `3 succeeded, 4 running (must succeed)`
        rows.append(("after", Text(", ".join(_dependency(d) for d in after))))
    rows += [("created", _at(job.created_at)), ("run at", _at(job.run_at))]
    if job.started_at:
        rows.append(("started", _at(job.started_at)))
    if job.finished_at:
        rows.append(("finished", _at(job.finished_at)))
        if job.started_at:
            rows.append(("took", format_duration(max(0.0, job.finished_at - job.started_at))))
    if job.timeout:
        rows.append(("timeout", format_duration(job.timeout)))
    if job.key:
        rows.append(("key", job.key))
    if job.options.get("concurrency_key"):
        rows.append(("concurrency key", str(job.options["concurrency_key"])))
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
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in rows:
        grid.add_row(name, value)
    console.print(grid)
    if attempts:
        table_rows = []
        for a in attempts:
            took = format_duration(a.finished_at - a.started_at) if a.started_at else "-"
            style = "green" if a.outcome == "succeeded" else "red"
            table_rows.append(
                [
                    str(a.attempt),
                    Text(a.outcome, style=style),
                    when(a.started_at),
                    took,
                    "-" if a.cpu_seconds is None else format_duration(a.cpu_seconds),
                    "-" if a.max_rss_kb is None else f"{a.max_rss_kb / 1024:.1f} MiB",
                    short(a.error),
                ]
            )
        headers = ["#", "outcome", "started", "took", "cpu", "peak rss", "error"]
        console.print()
        console.print(fitted("Attempts", headers, table_rows, {"error": 1}))
    if tracebacks:
        for a in attempts:
            if a.traceback:
                console.print(Text(f"attempt {a.attempt} traceback:", style="bold"))
                console.print(Text(a.traceback.rstrip()), soft_wrap=True)


def _at_fire(job: Job) -> str:
    return when(job.scheduled_for) if job.scheduled_for is not None else "-"


def progress_text(job: Job) -> Text:
    """`[#####-----]  40%  resizing` for a running job's last report."""
    fraction = job.progress or 0.0
    filled = int(round(fraction * 10))
    text = Text("[" + "#" * filled + "-" * (10 - filled) + f"] {fraction * 100:3.0f}%")
    if job.progress_message:
        text.append(f"  {short(job.progress_message, 40)}", style="dim")
    return text


def job_when(job: Job, now: float) -> tuple[str, str]:
    """The list's `when` and `took`: a waiting job's run_at (scheduled, retrying) or
    when it was submitted, a running job's start and how long it has run, an ended job's
    finish and how long its last attempt took."""
    if job.state in ("scheduled", "retrying"):
        return ago(job.run_at), ""
    if job.state == "running":
        start = job.started_at or job.run_at
        return ago(start), format_duration(max(0.0, now - start))
    if job.finished_at is not None:
        took = "" if job.started_at is None else format_duration(job.finished_at - job.started_at)
        return ago(job.finished_at), took
    return ago(job.created_at), ""


def job_table(
    jobs: list[Job], title: str | None = None, waits_for: dict[int, list[int]] | None = None
) -> None:
    """`waits_for`: a blocked job's unended dependencies, shown where others show their
    progress or error."""
    now = clock.now()
    waits_for = waits_for or {}
    prio = any(job.priority for job in jobs)  # a column only when some job has one
    rows = []
    for job in jobs:
        running = job.state == "running" and job.progress is not None
        at, took = job_when(job, now)
        rows.append(
            [
                str(job.id),
                state_text(job.state),
                short(job.label),
                job.queue,
                *([str(job.priority)] if prio else []),
                f"{job.attempts}/{job.max_attempts}",
                at,
                took,
                progress_text(job) if running else _note(job, waits_for.get(job.id)),
            ]
        )
    headers = ["id", "state", "task", "queue", *(["prio"] if prio else [])]
    headers += ["tries", "when", "took", "progress / error"]
    flex = {"task": 3, "queue": 2, "progress / error": 4}
    console.print(fitted(title, headers, rows, flex, right=("id", "prio", "tries", "took")))


def _note(job: Job, waiting: list[int] | None) -> Text:
    if waiting:  # a fan-in can wait for hundreds: the first few and how many more
        ids = ", ".join(str(i) for i in waiting[:5])
        more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
        return Text(f"waits for {ids}{more}", style="cyan")
    return Text(short(job.error), style="red")


def _json(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= 200 or not console.is_terminal:  # piped: whole (`--json` for data)
        return text
    return text[:199] + "…"


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
