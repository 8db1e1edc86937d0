"""The TOML config: typed values, errors that say file:line, and where files are found."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from jobrunner.config import (
    DEFAULT_LEASE,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_WORKERS,
    Config,
    TaskConfig,
    config_path,
    database_only,
    database_path,
    import_folders,
    load_config,
)
from jobrunner.errors import ConfigError, UsageError


def write(tmp_path: Path, text: str, name: str = "jobrunner.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def config_error(path: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert isinstance(info.value, UsageError)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message  # one line on stderr
    return message


# -- values ------------------------------------------------------------------------------------


def test_no_config_gives_the_defaults() -> None:
    cfg = load_config(None)
    assert cfg.path is None
    assert cfg.database is None
    assert cfg.synchronous == "FULL"
    assert cfg.imports == []
    assert cfg.daemon.workers == DEFAULT_WORKERS >= 1
    assert cfg.daemon.lease == DEFAULT_LEASE
    assert cfg.daemon.shutdown_grace == DEFAULT_SHUTDOWN_GRACE
    assert cfg.daemon.queues is None
    assert cfg.queue_concurrency == {}
    assert cfg.tasks == {}


def test_an_empty_file_gives_the_defaults_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    cfg = load_config(path)
    assert cfg.path == path
    assert cfg.daemon.workers == DEFAULT_WORKERS
    assert cfg.daemon.lease == DEFAULT_LEASE
    assert cfg.tasks == {}


def test_a_full_config_is_read_into_typed_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        database = "data/jobs.db"
        synchronous = "normal"
        imports = ["myapp.tasks", "myapp.more"]

        [daemon]
        workers = 3
        queues = ["email", "default"]
        lease = "45s"
        shutdown_grace = "2m"
        poll_interval = "250ms"
        kill_grace = 3

        [queues.email]
        concurrency = 2

        [queues.reports]
        concurrency = 1

        [tasks.thumbnail]
        function = "myapp.images:thumbnail"
        queue = "media"
        priority = 5
        retries = 7
        backoff = "2s"
        timeout = "10m"
        cwd = "/srv/app"
        env = { MODE = "fast" }

        [tasks.convert]
        command = ["convert", "-resize", "50%"]
        """,
    )
    cfg = load_config(path)
    assert cfg.database == "data/jobs.db"
    assert cfg.synchronous == "NORMAL"
    assert cfg.imports == ["myapp.tasks", "myapp.more"]
    assert cfg.daemon.workers == 3
    assert cfg.daemon.queues == ["email", "default"]
    assert cfg.daemon.lease == 45.0
    assert cfg.daemon.shutdown_grace == 120.0
    assert cfg.daemon.poll_interval == 0.25
    assert cfg.daemon.kill_grace == 3.0
    assert cfg.queue_concurrency == {"email": 2, "reports": 1}
    assert cfg.tasks["thumbnail"] == TaskConfig(
        name="thumbnail",
        function="myapp.images:thumbnail",
        command=None,
        queue="media",
        priority=5,
        retries=7,
        backoff=2.0,
        timeout=600.0,
        cwd="/srv/app",
        env={"MODE": "fast"},
    )
    convert = cfg.tasks["convert"]
    assert convert.function is None
    assert convert.command == ["convert", "-resize", "50%"]
    # a task's unset options take the documented defaults
    assert (convert.queue, convert.priority, convert.retries, convert.backoff) == (
        "default",
        0,
        3,
        1.0,
    )
    assert convert.timeout is None


def test_a_queue_table_without_concurrency_gets_one(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[queues.slow]\n"))
    assert cfg.queue_concurrency == {"slow": 1}


# -- errors: file:line, the key, and a hint -------------------------------------------------


def test_unknown_top_level_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, '# my jobs\ndatabse = "x.db"\n')
    message = config_error(path)
    assert message.startswith(f"{path}:2: ")
    assert "databse" in message
    assert "did you mean 'database'" in message


def test_unknown_key_in_a_table_names_table_key_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [daemon]
        workers = 2

        [queues.email]
        concurency = 2
        """,
    )
    message = config_error(path)
    assert message.startswith(f"{path}:5: queues.email.concurency: ")
    assert "did you mean 'concurrency'" in message


def test_unknown_key_in_a_task(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [tasks.resize]
        function = "app.img:resize"
        retires = 3
        """,
    )
    message = config_error(path)
    assert message.startswith(f"{path}:3: tasks.resize.retires: ")
    assert "did you mean 'retries'" in message


def test_unknown_key_far_from_any_known_one_lists_the_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "[daemon]\nzzzzqqq = 1\n")
    message = config_error(path)
    assert message.startswith(f"{path}:2: daemon.zzzzqqq: ")
    assert "did you mean" not in message
    assert "workers" in message and "lease" in message


