"""Hypothesis strategies for config files: TOML documents built from the real key
vocabulary (jobrunner/config.py) with values of random types, and a small TOML writer."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from hypothesis import strategies as st

from jobrunner import config
from jobrunner.config_schedules import SCHEDULE_KEYS

TOP_KEYS = sorted(config.TOP_KEYS)
DAEMON_KEYS = sorted(config.DAEMON_KEYS)
TASK_KEYS = sorted(config.TASK_KEYS)
RETENTION_KEYS = sorted(config.RETENTION_KEYS)
TYPO_KEYS = ["wrokers", "lease ", "Workers", "cron2", "ünïcode", "a.b", ""]

# Strings that are almost right: the parsers' edge cases, not just noise.
NEAR_MISSES = [
    "30s",
    "0s",
    "250ms",
    "5m",
    "2h",
    "7d",
    "1.5s",
    ".5s",
    "-1s",
    "1e3",
    "inf",
    "nan",
    "",
    " 3s ",
    "3 s",
    "30S",
    "99999999999999999999d",
    "1" * 400,
    "512MB",
    "2GiB",
    "0",
    "4kB",
    "3kb",
    "FULL",
    "normal",
    "fsync",
    "* * * * *",
    "0 2 * * *",
    "*/0 * * * *",
    "60 * * * *",
    "0 0 31 2 *",
    "* * * *",
    "* * * * * * *",
    "0 0 * * MON-FRI",
    "@daily",
    "L * * * *",
    "Europe/Berlin",
    "Mars/Olympus",
    "UTC",
    "../../etc/passwd",
    "",
    "myapp.tasks:run",
    "not a ref",
    "mod:",
    ":fn",
    "a.b:c.d",
    "skip",
    "once",
    "all",
    "allow",
    "never",
    "\x00",
    "\ud7ff",
    "é",
    "name-ok",
    "bad name",
    "x" * 300,
]

scalars = st.one_of(
    st.sampled_from(NEAR_MISSES),
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 19, 20, 1023, 1024, 2**31, -(2**31) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(TASK_KEYS + TYPO_KEYS), inner, max_size=3),
    ),
    max_leaves=8,
)


def _table(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys + TYPO_KEYS[:2]), values, max_size=len(keys))


documents = st.fixed_dictionaries(
    {},
    optional={
        **{k: values for k in TOP_KEYS},
        "daemon": st.one_of(_table(DAEMON_KEYS), values),
        "retention": st.one_of(_table(RETENTION_KEYS), values),
        "queues": st.one_of(
            st.dictionaries(
                st.sampled_from(["email", "default", "a b"]),
                st.one_of(_table(["concurrency"]), values),
                max_size=3,
            ),
            values,
        ),
        "tasks": st.one_of(
            st.dictionaries(
                st.sampled_from(["thumb", "bad name", "x-1", "_"]),
                st.one_of(_table(TASK_KEYS), values),
                max_size=3,
            ),
            values,
        ),
        "schedules": st.one_of(st.lists(_table(sorted(SCHEDULE_KEYS)), max_size=3), values),
        "unknown": values,
    },
)


def _key(key: str) -> str:
    if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        return key
    return json.dumps(key)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        # json escapes are valid TOML basic-string escapes, except a lone surrogate
        return json.dumps(v, ensure_ascii=True).replace("\\ud", "\\u00d")
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(doc: dict[str, Any], inline_tables: bool) -> str:
    """TOML text for `doc`: top-level scalars first, then [tables] and [[schedules]],
    or everything inline when `inline_tables`."""
    head, body = [], []
    for key, v in doc.items():
        if (
            inline_tables
            or not isinstance(v, dict | list)
            or key not in ("daemon", "retention", "queues", "tasks", "schedules")
        ):
            head.append(f"{_key(key)} = {_value(v)}")
        elif isinstance(v, list):
            if all(isinstance(e, dict) for e in v):
                for entry in v:
                    body.append(f"\n[[{_key(key)}]]")
                    body.extend(f"{_key(k)} = {_value(x)}" for k, x in entry.items())
            else:
                head.append(f"{_key(key)} = {_value(v)}")
        elif key in ("queues", "tasks"):
            for name, sub in v.items():
                if isinstance(sub, dict):
                    body.append(f"\n[{_key(key)}.{_key(name)}]")
                    body.extend(f"{_key(k)} = {_value(x)}" for k, x in sub.items())
                else:
                    head.append(f"{_key(key)}.{_key(name)} = {_value(sub)}")
        else:
            body.append(f"\n[{_key(key)}]")
            body.extend(f"{_key(k)} = {_value(x)}" for k, x in v.items())
    return "\n".join(head + body) + "\n"
