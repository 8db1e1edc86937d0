"""What a submit matched: the job an idempotency key already named.

Kept apart from `ops/__init__.py` (what every `jobrunner submit` loads): this is read
only when a key matched. (Not `ops/submit.py`: a submodule of that name would replace
the function `ops.submit` once imported.)"""

from __future__ import annotations

import json

from jobrunner.jsonutil import dumps
from jobrunner.ops import get_job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobrunner.models import Job, JobInsert
    from jobrunner.store.base import Store


def other_call(store: Store, job: JobInsert, matched: int) -> Job | None:
    """The job `matched` (returned for `job`'s idempotency key instead of a new one) when
    it runs another call: another task or command, other args or kwargs. None when it is
    the same call: a retried submit, which is what a key is for."""
    existing = get_job(store, matched)
    # as stored: JSON turns tuples into lists
    args, kwargs = json.loads(dumps([job.args, job.kwargs]))
    same = (existing.task, existing.command, existing.args, existing.kwargs) == (
        job.task,
        job.command,
        args,
        kwargs,
    )
    return None if same else existing
