"""Client("http://...") against a real server: the local Client's methods, return types
and exceptions, so an application moves from a file to a server by changing one string."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from jobrunner.client import Client, JobHandle
from jobrunner.client_http import HttpClient, Refused, ServerUnreachable
from jobrunner.errors import JobNotFound, UsageError
from jobrunner.lifecycle import State
from jobrunner.models import Job
from jobrunner.ops.control import CancelOutcome
from tests.helpers import env_for
from tests.http.conftest import Server


@pytest.fixture(autouse=True)
def commands_allowed(workdir: Path) -> None:
    """The server's config: these tests submit command jobs, which HTTP refuses unless
    allowed."""
    (workdir / "jobrunner.toml").write_text("[http]\nallow_commands = true\n")


def test_submit_and_get_over_http_match_the_local_client(
    serve: Callable[..., Server], db: Path
) -> None:
    server = serve()
    with Client(server.url) as remote:
        assert isinstance(remote, HttpClient)
        handle = remote.submit(command=["echo", "hi"], queue="web", priority=3, delay="1h")
        assert isinstance(handle, JobHandle) and handle.created
        again = remote.submit(command=["true"], key="k1")
        same = remote.submit(command=["true"], key="k1")
        assert (same.id, same.created) == (again.id, False)
        job = remote.get(handle.id)
        assert isinstance(job, Job)
        assert (job.state, job.queue, job.priority, job.command) == (
            State.SCHEDULED,
            "web",
            3,
            ["echo", "hi"],
        )
        assert handle.state() is State.SCHEDULED
        at = 2_000_000_000.25  # sent as ISO 8601 text, to the millisecond
        assert remote.get(remote.submit(command=["true"], at=at).id).run_at == at
    local = Client(str(db))
    try:  # the same job as the local client reads it
        assert local.get(handle.id).to_dict() == job.to_dict()
    finally:
        local.close()


def test_errors_over_http_are_the_local_clients_exceptions(
    serve: Callable[..., Server], workdir: Path, db: Path
) -> None:
    env = env_for(workdir, db)
    env["JOBRUNNER_TOKEN"] = "the-token"
    server = serve(env=env)
    with Client(server.url, token="the-token") as remote:
        with pytest.raises(JobNotFound, match="no job with id 424242"):
            remote.get(424242)
        with pytest.raises(UsageError, match="delay"):
            remote.submit(command=["true"], delay="soon")
        with pytest.raises(UsageError, match="exactly one of task or command"):
            remote.submit()
        with pytest.raises(TypeError, match="colour"):
            remote.submit(command=["true"], colour="red")
    with Client(server.url, token="wrong") as wrong, pytest.raises(Refused, match="token") as exc:
        wrong.get(1)
    assert exc.value.status == 401
    server.stop()
    with Client(server.url, token="the-token") as gone, pytest.raises(ServerUnreachable):
        gone.get(1)


def test_wait_returns_once_the_job_ends_and_times_out_before(
    serve: Callable[..., Server], db: Path
) -> None:
    """Without a long poll on the server, wait asks again after a short pause; with one,
    it holds the request: either way it returns when the job ends."""
    server = serve()
    with Client(server.url) as remote:
        job_id = remote.submit(command=["true"]).id
        with pytest.raises(TimeoutError, match=f"job {job_id} still queued"):
            remote.wait(job_id, timeout=0.2)
        got: list[Job] = []
        waiter = threading.Thread(target=lambda: got.append(remote.wait(job_id, timeout=30)))
        waiter.start()
        with Client(str(db)) as local:  # the job ends: cancelled here, in the database
            assert local.cancel(job_id).outcome is CancelOutcome.CANCELLED
        waiter.join(30)
        assert [j.state for j in got] == [State.CANCELLED]


def test_cancel_over_http(serve: Callable[..., Server]) -> None:
    server = serve()
    with Client(server.url) as remote:
        job_id = remote.submit(command=["true"]).id
        assert remote.cancel(job_id).outcome is CancelOutcome.CANCELLED
        assert remote.get(job_id).state is State.CANCELLED
        done = remote.cancel(job_id)
        assert (done.outcome, done.state) == (CancelOutcome.ALREADY_ENDED, State.CANCELLED)
        with pytest.raises(JobNotFound):
            remote.cancel(424242)


def test_submit_many_and_list_over_http(serve: Callable[..., Server]) -> None:
    server = serve()
    with Client(server.url) as remote:
        ids = remote.submit_many(None, [[], [], []], command=["true"], queue="bulk")
        assert len(ids) == 3 and ids == sorted(ids)
        listed = remote.list(queue="bulk", limit=2)
        assert [j.id for j in listed] == sorted(ids, reverse=True)[:2]
        assert remote.list(state="queued", queue="bulk", limit=10)[-1].id == ids[0]
        with pytest.raises(UsageError):
            remote.list(state="nonsense")


def test_retry_over_http_refuses_a_job_that_is_not_dead(serve: Callable[..., Server]) -> None:
    server = serve()
    with Client(server.url) as remote:
        job_id = remote.submit(command=["true"]).id
        with pytest.raises(UsageError):  # not in the dead-letter queue
            remote.retry(job_id)
        with pytest.raises(JobNotFound):
            remote.retry(424242)
