"""[[schedules]] in the TOML config: typed values, and errors that name file:line and key.

Every error is one line: `PATH:LINE: schedules[I].KEY: what is wrong and what is allowed`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from jobrunner.config import ScheduleConfig, load_config
from jobrunner.errors import ConfigError, UsageError

GOOD_ENTRY = """\
[[schedules]]
name = "tick"
every = "1s"
task = "app.jobs:tick"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "jobrunner.toml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message, message
    return message


def assert_names(message: str, path: Path, line: int, where: str, *fragments: str) -> None:
    prefix = f"{path / 'jobrunner.toml'}:{line}: {where}: "
    assert message.startswith(prefix), f"{message!r} does not start with {prefix!r}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# -- values ---------------------------------------------------------------------------------------


def test_a_full_entry_is_read_into_typed_values(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
            [[schedules]]
            name = "nightly-report"
            cron = "0 2 * * *"
            timezone = "Europe/Berlin"
            task = "myapp.reports:nightly"
            args = [1, "two"]
            kwargs = { full = true }
            queue = "reports"
            priority = 5
            retries = 2
            backoff = "10s"
            timeout = "5m"
            misfire = "all"
            max_catchup = 7
            misfire_grace = "30s"
            overlap = "allow"
            jitter = "2m"

            [[schedules]]
            name = "ping"
            every = "10m"
            command = ["curl", "-fsS", "http://localhost/ping"]
            """,
        )
    )
    assert list(cfg.schedules) == ["nightly-report", "ping"]
    nightly = cfg.schedules["nightly-report"]
    assert isinstance(nightly, ScheduleConfig)
    assert (nightly.cron, nightly.every, nightly.timezone) == ("0 2 * * *", None, "Europe/Berlin")
    assert (nightly.task, nightly.command) == ("myapp.reports:nightly", None)
    assert (nightly.args, nightly.kwargs) == ([1, "two"], {"full": True})
    assert (nightly.queue, nightly.priority, nightly.retries) == ("reports", 5, 2)
    assert (nightly.backoff, nightly.timeout) == (10.0, 300.0)
    assert (nightly.misfire, nightly.max_catchup, nightly.misfire_grace) == ("all", 7, 30.0)
    assert (nightly.overlap, nightly.jitter) == ("allow", 120.0)
    assert nightly.expression == "0 2 * * *"

    ping = cfg.schedules["ping"]
    assert (ping.cron, ping.every, ping.command) == (
        None,
        600.0,
        ["curl", "-fsS", "http://localhost/ping"],
    )
    assert ping.expression == "every 600s"


def test_defaults(tmp_path: Path) -> None:
    sc = load_config(write(tmp_path, GOOD_ENTRY)).schedules["tick"]
    assert sc.timezone == "UTC"
    assert (sc.misfire, sc.max_catchup, sc.misfire_grace) == ("once", 100, 60.0)
    assert (sc.overlap, sc.jitter) == ("skip", 0.0)
    assert (sc.args, sc.kwargs) == ([], {})
    assert (sc.queue, sc.priority, sc.retries, sc.backoff, sc.timeout) == (None,) * 5


def test_no_schedules_is_fine(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "[daemon]\nworkers = 1\n")).schedules == {}


def test_a_schedule_may_name_a_task_entry(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
            [tasks.report]
            function = "myapp.reports:run"

            [[schedules]]
            name = "r"
            cron = "*/5 * * * *"
            task = "report"
            """,
        )
    )
    assert cfg.schedules["r"].task == "report"


