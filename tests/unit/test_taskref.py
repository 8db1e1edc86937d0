"""Turning TASK / --cmd plus submit options into a JobInsert (jobrunner/taskref.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jobrunner.config import Config, TaskConfig
from jobrunner.errors import UsageError
from jobrunner.taskref import Submission, build_job

RAISES_ON_IMPORT = (
    "raise RuntimeError('imported by submit!')\n\n\ndef run(*args, **kwargs):\n    pass\n\n\n"
    "def work(*args, **kwargs):\n    pass\n"
)


def named_config() -> Config:
    return Config(
        tasks={
            "thumbnail": TaskConfig(
                name="thumbnail",
                function="myapp.images:thumbnail",
                queue="media",
                priority=5,
                retries=7,
                backoff=2.0,
                timeout=600.0,
                cwd="/srv/app",
                env={"MODE": "fast"},
            ),
            "convert": TaskConfig(name="convert", command=["convert", "-resize", "50%"]),
        }
    )


def sub(**options: object) -> Submission:
    return Submission(args=[1, "two"], kwargs={"k": 3}, **options)  # type: ignore[arg-type]


# -- named tasks -------------------------------------------------------------------------------


def test_named_task_defaults_apply() -> None:
    job = build_job("thumbnail", None, sub(), named_config(), check=False)
    assert job.task == "myapp.images:thumbnail"
    assert job.command is None
    assert job.args == [1, "two"]
    assert job.kwargs == {"k": 3}
    assert (job.queue, job.priority, job.retries, job.backoff, job.timeout) == (
        "media",
        5,
        7,
        2.0,
        600.0,
    )
    assert job.options == {"task_name": "thumbnail", "cwd": "/srv/app", "env": {"MODE": "fast"}}
    assert job.key is None
    assert job.run_at is None


def test_submit_options_override_a_named_task() -> None:
    job = build_job(
        "thumbnail",
        None,
        sub(queue="urgent", priority=9, retries=1, backoff=0.5, timeout=5.0, key="k1", run_at=9.0),
        named_config(),
        check=False,
    )
    assert (job.queue, job.priority, job.retries, job.backoff, job.timeout) == (
        "urgent",
        9,
        1,
        0.5,
        5.0,
    )
    assert job.key == "k1"
    assert job.run_at == 9.0
    assert job.task == "myapp.images:thumbnail"  # what runs is still the named task's


def test_zero_overrides_are_not_mistaken_for_unset() -> None:
    job = build_job(
        "thumbnail", None, sub(priority=0, retries=0, backoff=0.0), named_config(), check=False
    )
    assert (job.priority, job.retries, job.backoff) == (0, 0, 0.0)


def test_named_command_task() -> None:
    job = build_job("convert", None, sub(), named_config())
    assert job.task is None
    assert job.command == ["convert", "-resize", "50%"]
    assert job.options == {"task_name": "convert"}
    assert (job.queue, job.priority, job.retries, job.backoff) == ("default", 0, 3, 1.0)


def test_plain_defaults_without_a_named_task() -> None:
    job = build_job(None, ["echo", "hi"], sub(), Config())
    assert job.command == ["echo", "hi"]
    assert job.task is None
    assert (job.queue, job.priority, job.retries, job.backoff, job.timeout) == (
        "default",
        0,
        3,
        1.0,
        None,
    )


# -- module:function and the module check ------------------------------------------------------


def test_module_in_cwd_is_found_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jr_boom_mod.py").write_text(RAISES_ON_IMPORT)
    monkeypatch.chdir(tmp_path)
    job = build_job("jr_boom_mod:run", None, sub(), Config())
    assert job.task == "jr_boom_mod:run"
    assert "jr_boom_mod" not in sys.modules


def test_module_in_a_package_is_found_without_importing_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "jr_boom_pkg" / "sub"
    package.mkdir(parents=True)
    (tmp_path / "jr_boom_pkg" / "__init__.py").write_text(RAISES_ON_IMPORT)
    (package / "__init__.py").write_text(RAISES_ON_IMPORT)
    (package / "jobs.py").write_text(RAISES_ON_IMPORT)
    monkeypatch.chdir(tmp_path)
    job = build_job("jr_boom_pkg.sub.jobs:work", None, sub(), Config())
    assert job.task == "jr_boom_pkg.sub.jobs:work"
    assert not {"jr_boom_pkg", "jr_boom_pkg.sub", "jr_boom_pkg.sub.jobs"} & set(sys.modules)


def test_unknown_module_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as info:
        build_job("jr_no_such_module_xyz.tasks:run", None, sub(), Config())
    assert "jr_no_such_module_xyz" in str(info.value)
    assert info.value.exit_code == 2


def test_no_check_skips_the_module_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = build_job("jr_elsewhere_only:run", None, sub(), Config(), check=False)
    assert job.task == "jr_elsewhere_only:run"


def test_module_check_follows_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that changes directory (or a long-lived client) gets fresh answers."""
    without, with_it = tmp_path / "a", tmp_path / "b"
    without.mkdir()
    with_it.mkdir()
    (with_it / "jr_moving_mod.py").write_text("def run(*args, **kwargs): pass\n")
    monkeypatch.chdir(without)
    with pytest.raises(UsageError):
        build_job("jr_moving_mod:run", None, sub(), Config())
    monkeypatch.chdir(with_it)
    assert build_job("jr_moving_mod:run", None, sub(), Config()).task == "jr_moving_mod:run"
    monkeypatch.chdir(without)
    with pytest.raises(UsageError):
        build_job("jr_moving_mod:run", None, sub(), Config())


@pytest.mark.parametrize(
    "garbage",
    ["not a task!", "thumbnail2", "module.only", ":fn", "mod:", "mod:fn:extra", "1mod:fn", ""],
)
def test_garbage_task_name_is_a_usage_error(garbage: str) -> None:
    with pytest.raises(UsageError) as info:
        build_job(garbage, None, sub(), named_config(), check=False)
    assert info.value.exit_code == 2


def test_unknown_name_lists_the_named_tasks() -> None:
    with pytest.raises(UsageError) as info:
        build_job("thumbnial", None, sub(), named_config())
    assert "convert" in str(info.value) and "thumbnail" in str(info.value)


def test_empty_command_and_no_task_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        build_job(None, [], sub(), Config())
    with pytest.raises(UsageError):
        build_job(None, None, sub(), Config())
