"""The Python API: Client and JobHandle (the @task decorator is in decorator.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jobrunner import clock
from jobrunner.config import Config, config_path, database_path, load_config
from jobrunner.durations import MAX_DURATION, MAX_SIZE
from jobrunner.errors import JobrunnerError, UsageError
from jobrunner.jsonutil import depth_error, dumps
from jobrunner.lifecycle import FINAL, State
from jobrunner.models import Job, JobInsert
from jobrunner.ops import get_job, submit, submit_calls
from jobrunner.store import open_store
from jobrunner.taskref import Submission, build_job

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    from typing import Any

    from jobrunner.store.base import Store


class JobFailed(JobrunnerError):
    """The job ended dead or cancelled."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} ended {job.state}: {job.error or 'no error recorded'}")
        self.job = job


class Client:
    """Submits and inspects jobs in one database.

    `db` and `config` default as the CLI's do: JOBRUNNER_DB / JOBRUNNER_CONFIG, the
    config's `database`, ./jobrunner.toml, ./jobrunner.db.
    """

    def __init__(self, db: str | None = None, config: str | Config | None = None) -> None:
        if isinstance(config, Config):
            self.config = config
        else:
            self.config = load_config(config_path(config))
        self.db_path = database_path(db, self.config)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.db_path, synchronous=self.config.synchronous)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submitting -----------------------------------------------------------------------

    def submit(
        self,
        task: str | Callable[..., Any] | None = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> JobHandle:
        """Submit one job; returns a handle. `options` are those of `prepare` (command,
        queue, priority, delay, at, retries, backoff, timeout, key, limits, check). With
        `key`, a second submit returns the first job."""
        return JobHandle(self, self.insert([self.prepare(task, args, kwargs, **options)])[0])

    def prepare(
        self,
        task: str | Callable[..., Any] | None = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        command: Sequence[str] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        at: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        key: str | None = None,
        memory_limit: int | None = None,
        cpu_limit: float | None = None,
        nice: int | None = None,
        check: bool = True,
    ) -> JobInsert:
        """Validate one job without writing it, for `insert` in bulk."""
        if callable(task):
            task = task_reference(task)
        if delay is not None and at is not None:
            raise UsageError("give delay or at, not both")
        run_at = at if at is not None else (clock.now() + delay if delay else None)
        for name, value in (
            ("retries", retries),
            ("backoff", backoff),
            ("timeout", timeout),
            ("delay", delay),
        ):
            if value is not None and value < 0:
                raise UsageError(f"{name} must be >= 0, got {value}")
        _check_bounds(priority, retries, (delay, backoff, timeout, cpu_limit), at, memory_limit)
        for name, text in (("queue", queue), ("key", key)):
            if text is not None:
                _check_text(name, text)
        for part in command or ():
            if isinstance(part, str):
                _check_text("command", part)
                if "\0" in part:
                    raise UsageError(f"command: {part!r} holds a NUL byte, which no argv can")
        args_list = list(args)
        _check_json("args", args_list)
        kwargs = dict(kwargs or {})
        _check_json("kwargs", kwargs)
        limits = {
            name: value
            for name, value in (
                ("memory_limit", memory_limit),
                ("cpu_limit", cpu_limit),
                ("nice", nice),
            )
            if value is not None
        }
        if nice is not None and not 0 <= nice <= 19:
            raise UsageError(f"nice must be 0 to 19, got {nice}")
        if cpu_limit is not None and cpu_limit <= 0:
            raise UsageError(f"cpu_limit must be positive, got {cpu_limit}")
        sub = Submission(
            args_list,
            kwargs,
            queue,
            priority,
            run_at,
            retries,
            backoff,
            timeout,
            key,
            limits or None,
        )
        return build_job(
            task, list(command) if command is not None else None, sub, self.config, check=check
        )

    def submit_many(
        self,
        task: str | Callable[..., Any] | None,
        calls: Sequence[Sequence[Any]],
        *,
        command: Sequence[str] | None = None,
        **options: Any,
    ) -> list[int]:
        """Submit one job per entry of `calls` (each the job's args) in one transaction.

        The task is resolved and checked once; every job shares `options` (queue,
        priority, retries, backoff, timeout, delay, at). Returns the ids in order."""
        if options.get("key") is not None:
            raise UsageError("submit_many takes no key: give each job its own with insert()")
        template = self.prepare(task, (), None, command=command, **options)
        encoded = []
        for args in calls:
            if not isinstance(args, list | tuple):
                raise UsageError(f"submit_many: each call is a list of args, got {args!r}")
            encoded.append(_encode_json("args", args))
        return submit_calls(self.store, template, encoded, clock.now())

    def insert(self, jobs: Sequence[JobInsert]) -> list[int]:
        """Write prepared jobs in one transaction and wake the daemons; returns their ids
        (a job whose key was used before: that job's id, and nothing is written)."""
        return [r.id for r in submit(self.store, jobs, clock.now())]

    # -- inspecting -----------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        """The job as it is now; JobNotFound if there is none."""
        return get_job(self.store, job_id)

    def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """The job once it has ended; TimeoutError if `timeout` passes first."""
        from jobrunner.ops.waiting import wait_for_end

        job = wait_for_end(self.store, job_id, timeout)
        if job.state not in FINAL:
            raise TimeoutError(f"job {job_id} still {job.state} after {timeout}s")
        return job


def _check_json(name: str, value: Any) -> None:
    _encode_json(name, value)


def _encode_json(name: str, value: Any) -> str:
    """`value` as the JSON text stored, or a UsageError: not JSON, not valid Unicode, or
    nested deeper than every reader can take (jsonutil.MAX_DEPTH)."""
    try:
        text = dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise UsageError(f"{name}: not JSON-serializable: {exc}") from None
    _check_text(name, text)
    problem = depth_error(text)
    if problem is not None:
        raise UsageError(f"{name}: {problem}")
    return text


def _check_text(name: str, text: str) -> None:
    """Text is stored as UTF-8: a lone surrogate (what Python makes of invalid UTF-8 in
    argv, or a JSON escape like \\ud800) cannot be, and would fail mid-insert."""
    if text.isascii():  # the common case, and cheap
        return
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise UsageError(
            f"{name}: not valid Unicode text: lone surrogate {bad!r} (invalid UTF-8 in the input?)"
        ) from None


class JobHandle:
    def __init__(self, client: Client, job_id: int) -> None:
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"JobHandle(id={self.id})"

    def state(self) -> State:
        return self.client.get(self.id).state

    def job(self) -> Job:
        return self.client.get(self.id)

    def result(self, timeout: float | None = None) -> Any:
        """The job's return value once it succeeds; JobFailed if it ends otherwise."""
        job = self.client.wait(self.id, timeout)
        if job.state is not State.SUCCEEDED:
            raise JobFailed(job)
        return job.result


def task_reference(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise UsageError(f"{fn!r}: only module-level functions can be tasks")
    if module == "__main__":
        raise UsageError(
            f"{qualname}: defined in __main__, which a daemon cannot import; move it into a module"
        )
    return f"{module}:{qualname}"


# SQLite stores 64-bit integers; these bounds keep far from that and from datetime's
# year 9999, so an absurd value is a usage error here, not an OverflowError later.
MAX_INT_OPTION = 2**31 - 1
MAX_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z
MIN_TIMESTAMP = -62135596800.0  # 0001-01-01T00:00:00Z


def _check_bounds(
    priority: int | None,
    retries: int | None,
    durations: tuple[float | None, ...],
    at: float | None,
    memory_limit: int | None,
) -> None:
    for name, value in (("priority", priority), ("retries", retries)):
        if value is not None and not -MAX_INT_OPTION <= value <= MAX_INT_OPTION:
            raise UsageError(f"{name} must be within +-{MAX_INT_OPTION}, got {value}")
    for duration in durations:
        if duration is not None and not duration <= MAX_DURATION:  # NaN fails too
            raise UsageError(f"durations must be at most 100 years, got {duration}")
    if at is not None and not MIN_TIMESTAMP <= at <= MAX_TIMESTAMP:
        raise UsageError(f"at must be a time between the years 1 and 9999, got {at}")
    if memory_limit is not None and not 0 < memory_limit <= MAX_SIZE:
        raise UsageError(f"memory_limit must be 1 byte to 1EiB, got {memory_limit}")
