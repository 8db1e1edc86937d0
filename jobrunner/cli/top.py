"""`jobrunner top`: queues, throughput, running jobs, failures and the next schedules,
redrawn in place about once a second.

`gather` reads one snapshot (a handful of short, index-served reads, each its own read
transaction, so the view never holds a WAL checkpoint back); `frame` turns it into
rich renderables; `run` loops, reading single keys from the terminal.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from typing import Any

from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from jobrunner import clock
from jobrunner.cli.render import (
    STATE_ORDER,
    STATE_STYLE,
    ago,
    console,
    fitted,
    plural,
    progress_text,
    short,
    state_text,
    when_short,
)
from jobrunner.durations import format_duration
from jobrunner.models import Job
from jobrunner.record import Record, field

THROUGHPUT_WINDOW = 60.0  # "finished in the last minute"
RUNNING_ROWS = 10
FAILURE_ROWS = 5
SCHEDULE_ROWS = 5
QUIT_KEYS = b"qQ"
REGATHER = 5.0  # seconds a frame's figures may be reused while the feed does not move


class Snapshot(Record):
    now: float
    counts: dict[tuple[str, str], int]
    daemons_alive: int
    workers: int
    ended: dict[str, int]  # by final state, in the last THROUGHPUT_WINDOW
    running: list[Job]
    failures: list[tuple[Job, str | None]]  # with the last attempt's outcome
    schedules: list[tuple[str, str, float | None, bool]]  # name, expression, next, paused
    wal_bytes: int | None = 0
    warnings: list[str] = field(default_factory=list)
    schedules_total: int = 0


class NextFires:
    """Each schedule's next fire, recomputed only once it has passed."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.cache: dict[str, float | None] = {}

    def get(self, name: str, now: float) -> float | None:
        # recompute once the cached fire has passed; None (never fires again) stays
        stale = name not in self.cache or (self.cache[name] or now + 1) <= now
        if stale:
            from jobrunner.daemon.scheduler import next_fires

            upcoming = next_fires(self.config.schedules[name], now, 1)
            self.cache[name] = upcoming[0] if upcoming else None
        return self.cache[name]


def gather(store: Any, config: Any, fires: NextFires, now: float) -> Snapshot:
    from jobrunner.cli.jobs import database_warnings, wal_size
    from jobrunner.ops.daemons import alive

    daemons = alive(store.daemon_list(), now)  # a killed daemon on this host: at once
    failures = []
    for job in store.job_recent_failures(FAILURE_ROWS):
        attempts = store.attempt_list(job.id)
        failures.append((job, str(attempts[-1].outcome) if attempts else None))
    paused = {s.name for s in store.schedule_list() if s.paused} if config.schedules else set()
    schedules = [
        (sc.name, sc.expression, fires.get(sc.name, now), sc.name in paused)
        for sc in config.schedules.values()
    ]
    # paused last, then by the next fire
    schedules.sort(key=lambda s: (s[3], s[2] is None, s[2] or 0.0, s[0]))
    wal_bytes = wal_size(store)
    return Snapshot(
        now=now,
        counts=store.job_counts(),
        daemons_alive=len(daemons),
        workers=sum(d.workers for d in daemons),
        ended=store.job_count_ended_since(now - THROUGHPUT_WINDOW),
        running=store.job_running(RUNNING_ROWS),
        failures=failures,
        schedules=schedules[:SCHEDULE_ROWS],
        schedules_total=len(schedules),
        wal_bytes=wal_bytes,
        warnings=database_warnings(store.path, wal_bytes),
    )


class Section(Record):
    """One part of the view: a title, a table's header and rows (or a line of text)."""

    title: str
    headers: list[str]
    rows: list[list[Any]]
    flex: dict[str, int]
    total: int  # rows there are (more than `rows` when the query was capped)
    empty: str = "none"
    right: tuple[str, ...] = ()
    summary: int = 0  # leading rows that sum up the others (the queues' "all"): not counted


