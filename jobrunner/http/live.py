"""/events (Server-Sent Events) and /ws (WebSocket) from the event feed, and the waits
other endpoints make on it (a long poll of GET /jobs/ID?wait=, logs?follow=1)."""

from __future__ import annotations

from typing import Any

from jobrunner import ops
from jobrunner.http.state import ServerState
from jobrunner.models import Job


async def wait_for_end(state: ServerState, job_id: int, timeout: float) -> Job:
    """The job once it has ended, or as it is when `timeout` seconds passed. (First
    version: no wait; the feed-driven wait replaces this.)"""
    return await state.read(ops.get_job, job_id)


routes: list[Any] = []
