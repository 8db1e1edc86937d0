"""Fuzzing the parsers a user's text goes through: the TOML config, durations, sizes and
cron expressions. Whatever the input, the answer is a value or the one error type that
the CLI turns into a one-line message (ConfigError with file:line, UsageError naming the
field, ValueError for cron, which the config loader re-raises with file:line); never
another exception, never a message over several lines.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobrunner.config import Config, load_config
from jobrunner.cron import CronSpec
from jobrunner.durations import MAX_DURATION, MAX_SIZE, parse_duration, parse_size
from jobrunner.errors import ConfigError, UsageError
from tests.faults.fuzz_toml import NEAR_MISSES, documents, to_toml

FAST = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "jobrunner.toml"


def assert_loads_or_names_file_line(path: Path, lines: int) -> Config | None:
    try:
        return load_config(str(path))
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message, message
        m = re.match(rf"^{re.escape(str(path))}:(\d+): \S", message)
        assert m, f"no file:line in {message!r}"
        assert 1 <= int(m.group(1)) <= max(1, lines), message
        return None


@FAST
@given(documents, st.booleans())
def test_config_documents_from_the_real_vocabulary(
    config_file: Path, doc: dict[str, object], inline: bool
) -> None:
    text = to_toml(doc, inline_tables=inline)
    config_file.write_text(text, encoding="utf-8")
    cfg = assert_loads_or_names_file_line(config_file, len(text.splitlines()))
    if cfg is not None:  # what loaded is typed and in range
        assert isinstance(cfg.daemon.workers, int) and cfg.daemon.workers >= 1
        assert 2 <= cfg.daemon.lease <= MAX_DURATION
        assert cfg.synchronous in ("FULL", "NORMAL")
        assert isinstance(cfg.daemon.cgroups, bool)
        for task in cfg.tasks.values():
            assert (task.function is None) != (task.command is None)
            assert all("\0" not in part for part in task.command or [])


@FAST
@given(
    st.one_of(
        st.text(), st.lists(st.sampled_from(NEAR_MISSES + ["[", "]", "=", "\n"])).map("".join)
    )
)
def test_config_raw_text(config_file: Path, text: str) -> None:
    config_file.write_bytes(text.encode("utf-8", "surrogatepass"))
    assert_loads_or_names_file_line(config_file, len(text.splitlines()))


@FAST
@given(st.binary(max_size=200))
def test_config_raw_bytes(config_file: Path, data: bytes) -> None:
    config_file.write_bytes(data)
    assert_loads_or_names_file_line(config_file, data.count(b"\n") + 1)


duration_like = st.one_of(
    st.sampled_from(NEAR_MISSES),
    st.from_regex(r"\s?[0-9.]{0,25}\s?(ms|s|m|h|d|[a-zA-Z]{0,3})\s?", fullmatch=True),
    st.text(max_size=12),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@settings(max_examples=600, deadline=None)
@given(duration_like)
def test_durations_parse_or_name_the_field(value: object) -> None:
    try:
        seconds = parse_duration(value, where="--timeout")  # type: ignore[arg-type]
    except UsageError as exc:
        assert str(exc).startswith("--timeout: ") and "\n" not in str(exc)
    else:
        assert math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION


@settings(max_examples=600, deadline=None)
@given(duration_like)
def test_sizes_parse_or_name_the_field(value: object) -> None:
    try:
        size = parse_size(value, where="--memory-limit")  # type: ignore[arg-type]
    except UsageError as exc:
        assert str(exc).startswith("--memory-limit: ") and "\n" not in str(exc)
    else:
        assert isinstance(size, int) and 4096 <= size <= MAX_SIZE


cron_field = st.one_of(
    st.sampled_from(
        ["*", "*/5", "0", "59", "60", "1-5", "5-1", "1,2", "*/0", "?", "L", "MON", "JAN"]
    ),
    st.from_regex(r"[0-9*/,\-A-Za-z#?]{1,6}", fullmatch=True),
    st.text(max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(cron_field, max_size=7).map(" ".join), st.text(max_size=30)))
def test_cron_expressions_parse_or_raise_value_error(expr: str) -> None:
    try:
        spec = CronSpec(expr, "Europe/Berlin")
    except ValueError as exc:
        assert str(exc).startswith("cron ") and "\n" not in str(exc)
        return
    fires = spec.next_fires(1_800_000_000.0, 3)
    assert fires == sorted(set(fires)) and all(t > 1_800_000_000.0 for t in fires)


@pytest.mark.parametrize("expr", ["* * * * * *", "*/5 * * * * *", "* * * * *"])
def test_a_frequent_cron_scans_only_its_window_away_from_dst(expr: str) -> None:
    """Away from a DST change the scan covers the window, not 3 hours either side: a
    per-second cron took ~0.5 s of CPU per daemon tick (21,600 croniter steps)."""
    spec = CronSpec(expr, "Europe/Berlin")
    steps = 0
    real_get_next = croniter.get_next

    def counting(self: croniter, *args: object, **kwargs: object) -> object:
        nonlocal steps
        steps += 1
        return real_get_next(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(croniter, "get_next", counting)
        spec.fires(1_800_000_000.0, 1_800_000_010.0)  # 2027-01-15: no DST change near
    assert steps <= 12, steps


@pytest.mark.parametrize(
    "text",
    [
        'database = "a\\u0000b"',
        '[tasks.x]\ncommand = ["a\\u0000b"]',
        '[tasks.x]\nfunction = "m:f"\ncwd = "a\\u0000b"',
        '[tasks.x]\nfunction = "m:f"\nenv = { "A=B" = "c" }',
        '[tasks.x]\nfunction = "m:f"\nenv = { A = "a\\u0000b" }',
        'imports = ["a\\u0000b"]',
        '[daemon]\nlease = "99999999999999999999d"',
        '[tasks.x]\nfunction = "m:f"\nmemory_limit = 9223372036854775807',
        '[tasks.x]\nfunction = "m:f"\ntimeout = [1]',
        '[[schedules]]\nname = "s"\ncron = "* * * * *"\ntask = "m:f"\nbackoff = {}',
    ],
)
def test_values_the_os_cannot_use_are_config_errors(config_file: Path, text: str) -> None:
    config_file.write_text(text + "\n")
    assert assert_loads_or_names_file_line(config_file, len(text.splitlines())) is None