def _queues(snap: Snapshot) -> Section:
    queues = sorted({q for _, q in snap.counts})
    rows: list[list[Any]] = [
        [q, *[str(snap.counts.get((s, q), 0) or "") for s in STATE_ORDER]] for q in queues
    ]
    if len(queues) > 1:
        totals = [sum(n for (s, _), n in snap.counts.items() if s == st) for st in STATE_ORDER]
        rows.insert(0, [Text("all", style="bold"), *[str(n or "") for n in totals]])
    headers = ["queue", *STATE_ORDER]
    right = tuple(STATE_ORDER)
    summary = len(rows) - len(queues)
    return Section("Queues", headers, rows, {"queue": 1}, len(rows), "no jobs", right, summary)


def _throughput(snap: Snapshot) -> Text:
    total = sum(snap.ended.values())
    text = Text.assemble(("Throughput", "bold"), f"  {total} finished in the last minute")
    parts = [(s, snap.ended[s]) for s in STATE_ORDER if snap.ended.get(s)]
    if parts:
        text.append(": ")
        for i, (state, n) in enumerate(parts):
            text.append(", " if i else "")
            text.append(f"{n} {state}", style=STATE_STYLE[state])
    return text


def _running(snap: Snapshot) -> Section:
    rows = []
    for job in snap.running:
        elapsed = snap.now - job.started_at if job.started_at else 0.0
        rows.append(
            [
                str(job.id),
                short(job.label),
                job.queue,
                f"{job.attempts}/{job.max_attempts}",
                format_duration(max(0.0, elapsed)),
                progress_text(job) if job.progress is not None else Text("-", style="dim"),
            ]
        )
    total = sum(n for (s, _), n in snap.counts.items() if s == "running")
    headers = ["id", "task", "queue", "tries", "elapsed", "progress"]
    flex = {"task": 3, "queue": 1, "progress": 2}
    return Section("Running", headers, rows, flex, max(total, len(rows)))


def _failures(snap: Snapshot) -> Section:
    rows = [
        [
            str(job.id),
            state_text(job.state),
            short(job.label),
            f"{job.attempts}/{job.max_attempts}",
            ago(job.finished_at or job.run_at),
            outcome or "-",
            Text(short(job.error), style="red"),
        ]
        for job, outcome in snap.failures
    ]
    headers = ["id", "state", "task", "tries", "when", "last attempt", "cause"]
    return Section("Recent failures", headers, rows, {"task": 1, "cause": 2}, len(rows))


def _schedules(snap: Snapshot) -> Section:
    rows: list[list[Any]] = []
    for name, expression, when, paused in snap.schedules:
        if paused:
            rows.append([name, expression, Text("paused", style="yellow"), ""])
        else:
            left = "-" if when is None else format_duration(max(0.0, when - snap.now))
            rows.append(
                [name, expression, "never" if when is None else when_short(when, snap.now), left]
            )
    headers = ["name", "when", "next fire", "in"]
    total = max(snap.schedules_total, len(rows))
    flex = {"name": 1, "when": 1}
    return Section("Next schedules", headers, rows, flex, total, "no [[schedules]] in the config")


def _budget(sections: list[Section], lines: int) -> list[int]:
    """Rows each section may show in `lines`, shared out one at a time so that a long
    section cannot push the others off the screen."""
    shown = [0] * len(sections)
    while lines > 0:
        wanting = [i for i, sec in enumerate(sections) if shown[i] < len(sec.rows)]
        if not wanting:
            break
        for i in wanting[:lines]:
            shown[i] += 1
            lines -= 1
    return shown


