"""The Python API: Client and JobHandle (the @task decorator is in decorator.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jobrunner import clock
from jobrunner.client_checks import (
    CHECK_HINT,
    call_check,
    check_bounds,
    check_callback,
    check_json,
    check_signature,
    check_text,
    encode_json,
    seconds,
    size,
    task_reference,
    timestamp,
)
from jobrunner.config import Config, config_path, database_path, load_config
from jobrunner.errors import JobNotFound, JobrunnerError, UsageError
from jobrunner.lifecycle import FINAL, State
from jobrunner.models import Job, JobInsert
from jobrunner.ops import get_job, submit, submit_calls
from jobrunner.store import open_store
from jobrunner.taskref import Submission, TaskCheckFailed, build_job

TYPE_CHECKING = False  # typing costs ~6 ms of `jobrunner submit`; mypy sets it true
if TYPE_CHECKING:
    import builtins  # `list` is also a method of Client
    import datetime
    from typing import Any

    from jobrunner.ops.control import Cancellation
    from jobrunner.store.base import Store

    Duration = float | str | datetime.timedelta
    When = float | str | datetime.datetime


class KeyReusedWarning(UserWarning):
    """A submit's idempotency key named a job submitted with other arguments: that job
    was returned and nothing was written (JobHandle.created is False)."""


class JobFailed(JobrunnerError):
    """The job ended dead or cancelled."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} ended {job.state}: {job.error or 'no error recorded'}")
        self.job = job


