"""jobrunner: a durable background-job runner in one command.

    from jobrunner import task

    @task(retries=3, timeout=60)
    def resize(path): ...

    resize.submit("cat.png")

Names are imported on first use, so `import jobrunner` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "JobFailed", "JobHandle", "State", "current_job", "task"]

if TYPE_CHECKING:
    from jobrunner.client import Client, JobFailed, JobHandle, current_job, task
    from jobrunner.lifecycle import State


def __getattr__(name: str) -> Any:
    if name in ("Client", "JobFailed", "JobHandle", "current_job", "task"):
        from jobrunner import client

        return getattr(client, name)
    if name == "State":
        from jobrunner.lifecycle import State

        return State
    raise AttributeError(f"module 'jobrunner' has no attribute {name!r}")
