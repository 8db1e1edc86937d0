"""The config file from the CLI's side: commands that only read the database go on past a
broken config (one warning line), and `imports` and task modules are found from the
config's folder, as `database` is, wherever the command runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import assert_one_line_error
from tests.helpers import Daemon, cli, env_for

pytestmark = pytest.mark.usefixtures("tasks")


def env_without_db(workdir: Path) -> dict[str, str]:
    env = env_for(workdir, workdir / "unused.db")
    del env["JOBRUNNER_DB"]  # the config's `database` says which file
    return env


@pytest.mark.parametrize(
    "broken",
    [
        'database = "jobs.db"\n[daemon]\nworkers = "many"\n',  # valid TOML, a bad value
        'database = "jobs.db"\n[daemon\nworkers = 2\n',  # not TOML at all
    ],
    ids=["bad-value", "invalid-toml"],
)
def test_a_broken_config_warns_readers_and_stops_writers(
    workdir: Path, db: Path, broken: str
) -> None:
    env = env_without_db(workdir)
    config = workdir / "jobrunner.toml"
    config.write_text('database = "jobs.db"\n')
    assert cli(workdir, db, "submit", "--cmd", "--", "true", env=env).code == 0
    (workdir / "jobs.db.logs").mkdir(exist_ok=True)
    (workdir / "jobs.db.logs" / "1.log").write_text("out\n")
    config.write_text(broken)

    for argv in (["status", "--json"], ["list", "--json"], ["logs", "1"], ["dlq", "list"]):
        res = cli(workdir, db, *argv, env=env)
        assert res.code == 0, (argv, res)
        assert res.err.count("\n") == 1 and res.err.startswith("jobrunner: warning: "), res.err
        assert "jobrunner.toml:" in res.err and "Traceback" not in res.err
        assert res.out
    # the config's `database` was still the file read
    assert [j["id"] for j in cli(workdir, db, "list", "--json", env=env).json()] == [1]
    assert cli(workdir, db, "logs", "1", env=env).out == "out\n"
    for argv in (["submit", "--cmd", "--", "true"], ["cancel", "1"], ["config", "check"]):
        res = cli(workdir, db, *argv, env=env)
        assert_one_line_error(res, "jobrunner.toml:")


def test_imports_and_task_modules_are_found_from_the_configs_folder(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    """A daemon started elsewhere (a systemd unit's working directory, say) with
    --config imports what the config's folder holds, as `database` is found there."""
    app, elsewhere = workdir / "app", workdir / "elsewhere"
    app.mkdir()
    elsewhere.mkdir()
    (app / "myapp.py").write_text("def hello():\n    return 'hi'\n")
    (app / "jobrunner.toml").write_text(
        'database = "app.db"\nimports = ["myapp"]\n[daemon]\nworkers = 1\n'
    )
    env = env_without_db(elsewhere)
    env["JOBRUNNER_CONFIG"] = str(app / "jobrunner.toml")
    res = cli(elsewhere, db, "submit", "myapp:hello", env=env)
    assert res.code == 0, res.err  # the submit-time check looks in the config's folder too
    daemons.append(Daemon(elsewhere, db, env=env))  # exits early when an import fails
    res = cli(elsewhere, db, "wait", "1", "--timeout", "20s", env=env)
    assert (res.code, res.out) == (0, '"hi"\n'), res.err
    assert (app / "app.db").exists()
