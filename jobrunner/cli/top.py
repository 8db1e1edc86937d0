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

from rich import box
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from jobrunner import clock
from jobrunner.cli.render import (
    STATE_ORDER,
    STATE_STYLE,
    ago,
    console,
    progress_text,
    short,
    state_text,
)
from jobrunner.durations import format_duration
from jobrunner.models import Job, iso
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

    daemons = [d for d in store.daemon_list() if d.lease_until >= now]
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
        wal_bytes=wal_bytes,
        warnings=database_warnings(store.path, wal_bytes),
    )


def _title(text: str) -> Text:
    return Text(text, style="bold")


def _queues(snap: Snapshot) -> RenderableType:
    if not snap.counts:
        return Text("no jobs", style="dim")
    queues = sorted({q for _, q in snap.counts})
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("queue")
    for state in STATE_ORDER:
        table.add_column(state, justify="right", style=STATE_STYLE[state], min_width=len(state))
    for queue in queues:
        table.add_row(queue, *[str(snap.counts.get((s, queue), 0) or "") for s in STATE_ORDER])
    if len(queues) > 1:
        totals = [sum(n for (s, _), n in snap.counts.items() if s == st) for st in STATE_ORDER]
        table.add_row(Text("all", style="bold"), *[str(n or "") for n in totals])
    return table


def _throughput(snap: Snapshot) -> Text:
    total = sum(snap.ended.values())
    text = Text(f"{total} finished in the last minute")
    parts = [(s, snap.ended[s]) for s in STATE_ORDER if snap.ended.get(s)]
    if parts:
        text.append(": ")
        for i, (state, n) in enumerate(parts):
            text.append(", " if i else "")
            text.append(f"{n} {state}", style=STATE_STYLE[state])
    return text


def _running(snap: Snapshot) -> RenderableType:
    if not snap.running:
        return Text("none", style="dim")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("id", "task", "queue", "attempt", "elapsed", "progress"):
        table.add_column(col)
    for job in snap.running:
        elapsed = snap.now - job.started_at if job.started_at else 0.0
        table.add_row(
            str(job.id),
            short(job.label, 40),
            job.queue,
            f"{job.attempts}/{job.max_attempts}",
            format_duration(max(0.0, elapsed)),
            progress_text(job) if job.progress is not None else Text("-", style="dim"),
        )
    return table


def _failures(snap: Snapshot) -> RenderableType:
    if not snap.failures:
        return Text("none", style="dim")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("id", "state", "task", "attempts", "when", "last attempt", "cause"):
        table.add_column(col)
    for job, outcome in snap.failures:
        table.add_row(
            str(job.id),
            state_text(job.state),
            short(job.label, 30),
            f"{job.attempts}/{job.max_attempts}",
            ago(job.finished_at or job.run_at),
            outcome or "-",
            Text(short(job.error, 60), style="red"),
        )
    return table


def _schedules(snap: Snapshot) -> RenderableType:
    if not snap.schedules:
        return Text("no [[schedules]] in the config", style="dim")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("name", "when", "next fire (UTC)", "in"):
        table.add_column(col)
    for name, expression, when, paused in snap.schedules:
        if paused:
            table.add_row(name, expression, Text("paused", style="yellow"), "")
        else:
            left = "-" if when is None else format_duration(max(0.0, when - snap.now))
            table.add_row(name, expression, iso(when) or "never", left)
    return table


def frame(snap: Snapshot, db_path: str, live: bool) -> RenderableType:
    running_total = sum(n for (s, _), n in snap.counts.items() if s == "running")
    if snap.daemons_alive:
        daemons = Text(f"{snap.daemons_alive} daemon(s), {snap.workers} workers", style="green")
    else:
        daemons = Text("no daemon running", style="yellow")
    header = Text.assemble(
        ("jobrunner top", "bold"),
        f"  {db_path}  {iso(snap.now)}  ",
        daemons,
        ("   q quits" if live else "", "dim"),
    )
    more = running_total - len(snap.running)
    parts: list[RenderableType] = [
        header,
        *[Text(f"warning: {w}", style="yellow") for w in snap.warnings],
        Text(""),
        _title("Queues"),
        _queues(snap),
        _title("Throughput"),
        _throughput(snap),
        Text(""),
        _title(
            f"Running ({running_total})"
            + (f", longest {len(snap.running)} shown" if more > 0 else "")
        ),
        _running(snap),
        _title("Recent failures"),
        _failures(snap),
        _title("Next schedules"),
        _schedules(snap),
    ]
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
        return frame(last["snap"], db_path, live)

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
