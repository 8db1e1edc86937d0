"""A nightly report: what jobrunner ran in the last day, by task and outcome, written to
reports/DAY.txt (the schedule in jobrunner.toml fires it at 02:30 Berlin time)."""

from __future__ import annotations

import os
import time
from collections import Counter

from jobrunner import Client, current_job


def nightly() -> str:
    client = Client()  # the database the daemon runs on (JOBRUNNER_DB or the config's)
    since = time.time() - 86400
    ended = [
        j
        for state in ("succeeded", "dead", "cancelled")
        for j in client.list(state=state, limit=10_000)
        if (j.finished_at or 0) >= since
    ]
    counts = Counter((j.task or " ".join(j.command or []), j.state.value) for j in ended)
    me = client.get(current_job().id)  # a scheduled fire: the night it is for
    day = time.strftime("%Y-%m-%d", time.localtime(me.scheduled_for or time.time()))
    os.makedirs("reports", exist_ok=True)
    path = os.path.join("reports", f"{day}.txt")
    with open(path, "w") as f:
        f.write(f"jobs ended in the 24 hours before {time.strftime('%Y-%m-%d %H:%M %Z')}\n")
        for (task, state), n in sorted(counts.items()):
            f.write(f"{n:6d}  {state:9s}  {task}\n")
        f.write(f"{sum(counts.values()):6d}  in all\n")
    print(f"wrote {path}")
    return path