class Client:
    """Submits and inspects jobs in one database.

    `db` and `config` default as the CLI's do: JOBRUNNER_DB / JOBRUNNER_CONFIG, the
    config's `database`, ./jobrunner.toml, ./jobrunner.db. A URL (http:// or https://)
    instead of `db` talks to a server (`jobrunner serve`) through the same methods:
    `Client("http://127.0.0.1:8765", token=...)` (client_http.py).
    """

    def __new__(cls, db: str | None = None, *args: Any, **kwargs: Any) -> Client:
        if isinstance(db, str) and db.startswith(("http://", "https://")):
            from jobrunner.client_http import HttpClient

            return HttpClient(db, *args, **kwargs)  # type: ignore[return-value]
        return super().__new__(cls)

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
            self._store = open_store(
                self.db_path,
                synchronous=self.config.synchronous,
                listen=self.config.postgres.listen,
            )
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
        queue, priority, delay, at, retries, backoff, timeout, key, limits, check).

        With `key`, a second submit returns the first job, and writes nothing: the
        handle's `created` is False, and a KeyReusedWarning says so when this call's
        task or arguments differ from that job's."""
        job = self.prepare(task, args, kwargs, **options)
        result = submit(self.store, [job], clock.now())[0]
        if not result.created:
            from jobrunner.ops.idempotency import other_call

            existing = other_call(self.store, job, result.id)
            if existing is not None:
                import warnings

                warnings.warn(
                    f"key {job.key!r} already names job {existing.id}, submitted with other "
                    f"arguments; returned job {existing.id} and wrote nothing",
                    KeyReusedWarning,
                    stacklevel=2,
                )
        return JobHandle(self, result.id, created=result.created)

    def prepare(
        self,
        task: str | Callable[..., Any] | None = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        command: Sequence[str] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        delay: Duration | None = None,
        at: When | None = None,
        retries: int | None = None,
        backoff: Duration | None = None,
        timeout: Duration | None = None,
        key: str | None = None,
        memory_limit: int | str | None = None,
        cpu_limit: Duration | None = None,
        nice: int | None = None,
        callback: str | None = None,
        after: Sequence[int | JobHandle] = (),
        after_ended: Sequence[int | JobHandle] = (),
        concurrency_key: str | None = None,
        check: bool = True,
    ) -> JobInsert:
        """Validate one job without writing it, for `insert` in bulk.

        Durations (`delay`, `backoff`, `timeout`, `cpu_limit`) are seconds, a
        `datetime.timedelta` or text like "10m"; `at` is a Unix time, a `datetime` (naive:
        local time) or ISO 8601 text; `memory_limit` bytes or text like "512MB".
        `check`: refuse a task whose module or function cannot be found from here, or
        whose parameters the call does not fit (read from its source, never imported).
        `callback`: a URL that gets the job's final event, signed with the [webhooks]
        secret (docs/webhooks.md). `after`: jobs (ids or handles) that must succeed
        before this one runs (if one ends dead or cancelled, so is this one);
        `after_ended`: jobs that must only have ended. `concurrency_key`: with the
        queue's `per_key`, at most that many of its running jobs share this key."""
        return self._prepare(
            task,
            args,
            kwargs,
            command=command,
            queue=queue,
            priority=priority,
            delay=delay,
            at=at,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            key=key,
            memory_limit=memory_limit,
            cpu_limit=cpu_limit,
            nice=nice,
            callback=callback,
            after=after,
            after_ended=after_ended,
            concurrency_key=concurrency_key,
            check=check,
        )

    def _prepare(
        self,
        task: str | Callable[..., Any] | None,
        args: Sequence[Any],
        kwargs: dict[str, Any] | None,
        *,
        command: Sequence[str] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        delay: Duration | None = None,
        at: When | None = None,
        retries: int | None = None,
        backoff: Duration | None = None,
        timeout: Duration | None = None,
        key: str | None = None,
        memory_limit: int | str | None = None,
        cpu_limit: Duration | None = None,
        nice: int | None = None,
        callback: str | None = None,
        after: Sequence[int | JobHandle] = (),
        after_ended: Sequence[int | JobHandle] = (),
        concurrency_key: str | None = None,
        check: bool = True,
        check_args: bool = True,
    ) -> JobInsert:
        if callable(task):
            fn = task
            task = task_reference(fn)
            if check and check_args:
                check_signature(fn, args, kwargs or {})
            check = False  # it is here: its module is found, and it has that name
        delay, backoff, timeout, cpu_limit = (
            seconds(name, value)
            for name, value in (
                ("delay", delay),
                ("backoff", backoff),
                ("timeout", timeout),
                ("cpu_limit", cpu_limit),
            )
        )
        at = timestamp(at)
        memory_limit = size("memory_limit", memory_limit)
        for name, number in (("priority", priority), ("retries", retries), ("nice", nice)):
            if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
                raise UsageError(f"{name}: expected a whole number, got {number!r}")
        for name, text in (("queue", queue), ("key", key), ("concurrency_key", concurrency_key)):
            if text is not None and (not isinstance(text, str) or not text):
                raise UsageError(f"{name}: expected a non-empty string, got {text!r}")
        if delay is not None and at is not None:
            raise UsageError("give delay or at, not both")
        run_at = at  # a delay counts from the insert's now (models.JobInsert.delay)
        for name, value in (
            ("retries", retries),
            ("backoff", backoff),
            ("timeout", timeout),
            ("delay", delay),
        ):
            if value is not None and value < 0:
                raise UsageError(f"{name} must be >= 0, got {value}")
        check_bounds(priority, retries, (delay, backoff, timeout, cpu_limit), at, memory_limit)
        for name, text in (("queue", queue), ("key", key)):
            if text is not None:
                check_text(name, text)
        for part in command or ():
            if isinstance(part, str):
                check_text("command", part)
                if "\0" in part:
                    raise UsageError(f"command: {part!r} holds a NUL byte, which no argv can")
        args_list = list(args)
        check_json("args", args_list)
        kwargs = dict(kwargs or {})
        check_json("kwargs", kwargs)
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
            delay or 0.0,
        )
        if callback is not None:
            check_callback(callback, self.config)
        try:
            job = build_job(
                task,
                list(command) if command is not None else None,
                sub,
                self.config,
                check=check,
                check_args=check_args,
            )
        except TaskCheckFailed as exc:
            raise TaskCheckFailed(exc.reason, CHECK_HINT) from None
        if callback is not None:
            job.options["callback"] = callback
        if concurrency_key is not None:
            check_text("concurrency_key", concurrency_key)
            job.options["concurrency_key"] = concurrency_key
        if after or after_ended:
            from jobrunner.store.dependencies import check as check_dependencies

            job.after = [j.id if isinstance(j, JobHandle) else j for j in after]
            job.after_ended = [j.id if isinstance(j, JobHandle) else j for j in after_ended]
            check_dependencies(job.after, job.after_ended)
        return job

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
        template = self._prepare(task, (), None, command=command, check_args=False, **options)
        fits = call_check(task, template, self.config) if options.get("check", True) else None
        encoded = []
        for args in calls:
            if not isinstance(args, list | tuple):
                raise UsageError(f"submit_many: each call is a list of args, got {args!r}")
            if fits is not None:
                fits(args)
            encoded.append(encode_json("args", args))
        return submit_calls(self.store, template, encoded, clock.now())

    def insert(self, jobs: Sequence[JobInsert]) -> list[int]:
        """Write prepared jobs in one transaction and wake the daemons; returns their ids
        (a job whose key was used before: that job's id, and nothing is written)."""
        return [r.id for r in submit(self.store, jobs, clock.now())]

    # -- inspecting -----------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        """The job as it is now; JobNotFound if there is none."""
        return get_job(self.store, job_id)

    def wait(self, job_id: int, timeout: Duration | None = None) -> Job:
        """The job once it has ended; TimeoutError if `timeout` passes first."""
        from jobrunner.ops.waiting import wait_for_end

        limit = seconds("timeout", timeout)
        job = wait_for_end(self.store, job_id, limit)
        if job.state not in FINAL:
            raise TimeoutError(f"job {job_id} still {job.state} after {limit or 0:g}s")
        return job

    def list(
        self, state: State | str | None = None, queue: str | None = None, limit: int = 50
    ) -> list[Job]:
        """Jobs, newest first, as `jobrunner list`: of one state and queue if given."""
        if state is not None and state not in State.__members__.values():
            known = ", ".join(s.value for s in State)
            raise UsageError(f"state: {state!r} is not one of {known}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise UsageError(f"limit: expected a whole number >= 1, got {limit!r}")
        return self.store.job_list(None if state is None else str(state), queue, limit)

    # -- controlling ----------------------------------------------------------------------

    def cancel(self, job_id: int, wait: bool = True) -> Cancellation:
        """Cancel a job, as `jobrunner cancel`: one waiting is cancelled at once; for one
        running, its daemon is told to kill it, and with `wait` this returns once it has
        (or the kill grace has passed). The result says which (`outcome`: cancelled,
        requested, already_ended) and the job's `state` after the call. An ended job is
        left as it is (outcome already_ended), not an error. JobNotFound if there is none."""
        from jobrunner.ops import control

        done = control.cancel(self.store, job_id, clock.now())
        if done.outcome is control.CancelOutcome.REQUESTED and wait:
            from jobrunner.ops.waiting import wait_for_stop

            state = wait_for_stop(self.store, self.config, job_id).state
            if state is State.CANCELLED:
                return control.Cancellation(control.CancelOutcome.CANCELLED, state)
            if state in FINAL:  # it ended on its own before the kill
                return control.Cancellation(control.CancelOutcome.ALREADY_ENDED, state)
        return done

    def retry(self, *job_ids: int, all_dead: bool = False) -> builtins.list[int]:
        """Give dead jobs a fresh round of attempts, as `jobrunner dlq retry`: the jobs
        named, or with `all_dead` every dead job except those that failed for good (not
        retried: their task cannot run as named; name them to retry them). Returns the
        ids queued again. A job named that is unknown (JobNotFound) or not dead
        (UsageError) moves nothing."""
        from jobrunner.ops import control

        if bool(job_ids) == all_dead:
            raise UsageError("retry: name job ids, or all_dead=True")
        for i in job_ids:
            if isinstance(i, bool) or not isinstance(i, int):
                raise UsageError(f"retry: job ids are whole numbers, got {i!r}")
        retried = control.retry(self.store, None if all_dead else job_ids, clock.now())
        for i in job_ids:
            if i in retried.unknown:
                raise JobNotFound(f"no job with id {i}")
            if i in retried.not_dead:
                raise UsageError(f"job {i} is {retried.not_dead[i]}, not in the dead-letter queue")
        return retried.moved


class JobHandle:
    """A submitted job. `created` is False when an idempotency key matched a job
    submitted before: this handle is that job."""

    def __init__(self, client: Client, job_id: int, created: bool = True) -> None:
        self.client = client
        self.id = job_id
        self.created = created

    def __repr__(self) -> str:
        return f"JobHandle(id={self.id})"

    def state(self) -> State:
        return self.client.get(self.id).state

    def job(self) -> Job:
        return self.client.get(self.id)

    def result(self, timeout: Duration | None = None) -> Any:
        """The job's return value once it succeeds; JobFailed if it ends otherwise."""
        job = self.client.wait(self.id, timeout)
        if job.state is not State.SUCCEEDED:
            raise JobFailed(job)
        return job.result

    def cancel(self, wait: bool = True) -> Cancellation:
        """`Client.cancel` of this job."""
        return self.client.cancel(self.id, wait)