def test_task_with_both_function_and_command_fails_at_its_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [daemon]
        workers = 1

        [tasks.both]
        function = "app.mod:fn"
        command = ["echo"]
        """,
    )
    message = config_error(path)
    assert message.startswith(f"{path}:4: tasks.both: ")
    assert "function" in message and "command" in message


def test_task_with_neither_function_nor_command_fails(tmp_path: Path) -> None:
    path = write(tmp_path, '# x\n[tasks.empty]\nqueue = "default"\n')
    message = config_error(path)
    assert message.startswith(f"{path}:2: tasks.empty: ")
    assert "function" in message and "command" in message


@pytest.mark.parametrize(
    ("body", "line", "where"),
    [
        ('[daemon]\nworkers = 2\nlease = "soon"\n', 3, "daemon.lease"),
        ('[daemon]\nshutdown_grace = "-5s"\n', 2, "daemon.shutdown_grace"),
        ('# a\n# b\n[tasks.t]\nfunction = "a.b:c"\nbackoff = "2 weeks"\n', 5, "tasks.t.backoff"),
        ('[tasks.t]\nfunction = "a.b:c"\ntimeout = true\n', 3, "tasks.t.timeout"),
    ],
)
def test_bad_duration_fails_with_file_line_and_key(
    tmp_path: Path, body: str, line: int, where: str
) -> None:
    path = write(tmp_path, body)
    message = config_error(path)
    assert message.startswith(f"{path}:{line}: {where}: ")


@pytest.mark.parametrize(
    ("body", "line", "where"),
    [
        ("[daemon]\nworkers = 0\n", 2, "daemon.workers"),
        ('[daemon]\nworkers = "4"\n', 2, "daemon.workers"),
        ('[daemon]\nlease = "1s"\n', 2, "daemon.lease"),  # too short to heartbeat
        ("[queues.email]\nconcurrency = 0\n", 2, "queues.email.concurrency"),
        ('[tasks.t]\nfunction = "a.b:c"\nretries = -1\n', 3, "tasks.t.retries"),
        ('[tasks.t]\nfunction = "not a ref"\n', 2, "tasks.t.function"),
        ("[tasks.t]\ncommand = []\n", 2, "tasks.t.command"),
        ('[tasks.t]\nfunction = "a.b:c"\npriority = "high"\n', 3, "tasks.t.priority"),
        ('synchronous = "OFF"\n', 1, "synchronous"),
        ('# x\nimports = "myapp"\n', 2, "imports"),
    ],
)
def test_bad_values_fail_with_file_line_and_key(
    tmp_path: Path, body: str, line: int, where: str
) -> None:
    path = write(tmp_path, body)
    message = config_error(path)
    assert message.startswith(f"{path}:{line}: {where}: ")


@pytest.mark.parametrize(
    ("body", "line", "where"),
    [
        # a task written as an inline table under [tasks]
        (
            '# c\n[daemon]\nworkers = 1\n[tasks]\nx = { function = "a.b:c", command = ["x"] }\n',
            5,
            "tasks.x",
        ),
        ("# c\n[queues]\n\nemail = { concurrency = 0 }\n", 4, "queues.email.concurrency"),
        # dotted keys at the top level
        ("# c\n\ntasks.x.function = 5\n", 3, "tasks.x.function"),
        # a quoted table name
        ('# c\n[tasks."bad name"]\nfunction = "a.b:c"\n', 2, "tasks.bad name"),
        # spaces around the dot of a header
        ("# c\n[ queues . email ]\nconcurrency = 0\n", 3, "queues.email.concurrency"),
    ],
)
def test_line_numbers_for_inline_tables_dotted_keys_and_quoted_names(
    tmp_path: Path, body: str, line: int, where: str
) -> None:
    path = write(tmp_path, body)
    message = config_error(path)
    assert message.startswith(f"{path}:{line}: {where}: ")


def test_invalid_toml_fails_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[daemon]\nworkers = 2\nlease = = 3\n")
    message = config_error(path)
    assert message.startswith(f"{path}:3: invalid TOML")


@pytest.mark.parametrize(
    ("text", "line"),
    [("a = 'x", 1), ("a = '\x0cx", 1), ("a = 1\r\nb = 'x\n\n", 2), ("\n\na = 'x\n", 3)],
    ids=["one-line", "form-feed", "crlf-then-blank", "after-blank-lines"],
)
def test_toml_cut_off_at_the_end_names_its_last_line(tmp_path: Path, text: str, line: int) -> None:
    """An unterminated value is reported "at end of document": the line named is the last
    with text, counted by newlines as TOML counts them (a form feed is no line break)."""
    path = tmp_path / "jobrunner.toml"
    path.write_bytes(text.encode())
    assert config_error(str(path)).startswith(f"{path}:{line}: invalid TOML")


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    message = config_error(path)
    assert message.startswith(f"{path}: ")


def test_a_binary_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe\x00junk")
    assert config_error(str(path)).startswith(f"{path}:1: ")  # file:line, line of the bad byte


# -- where the config and the database are ------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("JOBRUNNER_DB", raising=False)
    monkeypatch.delenv("JOBRUNNER_CONFIG", raising=False)
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    return here


def test_database_explicit_beats_env_and_config(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBRUNNER_DB", "/env/jobs.db")
    cfg = Config(path="/etc/jr/jobrunner.toml", database="cfg.db")
    assert database_path("/explicit/jobs.db", cfg) == "/explicit/jobs.db"


def test_database_env_beats_config(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRUNNER_DB", "/env/jobs.db")
    cfg = Config(path="/etc/jr/jobrunner.toml", database="cfg.db")
    assert database_path(None, cfg) == "/env/jobs.db"


def test_database_from_config_is_relative_to_the_config_folder(
    clean_env: Path, tmp_path: Path
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    path = write(conf_dir, 'database = "data/jobs.db"\n')
    cfg = load_config(path)
    assert database_path(None, cfg) == str(conf_dir / "data" / "jobs.db")
    # and not relative to wherever the command runs
    assert not database_path(None, cfg).startswith(str(clean_env))


def test_database_from_config_relative_to_a_relative_config_path(
    clean_env: Path, tmp_path: Path
) -> None:
    (clean_env / "sub").mkdir()
    write(clean_env / "sub", 'database = "q.db"\n')
    cfg = load_config(os.path.join("sub", "jobrunner.toml"))
    assert database_path(None, cfg) == str(clean_env / "sub" / "q.db")


def test_database_absolute_in_config_is_kept(clean_env: Path, tmp_path: Path) -> None:
    target = str(tmp_path / "abs.db")
    cfg = load_config(write(tmp_path, f'database = "{target}"\n'))
    assert database_path(None, cfg) == target


def test_database_default_is_jobrunner_db_in_cwd(clean_env: Path) -> None:
    assert database_path(None, Config()) == "jobrunner.db"
    assert database_path(None, Config(path="/etc/jr/jobrunner.toml")) == "jobrunner.db"


def test_config_explicit_beats_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRUNNER_CONFIG", "/env/jr.toml")
    (clean_env / "jobrunner.toml").write_text("")
    assert config_path("/explicit/jr.toml") == "/explicit/jr.toml"


def test_config_env_beats_the_file_in_cwd(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRUNNER_CONFIG", "/env/jr.toml")
    (clean_env / "jobrunner.toml").write_text("")
    assert config_path(None) == "/env/jr.toml"


def test_config_in_cwd_is_used_only_when_it_exists(clean_env: Path) -> None:
    assert config_path(None) is None
    (clean_env / "jobrunner.toml").write_text("")
    found = config_path(None)
    assert found is not None
    assert os.path.samefile(found, clean_env / "jobrunner.toml")


@pytest.mark.parametrize(
    ("text", "database"),
    [
        ('database = "x.db"\n[daemon]\nworkers = "many"\n', "x.db"),  # a bad value
        ('database = "x.db"\n[daemon\n', "x.db"),  # not TOML: its own line still reads
        ('[daemon\ndatabase = "x.db"\n', None),  # inside a table: not the top-level key
        ("database = 3\n[daemon\n", None),
    ],
)
def test_database_only_reads_the_database_of_a_broken_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, database: str | None
) -> None:
    monkeypatch.delenv("JOBRUNNER_DB", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError):
        load_config(path)
    cfg = database_only(path)
    assert (cfg.path, cfg.database) == (path, database)
    expected = str(tmp_path / "x.db") if database else "jobrunner.db"
    assert database_path(None, cfg) == expected
    assert database_only(str(tmp_path / "missing.toml")).database is None


def test_imports_are_found_from_the_configs_folder_then_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = Config(path="conf/jobrunner.toml")
    assert import_folders(cfg) == [str(tmp_path / "conf"), str(tmp_path)]
    assert import_folders(Config(path="jobrunner.toml")) == [str(tmp_path)]
    assert import_folders(Config()) == [str(tmp_path)]


def test_queue_limits_across_daemons_per_daemon_and_rate(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            "[queues.sync]\nconcurrency = 4\n"
            '[queues.api]\nrate = "10/s"\n'
            '[queues.big]\nper_daemon = 1\nrate = "5/30s"\n',
        )
    )
    assert cfg.queue_concurrency == {"sync": 4}  # a table with other limits is not one at a time
    assert cfg.queue_per_daemon == {"big": 1}
    assert cfg.queue_rate == {"api": (10, 1.0), "big": (5, 30.0)}


@pytest.mark.parametrize(
    ("rate", "fragment"),
    [
        ('"10"', "starts per period"),
        ('"0/s"', "at least 1"),
        ('"ten/s"', "whole number"),
        ('"10/fortnight"', "not a duration"),
        ('"10/0s"', "longer than 0"),
        ("10", "starts per period"),
    ],
)
def test_a_bad_rate_names_its_line(tmp_path: Path, rate: str, fragment: str) -> None:
    path = write(tmp_path, f"[queues.api]\nrate = {rate}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "queues.api.rate" in str(err.value) and fragment in str(err.value), str(err.value)