def test_cron_with_seconds_and_an_every_of_bare_seconds(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
            [[schedules]]
            name = "a"
            cron = "* * * * * */10"
            task = "m:f"

            [[schedules]]
            name = "b"
            every = 90
            task = "m:f"
            """,
        )
    )
    assert cfg.schedules["a"].cron == "* * * * * */10"
    assert cfg.schedules["b"].every == 90.0


# -- errors: one line, file:line, the key, what is allowed ----------------------------------------


@pytest.mark.parametrize(
    ("cron", "fragments"),
    [
        ("61 * * * *", ("61 * * * *", "out of range")),
        ("* 24 * * *", ("* 24 * * *",)),
        ("* * * * mon-funday", ("mon-funday",)),
        ("* * * *", ("expected 5 fields", "minute hour day month weekday")),
        ("* * * * * * *", ("expected 5 fields", "6 with seconds")),
        ("@reboot", ("@reboot", "names no time")),
        ("@dayly", ("not a macro", "@daily")),
        ("* * * * * 99", ("out of range",)),
        ("0 0 31 4 *", ("never fires",)),  # April 31st
        # croniter's random and hashed values: no fixed times to key fires on
        ("* * * * * R", ("* * * * * R", "'R'", "random value", "write the value itself")),
        ("R/10 * * * *", ("'R/10'", "random value")),
        ("H 2 * * *", ("'H'", "hashed value")),
        ("0 0 * MAR H(0-3)", ("'H(0-3)'", "hashed value")),
    ],
)
def test_a_bad_cron_expression(tmp_path: Path, cron: str, fragments: tuple[str, ...]) -> None:
    message = error_of(
        tmp_path,
        f"""
        [[schedules]]
        name = "a"
        cron = "{cron}"
        task = "m:f"
        """,
    )
    assert_names(message, tmp_path, 3, "schedules[0].cron", *fragments)


def test_month_and_weekday_names_are_not_random_values(tmp_path: Path) -> None:
    """MAR, THU and FRI hold the letters of croniter's R and H: they are still names."""
    cfg = load_config(
        write(
            tmp_path,
            """
            [[schedules]]
            name = "a"
            cron = "0 0 * MAR THU,FRI"
            task = "m:f"
            """,
        )
    )
    assert cfg.schedules["a"].cron == "0 0 * MAR THU,FRI"


def test_an_unknown_timezone(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        """
        [[schedules]]
        name = "a"
        cron = "0 2 * * *"
        timezone = "Europe/Berlinn"
        task = "m:f"
        """,
    )
    assert_names(message, tmp_path, 4, "schedules[0].timezone", "'Europe/Berlinn'", "IANA name")


@pytest.mark.parametrize("tz", ["", "../../etc/passwd", "/etc/localtime", "CEST+2"])
def test_odd_timezones_are_unknown_timezones(tmp_path: Path, tz: str) -> None:
    message = error_of(
        tmp_path,
        f"""
        [[schedules]]
        name = "a"
        every = "1m"
        timezone = "{tz}"
        task = "m:f"
        """,
    )
    assert_names(message, tmp_path, 4, "schedules[0].timezone", "unknown timezone")


def test_neither_task_nor_command(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        """
        # nightly jobs
        [[schedules]]
        name = "a"
        cron = "0 2 * * *"
        """,
    )
    assert_names(message, tmp_path, 2, "schedules[0]", "'a'", "exactly one of 'task' or 'command'")


def test_both_task_and_command(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        """
        [[schedules]]
        name = "a"
        cron = "0 2 * * *"
        task = "m:f"
        command = ["true"]
        """,
    )
    assert_names(message, tmp_path, 1, "schedules[0]", "exactly one of 'task' or 'command'")


def test_both_cron_and_every(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        """
        [[schedules]]
        name = "a"
        cron = "0 2 * * *"
        every = "1h"
        task = "m:f"
        """,
    )
    assert_names(message, tmp_path, 1, "schedules[0]", "exactly one of 'cron' or 'every'")


def test_neither_cron_nor_every(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[[schedules]]\nname = "a"\ntask = "m:f"\n')
    assert_names(message, tmp_path, 1, "schedules[0]", "exactly one of 'cron' or 'every'")


def test_duplicate_names_point_at_the_second(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        GOOD_ENTRY
        + """
[[schedules]]
name = "other"
every = "1m"
task = "m:f"

[[schedules]]
name = "tick"
every = "2s"
task = "m:f"
""",
    )
    assert_names(message, tmp_path, 12, "schedules[2].name", "duplicate schedule name 'tick'")


def test_an_error_in_a_later_entry_names_that_entry_and_its_line(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        GOOD_ENTRY
        + """
[[schedules]]
name = "b"
cron = "99 * * * *"
task = "m:f"
""",
    )
    assert_names(message, tmp_path, 8, "schedules[1].cron", "99 * * * *")


@pytest.mark.parametrize(
    ("key", "value", "fragments"),
    [
        ("misfires", '"all"', ("did you mean 'misfire'?", "allowed: ", "max_catchup")),
        ("timezon", '"UTC"', ("did you mean 'timezone'?",)),
        ("overlaps", '"skip"', ("did you mean 'overlap'?",)),
        ("kwarg", "{}", ("did you mean 'kwargs'?",)),
        ("catchup", "3", ("did you mean 'max_catchup'?",)),
        ("zzz", "1", ("unknown key; allowed: args, backoff, command, cron, every",)),
    ],
)
def test_an_unknown_key_with_did_you_mean(
    tmp_path: Path, key: str, value: str, fragments: tuple[str, ...]
) -> None:
    message = error_of(tmp_path, GOOD_ENTRY + f"{key} = {value}\n")
    assert_names(message, tmp_path, 5, f"schedules[0].{key}", "unknown key", *fragments)


def test_an_unknown_key_in_an_inline_entry_points_at_the_schedules_line(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        """
        database = "jobs.db"

        schedules = [{ name = "a", every = "1s", task = "m:f", bogus = 1 }]

        [daemon]
        workers = 1
        """,
    )
    assert message.startswith(f"{tmp_path / 'jobrunner.toml'}:3: schedules[0].bogus: unknown key")


@pytest.mark.parametrize(
    ("key", "value", "fragments"),
    [
        ("cron", "5", ("expected a string, got 5",)),
        ("every", "true", ("expected a duration", "30s, 5m")),
        ("every", '"soon"', ("'soon' is not a duration",)),
        ("every", '"500ms"', ("at least 1s",)),
        ("every", "0", ("at least 1s",)),
        ("timezone", "1", ("expected a string, got 1",)),
        ("task", "3", ("expected a string, got 3",)),
        ("command", '"echo hi"', ("expected a list of non-empty strings",)),
        ("command", "[]", ("must name a program",)),
        ("args", '"x"', ("expected an array",)),
        ("kwargs", "[1]", ("expected a table",)),
        ("queue", "1", ("expected a string",)),
        ("priority", "1.5", ("expected a whole number, got 1.5",)),
        ("retries", "-1", ("at least 0",)),
        ("retries", "true", ("expected a whole number",)),
        ("backoff", '"fast"', ("not a duration",)),
        ("timeout", "-3", ("non-negative",)),
        ("misfire", '"never"', ("must be one of skip, once, all", "'never'")),
        ("misfire", "1", ("expected a string",)),
        ("overlap", '"queue"', ("must be one of skip, allow", "'queue'")),
        ("overlap", "false", ("expected a string",)),
        ("max_catchup", "0", ("at least 1, got 0",)),
        ("max_catchup", '"5"', ("expected a whole number, got '5'",)),
        ("misfire_grace", "-1", ("non-negative",)),
        ("jitter", '"abc"', ("not a duration",)),
    ],
)
def test_a_wrong_value(tmp_path: Path, key: str, value: str, fragments: tuple[str, ...]) -> None:
    base = {"name": '"a"', "every": '"1m"', "task": '"m:f"'}
    if key in ("cron", "every"):
        base.pop("every")
    if key in ("task", "command"):
        base.pop("task")
    lines = ["[[schedules]]", *(f"{k} = {v}" for k, v in base.items()), f"{key} = {value}"]
    message = error_of(tmp_path, "\n".join(lines) + "\n")
    assert_names(message, tmp_path, len(lines), f"schedules[0].{key}", *fragments)


@pytest.mark.parametrize(
    ("name_line", "line", "where"),
    [
        ("", 1, "schedules[0]"),
        ('name = "a b"', 2, "schedules[0].name"),
        ("name = 7", 2, "schedules[0].name"),
    ],
)
def test_a_missing_or_bad_name(tmp_path: Path, name_line: str, line: int, where: str) -> None:
    message = error_of(tmp_path, f'[[schedules]]\n{name_line}\nevery = "1s"\ntask = "m:f"\n')
    assert_names(message, tmp_path, line, where, "needs a name of letters, digits")


def test_schedules_must_be_an_array_of_tables(tmp_path: Path) -> None:
    message = error_of(tmp_path, "schedules = 3\n")
    assert_names(message, tmp_path, 1, "schedules", "expected [[schedules]]")
    message = error_of(tmp_path, "schedules = [1]\n")
    assert_names(message, tmp_path, 1, "schedules", "expected [[schedules]] tables")


def test_a_task_that_is_neither_a_function_nor_a_task_entry(tmp_path: Path) -> None:
    """Caught when the config is read (and by `config check`), not at the first fire,
    where the daemon could only fail the tick."""
    message = error_of(
        tmp_path,
        """
        [tasks.report]
        function = "myapp.reports:run"

        [[schedules]]
        name = "r"
        every = "1m"
        task = "reprot"
        """,
    )
    assert_names(
        message, tmp_path, 7, "schedules[0].task", "'reprot'", "package.module:function", "report"
    )


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD_ENTRY + 'cron = "0 2 * * *\n')
    assert message.startswith(f"{tmp_path / 'jobrunner.toml'}:5: invalid TOML")
