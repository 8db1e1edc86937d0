"""The fault-injection suite: kill -9 storms, I/O faults, held locks, long readers,
clock jumps and fuzzing, against real daemons and real SQLite files.

The integration fixtures (the task module, the config helpers) are shared from there.
"""

from tests.integration.conftest import *  # noqa: F403
