"""jobrunner: a durable background-job runner in one command.

    from jobrunner import task

    @task(retries=3, timeout=60)
    def resize(path): ...

    resize.submit("cat.png")

Names are imported on first use, so `import jobrunner` stays cheap for the CLI.
"""

from __future__ import annotations

TYPE_CHECKING = False  # importing typing would cost every CLI call ~6 ms

__version__ = "0.1.0"
__all__ = ["Client", "JobFailed", "JobHandle", "State", "current_job", "progress", "task"]

if TYPE_CHECKING:
    from jobrunner.client import Client, JobFailed, JobHandle
    from jobrunner.decorator import current_job, task
    from jobrunner.lifecycle import State
    from jobrunner.worker.child import progress


def __getattr__(name: str) -> object:
    if name in ("Client", "JobFailed", "JobHandle"):
        from jobrunner import client

        return getattr(client, name)
    if name in ("current_job", "task"):
        from jobrunner import decorator

        return getattr(decorator, name)
    if name == "progress":
        from jobrunner.worker.child import progress

        return progress
    if name == "State":
        from jobrunner.lifecycle import State

        return State
    raise AttributeError(f"module 'jobrunner' has no attribute {name!r}")
