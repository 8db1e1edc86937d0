"""The TOML config, read into typed, validated objects. Errors carry file:line."""

from __future__ import annotations

import contextlib
import os
import re

from jobrunner.config_reader import TASK_NAME, Reader
from jobrunner.config_schedules import ScheduleConfig, parse_schedule
from jobrunner.durations import parse_duration, parse_size
from jobrunner.errors import ConfigError, UsageError
from jobrunner.http.settings import HttpConfig, parse_http
from jobrunner.record import Record, field

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from typing import Any

    from jobrunner.webhooks.settings import WebhooksConfig

DEFAULT_DB = "jobrunner.db"
DEFAULT_CONFIG = "jobrunner.toml"
DEFAULT_WORKERS = os.cpu_count() or 2
DEFAULT_LEASE = 30.0
DEFAULT_SHUTDOWN_GRACE = 30.0
DEFAULT_POLL_INTERVAL = 1.0
KILL_GRACE = 5.0  # between SIGTERM and SIGKILL when a job times out or is cancelled
DEFAULT_RETAIN_SUCCEEDED = 7 * 86400.0  # [retention] succeeded
DEFAULT_RETAIN_DEAD = 30 * 86400.0  # [retention] dead: dead and cancelled jobs
DEFAULT_RETAIN_EVENTS = 7 * 86400.0  # as long as succeeded jobs are kept
MIN_RETENTION = 1.0
CHECKPOINT_EVERY = 30.0  # the daemon checkpoints and truncates the WAL this often
# ... and sooner, checked every WAL_CHECK_EVERY, once it is larger than [daemon] wal_max
DEFAULT_WAL_MAX = 16 << 20
WAL_CHECK_EVERY = 1.0
# `status` warns when the write-ahead log is larger: checkpoints may be held back
WAL_WARN_BYTES = 64 << 20
FUNCTION_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class TaskConfig(Record):
    name: str
    function: str | None = None
    command: list[str] | None = None
    queue: str = "default"
    priority: int = 0
    retries: int = 3
    backoff: float = 1.0
    timeout: float | None = None
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)  # memory_limit, cpu_limit, nice


class DaemonConfig(Record):
    workers: int = DEFAULT_WORKERS
    queues: list[str] | None = None
    lease: float = DEFAULT_LEASE
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    poll_interval: float = DEFAULT_POLL_INTERVAL
    kill_grace: float = KILL_GRACE
    wal_max: int = DEFAULT_WAL_MAX  # a larger write-ahead log is truncated within ~1s
    # The daemon's own writes (claims, results, heartbeats) commit without an fsync: if
    # power fails before a later fsync, a claim or a result is lost and the job runs again,
    # which at-least-once allows. Submits and other acknowledged user actions keep the
    # top-level `synchronous` (FULL by default).
    synchronous: str = "NORMAL"
    # Each worker (and so every process its jobs start, whatever their session) in a
    # cgroup of its own, when a writable cgroup2 hierarchy is there; false: never.
    cgroups: bool = True


class PostgresConfig(Record):
    """The [postgres] table: for databases reached through a pooler."""

    # false: no LISTEN (PgBouncer in transaction mode cannot keep one): daemons claim at
    # each [daemon] poll_interval and feed readers (SSE, `wait`, `events --follow`) look
    # every second, instead of being woken by NOTIFY.
    listen: bool = True


class RetentionConfig(Record):
    """How long ended jobs are kept before the daemon deletes them (and their logs)."""

    succeeded: float = DEFAULT_RETAIN_SUCCEEDED
    dead: float = DEFAULT_RETAIN_DEAD  # dead and cancelled
    events: float = DEFAULT_RETAIN_EVENTS  # the job event feed


class Config(Record):
    path: str | None = None
    database: str | None = None
    synchronous: str = "FULL"
    imports: list[str] = field(default_factory=list)
    log_max_bytes: int = 1 << 20
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    # [queues.NAME]: running at once across every daemon of the database (`concurrency`),
    # in one daemon (`per_daemon`), sharing a concurrency key (`per_key`); starts per
    # period across every daemon (`rate`: (starts, seconds))
    queue_concurrency: dict[str, int] = field(default_factory=dict)
    queue_per_daemon: dict[str, int] = field(default_factory=dict)
    queue_per_key: dict[str, int] = field(default_factory=dict)
    queue_rate: dict[str, tuple[int, float]] = field(default_factory=dict)
    tasks: dict[str, TaskConfig] = field(default_factory=dict)
    schedules: dict[str, ScheduleConfig] = field(default_factory=dict)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    http: HttpConfig | None = None  # the [http] table; None: the daemon runs no server
    webhooks: WebhooksConfig | None = None  # [webhooks]; None: no deliveries are made


