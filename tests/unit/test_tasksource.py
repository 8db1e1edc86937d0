"""The check at submit: the function is looked up, and the call fitted to it, from the
module's source, never by importing it (jobrunner/tasksource.py, taskref.check_task)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jobrunner.taskref import TaskCheckFailed, check_task
from jobrunner.tasksource import _plain_def

TASKS = """\
raise RuntimeError("imported by submit!")

from jobrunner import task
from os.path import join as joined


def crunch(a, b=1, *, mode, **options):
    pass


def strict(a, /, b, *, c=3):
    pass


def spread(*args, **kwargs):
    pass


@task(queue="images")
def thumbnail(path, size=64):
    pass


@some.other_decorator
def wrapped(a):
    pass


class Report:
    def run(self):
        pass


if joined:
    def maybe(a):
        pass
else:
    def maybe(a, b):
        pass

try:
    import json as fast_json
except ImportError:
    fast_json = None


def rebound(a):
    pass


rebound = staticmethod(rebound)


@task(
    queue="x",
)
def multi(a):
    pass


def oneliner(a): return a  # noqa


def long_header(
    a,
    b=")",  # a comment: with a colon
):
    pass
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "jr_src_tasks.py").write_text(TASKS)
    monkeypatch.chdir(tmp_path)
    return "jr_src_tasks"


def refused(function: str, args: list[object] | None = None, **kwargs: object) -> str:
    with pytest.raises(TaskCheckFailed) as info:
        check_task(function, args, kwargs)
    assert info.value.exit_code == 2
    return info.value.reason


def test_a_name_the_module_does_not_define_is_refused_without_importing_it(module: str) -> None:
    assert refused(f"{module}:crunchh") == (
        f"task {module}:crunchh: module {module!r} has no attribute 'crunchh'"
    )
    # a word in the text that is no module-level name (a parameter) is no function either
    assert "has no attribute 'mode'" in refused(f"{module}:mode")
    assert "has no attribute 'Missing'" in refused(f"{module}:Missing.run")
    assert module not in sys.modules


@pytest.mark.parametrize(
    ("function", "args", "kwargs", "problem"),
    [
        ("crunch", [1], {}, "crunch() missing 1 required keyword-only argument: 'mode'"),
        ("crunch", [], {"mode": 1}, "crunch() missing 1 required positional argument: 'a'"),
        ("crunch", [1, 2, 3], {"mode": 1}, "crunch() takes 2 positional arguments but 3 were"),
        ("crunch", [1], {"a": 1, "mode": 1}, "crunch() got multiple values for argument 'a'"),
        ("strict", [1, 2], {"d": 1}, "strict() got an unexpected keyword argument 'd'"),
        ("strict", [], {"a": 1, "b": 2}, "strict() got an unexpected keyword argument 'a'"),
        ("thumbnail", ["a.png"], {"priority": 3}, "got an unexpected keyword argument 'priority'"),
        ("multi", [1, 2], {}, "multi() takes 1 positional argument but 2 were given"),
        ("oneliner", [], {}, "oneliner() missing 1 required positional argument: 'a'"),
        ("long_header", [1, 2, 3], {}, "long_header() takes 2 positional arguments but 3"),
    ],
)
def test_a_call_that_does_not_fit_the_def_is_refused(
    module: str, function: str, args: list[object], kwargs: dict[str, object], problem: str
) -> None:
    assert problem in refused(f"{module}:{function}", args, **kwargs)


@pytest.mark.parametrize(
    ("function", "args", "kwargs"),
    [
        ("crunch", [1], {"mode": 1, "extra": 2}),  # **options takes it
        ("strict", [1, 2], {"c": 4}),
        ("spread", [1, 2, 3], {"any": 1}),
        ("thumbnail", ["a.png"], {"size": 32}),
        # what the source cannot settle is let through, for the daemon to judge
        ("wrapped", [1, 2, 3], {}),  # a decorator may change the signature
        ("maybe", [1, 2, 3], {}),  # two defs
        ("Report", [1], {}),  # a class
        ("Report.run", [1, 2], {}),  # a dotted path: only its first name is looked up
        ("joined", [], {"x": 1}),  # imported
        ("fast_json", [], {}),  # bound in a try block
        ("rebound", [1, 2], {}),  # bound again after its def
        ("long_header", [1], {"b": 2}),
    ],
)
def test_a_call_that_fits_or_cannot_be_judged_passes(
    module: str, function: str, args: list[object], kwargs: dict[str, object]
) -> None:
    check_task(f"{module}:{function}", args, kwargs)


def test_a_module_with_names_the_source_does_not_show_is_let_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jr_src_lazy.py").write_text("def __getattr__(name):\n    return print\n")
    (tmp_path / "jr_src_star.py").write_text("from os.path import *\n")
    (tmp_path / "jr_src_pkg").mkdir()
    (tmp_path / "jr_src_pkg" / "__init__.py").write_text("")
    (tmp_path / "jr_src_pkg" / "jobs.py").write_text("def run():\n    pass\n")
    (tmp_path / "jr_src_broken.py").write_text("def run(:\n")
    monkeypatch.chdir(tmp_path)
    for function in (
        "jr_src_lazy:anything",
        "jr_src_star:join",
        "jr_src_pkg:jobs",  # a submodule, an attribute once imported
        "jr_src_broken:run",  # the daemon's import says what is wrong
    ):
        check_task(function, [1], {})
    assert "has no attribute 'work'" in refused("jr_src_pkg:work", [])


def test_a_changed_module_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "jr_src_edited.py"
    source.write_text("def run(a):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    check_task("jr_src_edited:run", [1], {})
    source.write_text("def run(a, b):\n    pass\n\n\ndef other():\n    pass\n")
    assert "missing 1 required positional argument: 'b'" in refused("jr_src_edited:run", [1])


def test_a_plain_def_is_read_from_its_header_alone_as_the_full_parse_reads_it() -> None:
    """The fast path (no parse of the whole module) is taken only where it is sure, and
    then finds the same parameters as the parse of the whole module."""
    import ast

    module = ast.parse(TASKS)
    defs = {n.name: n for n in module.body if isinstance(n, ast.FunctionDef)}
    for name in ("crunch", "strict", "spread", "thumbnail", "oneliner", "long_header"):
        fast = _plain_def(TASKS, name)
        assert fast is not None, name
        assert ast.dump(fast) == ast.dump(defs[name].args), name
    for name in ("wrapped", "maybe", "rebound", "multi", "joined", "Report", "fast_json"):
        assert _plain_def(TASKS, name) is None, name
