"""Bad input: exit 2, one line on stderr saying what and where, no traceback, nothing written."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.support import assert_one_line_error, db_files, job_count, records
from tests.helpers import cli

pytestmark = pytest.mark.usefixtures("tasks")

GOOD_LINES = '{"task": "tasks:ok"}\n{"command": ["true"]}\n'


@dataclass
class Bad:
    argv: list[str]
    expect: list[str]  # fragments the one-line message must contain
    stdin: str | None = None
    files: dict[str, str] = field(default_factory=dict)


CASES = {
    "malformed-args": Bad(["submit", "tasks:ok", "--args", "[1,"], ["--args", "JSON"]),
    "args-not-array": Bad(["submit", "tasks:ok", "--args", '{"a": 1}'], ["--args", "array"]),
    "kwargs-not-object": Bad(["submit", "tasks:ok", "--kwargs", "[1]"], ["--kwargs", "object"]),
    "malformed-kwargs": Bad(["submit", "tasks:ok", "--kwargs", "{x}"], ["--kwargs", "JSON"]),
    "unknown-module": Bad(["submit", "nosuch.mod:fn"], ["nosuch.mod", "--no-check"]),
    "garbage-task": Bad(["submit", "no such task!"], ["no such task!"]),
    "unknown-named-task": Bad(["submit", "thumbnail"], ["thumbnail"]),
    "bad-delay": Bad(["submit", "tasks:ok", "--delay", "5x"], ["--delay", "5x"]),
    "negative-timeout": Bad(["submit", "tasks:ok", "--timeout", "-1"], ["--timeout", "-1"]),
    "bad-backoff": Bad(["submit", "tasks:ok", "--backoff", "soon"], ["--backoff", "soon"]),
    "negative-retries": Bad(["submit", "tasks:ok", "--retries", "-1"], ["--retries", "-1"]),
    "non-numeric-retries": Bad(["submit", "tasks:ok", "--retries", "two"], ["--retries"]),
    "non-numeric-priority": Bad(["submit", "tasks:ok", "--priority", "hi"], ["--priority"]),
    "delay-and-at": Bad(
        ["submit", "tasks:ok", "--delay", "5s", "--at", "2099-01-01T00:00:00Z"],
        ["--delay", "--at"],
    ),
    "bad-at": Bad(["submit", "tasks:ok", "--at", "yesterday"], ["--at", "yesterday"]),
    "bad-at-date": Bad(["submit", "tasks:ok", "--at", "2024-02-30T00:00:00Z"], ["--at"]),
    "cmd-without-program": Bad(["submit", "--cmd"], ["--cmd"]),
    "two-tasks": Bad(["submit", "tasks:ok", "tasks:quiet"], ["TASK"]),
    "file-with-task": Bad(["submit", "tasks:ok", "--file", "-"], ["--file"], stdin=GOOD_LINES),
    "missing-file": Bad(["submit", "--file", "nope.jsonl"], ["nope.jsonl"]),
    "file-bad-line-3": Bad(
        ["submit", "--file", "jobs.jsonl"],
        ["jobs.jsonl:3", "JSON"],
        files={"jobs.jsonl": GOOD_LINES + '{"task": "tasks:ok", \n'},
    ),
    "file-bad-module-line-3": Bad(
        ["submit", "--file", "jobs.jsonl"],
        ["jobs.jsonl:3", "nosuch"],
        files={"jobs.jsonl": GOOD_LINES + '{"task": "nosuch:fn"}\n'},
    ),
    "file-bad-delay-line-3": Bad(
        ["submit", "--file", "jobs.jsonl"],
        ["jobs.jsonl:3", "delay"],
        files={"jobs.jsonl": GOOD_LINES + '{"task": "tasks:ok", "delay": "later"}\n'},
    ),
    "file-unknown-key-line-3": Bad(
        ["submit", "--file", "jobs.jsonl"],
        ["jobs.jsonl:3", "retrys"],
        files={"jobs.jsonl": GOOD_LINES + '{"task": "tasks:ok", "retrys": 1}\n'},
    ),
    "stdin-bad-line-3": Bad(
        ["submit", "--file", "-"], ["<stdin>:3"], stdin=GOOD_LINES + '["tasks:ok"]\n'
    ),
    "config-invalid-toml": Bad(
        ["--config", "bad.toml", "submit", "tasks:ok"],
        ["bad.toml:3", "TOML"],
        files={"bad.toml": '[daemon]\nworkers = 2\nlease = = "5s"\n'},
    ),
    "config-unknown-key": Bad(
        ["--config", "bad.toml", "submit", "tasks:ok"],
        ["bad.toml:4", "retrys", "did you mean 'retries'"],
        files={"bad.toml": '[tasks.t]\nfunction = "tasks:ok"\n\nretrys = 2\n'},
    ),
    "config-bad-duration": Bad(
        ["--config", "bad.toml", "submit", "tasks:ok"],
        ["bad.toml:3", "timeout"],
        files={"bad.toml": '[tasks.t]\nfunction = "tasks:ok"\ntimeout = "forever"\n'},
    ),
    "default-config-invalid": Bad(
        ["submit", "tasks:ok"],
        ["jobrunner.toml:2", "TOML"],
        files={"jobrunner.toml": "[daemon]\nworkers = [\n"},
    ),
    "default-config-unknown-key": Bad(
        ["submit", "tasks:ok"],
        ["jobrunner.toml:2", "did you mean 'workers'"],
        files={"jobrunner.toml": "[daemon]\nworker = 2\n"},
    ),
    "missing-config": Bad(["--config", "absent.toml", "submit", "tasks:ok"], ["absent.toml"]),
    "unknown-command": Bad(["frobnicate"], ["frobnicate"]),
    "unknown-option": Bad(["submit", "tasks:ok", "--colour", "red"], ["--colour"]),
    "mistyped-command": Bad(["stauts"], ["'stauts'", "did you mean 'status'?"]),
    "mistyped-action": Bad(["dlq", "purg"], ["'purg'", "did you mean 'purge'?"]),
    "mistyped-choice": Bad(["list", "--state", "runing"], ["--state", "did you mean 'running'?"]),
    # no prefix abbreviations: --queu is not --queue (argparse's allow_abbrev)
    "abbreviated-option": Bad(
        ["submit", "tasks:ok", "--queu", "x"], ["--queu", "did you mean --queue?"]
    ),
    "abbreviated-option-in-action": Bad(
        ["dlq", "purge", "--older", "1d"], ["--older", "did you mean --older-than?"]
    ),
    "submit-no-task": Bad(["submit"], ["TASK"]),
    "wait-no-id": Bad(["wait"], ["JOB_ID"]),
    "cancel-no-id": Bad(["cancel"], ["JOB_ID"]),
    "prune-no-bound": Bad(["prune"], ["--older-than"]),
    "prune-bad-bound": Bad(["prune", "--older-than", "-5"], ["--older-than"]),
    "dlq-no-action": Bad(["dlq"], ["ACTION"]),
    "dlq-unknown-action": Bad(["dlq", "frob"], ["frob"]),
    "dlq-retry-nothing": Bad(["dlq", "retry"], ["--all"]),
    "dlq-purge-bad-bound": Bad(["dlq", "purge", "--older-than", "old"], ["--older-than"]),
    "list-bad-state": Bad(["list", "--state", "done"], ["--state", "done"]),
    "list-zero-limit": Bad(["list", "--limit", "0"], ["--limit"]),
    # past SQLite's integers (2**63 - 1): an OverflowError traceback once
    "list-huge-limit": Bad(["list", "--limit", str(2**63)], ["--limit", "too large"]),
    "list-vast-limit": Bad(["list", "--limit", "9" * 20], ["--limit", "too large"]),
    "dlq-list-huge-limit": Bad(["dlq", "list", "--limit", str(2**63)], ["--limit", "too large"]),
    "dlq-list-zero-limit": Bad(["dlq", "list", "--limit", "0"], ["--limit", "positive"]),
    "dlq-list-negative-limit": Bad(["dlq", "list", "--limit", "-1"], ["--limit", "positive"]),
    "wait-bad-timeout": Bad(["wait", "1", "--timeout", "1y"], ["--timeout"]),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    workdir: Path, db: Path, case: Bad
) -> None:
    for name, text in case.files.items():
        (workdir / name).write_text(text)
    # 1. no database yet: none is created
    res = cli(workdir, db, *case.argv, input=case.stdin)
    assert_one_line_error(res, *case.expect)
    assert db_files(db) == [], "a database was created"
    # 2. an existing database: the job count is unchanged
    made = cli(workdir, db, "--config", os.devnull, "submit", "tasks:ok")
    assert made.code == 0, made.err
    res = cli(workdir, db, *case.argv, input=case.stdin)
    assert_one_line_error(res, *case.expect)
    assert job_count(db) == 1


def test_file_bad_line_writes_none_of_the_earlier_lines(workdir: Path, db: Path) -> None:
    """Lines 1-2 are valid jobs; line 3 is bad; nothing is submitted."""
    cli(workdir, db, "submit", "tasks:ok")
    (workdir / "jobs.jsonl").write_text(GOOD_LINES + "not json\n" + GOOD_LINES)
    res = cli(workdir, db, "submit", "--file", "jobs.jsonl")
    assert_one_line_error(res, "jobs.jsonl:3")
    assert [j["id"] for j in records(workdir, db)] == [1]


def test_json_type_names_in_messages(workdir: Path, db: Path) -> None:
    res = cli(workdir, db, "submit", "tasks:ok", "--kwargs", "[1]")
    assert_one_line_error(res, "--kwargs: expected a JSON object")
    res = cli(workdir, db, "submit", "tasks:ok", "--args", "{}")
    assert_one_line_error(res, "--args: expected a JSON array")


def test_no_arguments_prints_usage_and_exits_2(workdir: Path, db: Path) -> None:
    res = cli(workdir, db)
    assert res.code == 2
    assert "usage: jobrunner" in res.err and "submit" in res.err
    assert "Traceback" not in res.err
    assert db_files(db) == []


def test_no_parser_takes_abbreviated_options() -> None:
    """allow_abbrev is off on the parser and every subparser, at every depth."""
    from jobrunner.cli.main import build_parser

    def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)

    parsers = list(walk(build_parser(None)))
    assert len(parsers) > 20
    assert [p.prog for p in parsers if p.allow_abbrev] == []