QUEUE_KEYS = {"concurrency", "per_daemon", "per_key", "rate"}
RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: object) -> tuple[int, float]:
    """`"10/s"`, `"600/m"`, `"100/h"`, or a number of starts per a duration (`"5/30s"`):
    (starts, seconds). ValueError saying what is wrong."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(
            f'expected starts per period like "10/s", "600/m" or "5/30s", got {text!r}'
        )
    count, _, per = text.partition("/")
    if not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"expected a whole number of starts of at least 1, got {count!r}")
    per = per.strip()
    if per in RATE_UNITS:
        seconds = RATE_UNITS[per]
    else:
        seconds = parse_duration(per, where="rate")
        if seconds <= 0:
            raise ValueError(f"the period must be longer than 0, got {per!r}")
    return int(count), float(seconds)


def load_config(path: str | None) -> Config:
    """Read `path`; None gives the defaults."""
    if path is None:
        return Config()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    import tomllib

    try:
        text = raw.decode()
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1  # file:line, as every config error
        raise ConfigError(f"{path}:{bad_line}: config is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        # tomllib says "at end of document" for an unterminated value: the last line with
        # text, counted as TOML counts lines (by "\n" alone, not str.splitlines' \r, \f...)
        line = m.group(1) if m else str(text.rstrip("\n").count("\n") + 1)
        reason = re.sub(r"\s*\(at line.*\)$", "", str(exc))
        raise ConfigError(f"{path}:{line}: invalid TOML: {reason}") from None
    return _parse(Reader(path, text), data, path)


# The keys each table of the config file may hold (the fuzzer draws from these too).
TOP_KEYS = frozenset({"database", "synchronous", "imports", "log_max_bytes"})
TABLE_KEYS = frozenset(
    {"daemon", "queues", "tasks", "schedules", "retention", "postgres", "http", "webhooks"}
)
DAEMON_KEYS = frozenset(
    {
        "workers",
        "queues",
        "lease",
        "shutdown_grace",
        "poll_interval",
        "kill_grace",
        "synchronous",
        "wal_max",
        "cgroups",
    }
)
TASK_KEYS = frozenset(
    {
        "function",
        "command",
        "queue",
        "priority",
        "retries",
        "backoff",
        "timeout",
        "cwd",
        "env",
        "memory_limit",
        "cpu_limit",
        "nice",
    }
)
RETENTION_KEYS = frozenset({"succeeded", "dead", "events"})


def _parse(r: Reader, data: dict[str, Any], path: str) -> Config:
    r.unknown_keys("", data, TOP_KEYS | TABLE_KEYS)
    cfg = Config(path=path)
    cfg.database = r.string("", data, "database", None)
    sync = r.string("", data, "synchronous", "FULL")
    if sync.upper() not in ("FULL", "NORMAL"):
        raise r.fail("", "synchronous", f"must be FULL or NORMAL, got {sync!r}")
    cfg.synchronous = sync.upper()
    cfg.imports = r.string_list("", data, "imports") or []
    cfg.log_max_bytes = r.integer("", data, "log_max_bytes", cfg.log_max_bytes, 1024)

    daemon = _table(r, data, "daemon")
    r.unknown_keys("daemon", daemon, DAEMON_KEYS)
    cfg.daemon = DaemonConfig(
        workers=r.integer("daemon", daemon, "workers", DEFAULT_WORKERS, 1),
        queues=r.string_list("daemon", daemon, "queues"),
        lease=r.duration("daemon", daemon, "lease", DEFAULT_LEASE),
        shutdown_grace=r.duration("daemon", daemon, "shutdown_grace", DEFAULT_SHUTDOWN_GRACE),
        poll_interval=r.duration("daemon", daemon, "poll_interval", DEFAULT_POLL_INTERVAL),
        kill_grace=r.duration("daemon", daemon, "kill_grace", KILL_GRACE),
    )
    if "wal_max" in daemon:
        try:
            cfg.daemon.wal_max = parse_size(daemon["wal_max"], where="value")
        except Exception as exc:  # noqa: BLE001 - re-raised with file:line
            raise r.fail("daemon", "wal_max", str(exc).removeprefix("value: ")) from None
    daemon_sync = r.string("daemon", daemon, "synchronous", "NORMAL")
    if daemon_sync.upper() not in ("FULL", "NORMAL"):
        raise r.fail("daemon", "synchronous", f"must be FULL or NORMAL, got {daemon_sync!r}")
    cfg.daemon.synchronous = daemon_sync.upper()
    cgroups = daemon.get("cgroups", True)
    if not isinstance(cgroups, bool):
        raise r.fail("daemon", "cgroups", f"expected true or false, got {cgroups!r}")
    cfg.daemon.cgroups = cgroups
    if cfg.daemon.lease < 2:
        raise r.fail("daemon", "lease", "must be at least 2s")

    cfg.retention = _parse_retention(r, _table(r, data, "retention"))
    postgres = _table(r, data, "postgres")
    r.unknown_keys("postgres", postgres, {"listen"})
    listen = postgres.get("listen", True)
    if not isinstance(listen, bool):
        raise r.fail("postgres", "listen", f"expected true or false, got {listen!r}")
    cfg.postgres = PostgresConfig(listen=listen)
    if "http" in data:
        cfg.http = parse_http(r, _table(r, data, "http"))
    if "webhooks" in data:
        from jobrunner.webhooks.settings import parse_webhooks

        cfg.webhooks = parse_webhooks(r, _table(r, data, "webhooks"))

    for name, queue in _table(r, data, "queues").items():
        table = f"queues.{name}"
        if not isinstance(queue, dict):
            raise r.fail("queues", name, "expected a table like [queues.NAME]")
        r.unknown_keys(table, queue, QUEUE_KEYS)
        if "concurrency" in queue or not queue:  # a bare [queues.NAME]: one at a time
            cfg.queue_concurrency[name] = r.integer(table, queue, "concurrency", 1, 1)
        if "per_daemon" in queue:
            cfg.queue_per_daemon[name] = r.integer(table, queue, "per_daemon", 1, 1)
        if "per_key" in queue:
            cfg.queue_per_key[name] = r.integer(table, queue, "per_key", 1, 1)
        if "rate" in queue:
            try:
                cfg.queue_rate[name] = parse_rate(queue["rate"])
            except (ValueError, UsageError) as exc:
                raise r.fail(table, "rate", str(exc).removeprefix("rate: ")) from None

    for name, task in _table(r, data, "tasks").items():
        cfg.tasks[name] = _parse_task(r, name, task)

    entries = data.get("schedules", [])
    if not isinstance(entries, list):
        raise r.fail("", "schedules", "expected [[schedules]] entries")
    for index, entry in enumerate(entries):
        schedule = parse_schedule(r, index, entry)
        if schedule.name in cfg.schedules:
            raise r.fail(
                f"schedules[{index}]", "name", f"duplicate schedule name {schedule.name!r}"
            )
        task = schedule.task
        if task is not None and task not in cfg.tasks and not FUNCTION_REF.match(task):
            known = ", ".join(sorted(cfg.tasks)) or "none configured"
            raise r.fail(
                f"schedules[{index}]",
                "task",
                f"{task!r} is not package.module:function and not a [tasks.NAME] entry "
                f"(named tasks: {known})",
            )
        cfg.schedules[schedule.name] = schedule
    return cfg


def _table(r: Reader, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise r.fail("", key, f"expected a table [{key}]")
    return value


def _parse_retention(r: Reader, data: dict[str, Any]) -> RetentionConfig:
    r.unknown_keys("retention", data, RETENTION_KEYS)
    retention = RetentionConfig(
        succeeded=r.duration("retention", data, "succeeded", DEFAULT_RETAIN_SUCCEEDED),
        dead=r.duration("retention", data, "dead", DEFAULT_RETAIN_DEAD),
        events=r.duration("retention", data, "events", DEFAULT_RETAIN_EVENTS),
    )
    for key in ("succeeded", "dead", "events"):
        if getattr(retention, key) < MIN_RETENTION:
            raise r.fail("retention", key, f"must be at least {MIN_RETENTION:g}s")
    return retention


def _parse_task(r: Reader, name: str, task: Any) -> TaskConfig:
    table = f"tasks.{name}"
    if not isinstance(task, dict):
        raise r.fail("tasks", name, "expected a table like [tasks.NAME]")
    if not TASK_NAME.match(name):
        raise r.fail(table, None, "task names use letters, digits, '_' and '-'")
    r.unknown_keys(table, task, TASK_KEYS)
    function = r.string(table, task, "function", None)
    command = r.string_list(table, task, "command")
    if (function is None) == (command is None):
        raise r.fail(table, None, "set exactly one of 'function' or 'command'")
    if function is not None and not FUNCTION_REF.match(function):
        raise r.fail(table, "function", f"expected package.module:function, got {function!r}")
    if command is not None and not command:
        raise r.fail(table, "command", "must name a program")
    env = task.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise r.fail(table, "env", "expected a table of strings")
    for var, value in env.items():
        if not var or "=" in var or "\0" in var + value:  # what execve refuses
            raise r.fail(table, "env", f"{var!r} = {value!r} cannot be an environment variable")
    priority = task.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise r.fail(table, "priority", f"expected a whole number, got {priority!r}")
    limits: dict[str, Any] = {}
    if "memory_limit" in task:
        try:
            limits["memory_limit"] = parse_size(task["memory_limit"], where="value")
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised with file:line
            raise r.fail(table, "memory_limit", str(exc).removeprefix("value: ")) from None
    if "cpu_limit" in task:
        limits["cpu_limit"] = r.duration(table, task, "cpu_limit", None)
    if "nice" in task:
        limits["nice"] = r.integer(table, task, "nice", 0, 0)
        if limits["nice"] > 19:
            raise r.fail(table, "nice", "must be 0 to 19")
    return TaskConfig(
        name=name,
        function=function,
        command=command,
        queue=r.string(table, task, "queue", "default"),
        priority=priority,
        retries=r.integer(table, task, "retries", 3, 0),
        backoff=r.duration(table, task, "backoff", 1.0),
        timeout=r.duration(table, task, "timeout", None),
        cwd=r.string(table, task, "cwd", None),
        env=dict(env),
        limits=limits,
    )


def config_path(explicit: str | None) -> str | None:
    """--config, else JOBRUNNER_CONFIG, else ./jobrunner.toml when it exists."""
    if explicit:
        return explicit
    env = os.environ.get("JOBRUNNER_CONFIG")
    if env:
        return env
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def import_folders(config: Config) -> list[str]:
    """Where `imports` and the modules of tasks are found, before sys.path: the config
    file's folder (as `database` is relative to it: a daemon started elsewhere, by
    systemd say, finds the same modules), then the working directory."""
    folders = [os.path.dirname(os.path.abspath(config.path))] if config.path else []
    cwd = os.getcwd()
    return folders + [cwd] if cwd not in folders else folders


def database_only(path: str | None) -> Config:
    """The defaults, with the `database` of the config at `path` that failed to load,
    where that key can still be read: from the file, or, when the file is not valid TOML,
    from its own line before the first table."""
    import tomllib

    cfg = Config(path=path)
    try:
        with open(path or "", "rb") as f:
            text = f.read().decode()
    except (OSError, ValueError):
        return cfg
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = {}
        for line in text.splitlines():
            if line.lstrip().startswith("["):
                break
            if re.match(r"\s*database\s*=", line):
                with contextlib.suppress(tomllib.TOMLDecodeError):
                    data = tomllib.loads(line)
                break
    database = data.get("database")
    if isinstance(database, str) and database and "\0" not in database:
        cfg.database = database
    return cfg


def database_path(explicit: str | None, config: Config) -> str:
    """--db, else JOBRUNNER_DB, else the config's `database`, else ./jobrunner.db.

    A relative `database` in the config is relative to the config file's folder."""
    if explicit:
        return explicit
    env = os.environ.get("JOBRUNNER_DB")
    if env:
        return env
    if config.database:
        if config.path and not os.path.isabs(config.database):
            return os.path.join(os.path.dirname(os.path.abspath(config.path)), config.database)
        return config.database
    return DEFAULT_DB