def frame(
    snap: Snapshot, db_path: str, live: bool, width: int | None = None, height: int | None = None
) -> RenderableType:
    """One view. On a terminal it fits `width` x `height` (80 x 24 and up): every section
    keeps its title and header, and shares the lines left; piped, everything is shown."""
    if snap.daemons_alive:
        daemons = Text(
            f"{plural(snap.daemons_alive, 'daemon')}, {plural(snap.workers, 'worker')}",
            style="green",
        )
    else:
        daemons = Text("no daemon running", style="yellow")
    header = Text.assemble(
        ("jobrunner top", "bold"),
        f"  {when_short(snap.now, snap.now)}  ",
        daemons,
        ("  q quits" if live else "", "dim"),
        f"  {db_path}",
        no_wrap=True,
        overflow="ellipsis",
    )
    sections = [_queues(snap), _running(snap), _failures(snap), _schedules(snap)]
    head: list[RenderableType] = [
        header,
        *[
            Text(f"warning: {w}", style="yellow", no_wrap=True, overflow="ellipsis")
            for w in snap.warnings
        ],
        _throughput(snap),
    ]
    if height is None:
        shown = [len(sec.rows) for sec in sections]
    else:  # each section: its title, and its header and rule (or one line saying "none")
        fixed = len(head) + sum(1 + (2 if sec.rows else 1) for sec in sections)
        shown = _budget(sections, height - fixed)
    parts = list(head)
    for sec, n in zip(sections, shown, strict=True):
        hidden = sec.total - n
        if sec.title == "Running":  # how many run, and which of them are shown
            title = f"Running ({sec.total})" + (f", longest {n} shown" if hidden > 0 else "")
        else:
            counts = (n - sec.summary, sec.total - sec.summary)
            title = sec.title + (" ({} of {})".format(*counts) if hidden > 0 else "")
        parts.append(Text(title, style="bold", no_wrap=True, overflow="ellipsis"))
        if not sec.rows:
            parts.append(Text(sec.empty, style="dim"))
            continue
        table = fitted(None, sec.headers, sec.rows[:n], sec.flex, width, sec.right)
        if sec.title == "Queues":
            for column in table.columns[1:]:
                column.style = STATE_STYLE[str(column.header)]
        parts.append(table)
    return Group(*parts)


class Keys:
    """Single key presses from a terminal on stdin (cbreak: no Enter, no echo, while
    Ctrl-C still interrupts). Without a terminal it only waits."""

    def __init__(self) -> None:
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            fd = -1
        self.fd = fd if fd >= 0 and os.isatty(fd) else -1
        self.saved: Any = None

    def __enter__(self) -> Keys:
        if self.fd >= 0:
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True as soon as a quit key is pressed."""
        deadline = clock.monotonic() + timeout
        while (left := deadline - clock.monotonic()) > 0:
            if self.fd < 0:
                time.sleep(left)
                return False
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                data = os.read(self.fd, 64)
                if not data:  # the terminal went away: wait without it
                    self.fd = -1
                elif any(key in data for key in QUIT_KEYS):
                    return True
        return False


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run(store: Any, config: Any, db_path: str, interval: float, once: bool = False) -> int:
    fires = NextFires(config)
    last: dict[str, Any] = {"seq": None, "at": 0.0, "snap": None}

    def view(live: bool) -> RenderableType:
        # The tables are read again only when the event feed moved (a cheap look at its
        # newest seq), and every REGATHER seconds for what time alone changes (the
        # throughput window, daemons' leases): no reading of job rows in a loop.
        now = clock.now()
        seq = store.events_last_seq()
        if last["snap"] is None or seq != last["seq"] or now - last["at"] >= REGATHER:
            last.update(seq=seq, at=now, snap=gather(store, config, fires, now))
        if not live:  # piped, or --once: everything, nothing cut
            return frame(last["snap"], db_path, live)
        return frame(last["snap"], db_path, live, console.width, console.height)

    if once:
        console.print(view(False))
        return 0
    for sig in (signal.SIGTERM, signal.SIGHUP):  # unwind, so the terminal is restored
        signal.signal(sig, _exit_on_signal)
    try:
        with Keys() as keys:
            if not console.is_terminal:  # piped: one frame after another, like `top -b`
                while True:
                    console.print(view(False))
                    console.print()
                    sys.stdout.flush()
                    if keys.wait(interval):
                        return 0
            with Live(view(True), console=console, screen=True, auto_refresh=False) as live:
                while not keys.wait(interval):
                    live.update(view(True), refresh=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is the other way to quit
    return 0
