"""Fuzzing the CLI's inputs: JSON args and kwargs, `submit --file`, job ids, and argv
bytes that are not UTF-8. The property, for every input: success, or exit 2 with one line
on stderr and no traceback — and a refused command writes nothing (the database is not
created, or holds exactly what it held).

Most runs call jobrunner.cli.main.main in-process (a subprocess costs ~100 ms); the
argv-bytes cases need a real process, since only a real argv carries undecodable bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.fuzz_cli import (
    assert_clean_error,
    assert_ok_or_clean_error,
    db_content,
    db_files,
    run_in_process,
    run_subprocess,
)

DEEP = "[" * 100_000 + "]" * 100_000
BIG = 10 * 1024 * 1024


@pytest.fixture
def here(workdir: Path, db: Path, tasks: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run main() as the CLI would run in `workdir`: its config, its task module, its db."""
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("JOBRUNNER_DB", str(db))
    monkeypatch.delenv("JOBRUNNER_CONFIG", raising=False)
    monkeypatch.syspath_prepend(str(workdir))
    return workdir


@pytest.fixture
def one_job(here: Path, db: Path) -> int:
    """A database holding one queued job, so 'unchanged' has something to compare."""
    run = run_in_process(["submit", "jtasks:record", "--args", '["keep"]'])
    assert run.code == 0, run.err
    return int(run.out)


# -- JSON args and kwargs -------------------------------------------------------------------

BAD_JSON = {
    "deep-nesting-100k": ("--args", DEEP),
    "deep-nesting-in-kwargs": ("--kwargs", '{"a": ' + DEEP + "}"),
    "unclosed": ("--args", "["),
    "object-for-args": ("--args", "{}"),
    "array-for-kwargs": ("--kwargs", "[]"),
    "string": ("--args", '"x"'),
    "null": ("--args", "null"),
    "nan": ("--args", "[NaN]"),
    "infinity": ("--args", "[Infinity]"),
    "float-overflow": ("--args", "[1e999]"),
    "5000-digit-int": ("--args", "[" + "9" * 5000 + "]"),
    "lone-surrogate-escape": ("--args", '["\\ud800"]'),
    "lone-surrogate-in-key": ("--kwargs", '{"\\udfff": 1}'),
    "lone-surrogate-raw": ("--args", '["\ud800"]'),
    "raw-nul": ("--args", '["a\x00b"]'),
    "trailing-garbage": ("--args", "[] []"),
    "empty": ("--args", ""),
    "bom": ("--args", "\ufeff[]"),
    "deeper-than-stored": ("--args", "[" * 101 + "]" * 101),  # jsonutil.MAX_DEPTH
}
GOOD_JSON = {
    "nul-escape": ("--args", '["a\\u0000b"]', ["a\x00b"]),
    "10MB-string": ("--args", json.dumps(["x" * BIG]), ["x" * BIG]),
    "100-deep": ("--args", "[" * 100 + "]" * 100, None),
    "unicode": ("--kwargs", '{"k": "\u00e9\U0001f600\u202e"}', {"k": "\u00e9\U0001f600\u202e"}),
    "big-int": ("--args", "[" + "9" * 4000 + "]", [int("9" * 4000)]),
}


@pytest.mark.parametrize("flag,value", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_bad_json_is_a_one_line_error_and_writes_nothing(
    here: Path, db: Path, flag: str, value: str
) -> None:
    run = run_in_process(["submit", "jtasks:record", flag, value])
    assert_clean_error(run)
    assert db_files(db) == []


@pytest.mark.parametrize("flag,value,stored", GOOD_JSON.values(), ids=GOOD_JSON.keys())
def test_odd_but_valid_json_round_trips(
    here: Path, db: Path, flag: str, value: str, stored: object
) -> None:
    run = run_in_process(["submit", "--no-check", "jtasks:record", flag, value])
    assert run.code == 0, run.err[:500]
    job_id = run.out.strip()
    record = run_in_process(["status", job_id, "--json"])
    assert record.code == 0, record.err
    if stored is not None:
        assert json.loads(record.out)["args" if flag == "--args" else "kwargs"] == stored


json_text = st.one_of(
    st.text(max_size=40),
    st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(max_size=10),
        ),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    ).map(lambda v: json.dumps(v, ensure_ascii=False)),
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(["--args", "--kwargs"]), json_text)
def test_any_json_text_submits_or_fails_cleanly(here: Path, db: Path, flag: str, text: str) -> None:
    before = db_content(db)
    run = run_in_process(["submit", "--no-check", "jtasks:record", flag, text])
    assert_ok_or_clean_error(run)
    if run.code != 0:
        assert db_content(db) == before


OPTION_VALUES = st.one_of(
    st.sampled_from(
        [
            "-1",
            "0",
            "1e9",
            "99999999999999999999999",
            "",
            "abc",
            "\u0661\u0662",
            "1.5",
            "nan",
            "30s",
            "9" * 400 + "d",
            "2026-13-01",
            "9999-12-31T23:59:59Z",
            "0001-01-01",
            "\ud800",
            "\x00",
            "default",
            "512MB",
            "0kB",
            "20",
            "-5",
        ]
    ),
    st.text(max_size=8),
)
OPTIONS = [
    "--queue",
    "--priority",
    "--delay",
    "--at",
    "--retries",
    "--backoff",
    "--timeout",
    "--key",
    "--memory-limit",
    "--cpu-limit",
    "--nice",
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.sampled_from(OPTIONS), OPTION_VALUES), max_size=4))
def test_any_submit_options_submit_or_fail_cleanly(
    here: Path, db: Path, options: list[tuple[str, str]]
) -> None:
    before = db_content(db)
    argv = ["submit", "jtasks:record"]
    for flag, value in options:
        argv += [f"{flag}={value}"]  # `=`: a value like -5 stays a value
    run = run_in_process(argv)
    assert_ok_or_clean_error(run)
    if run.code != 0:
        assert db_content(db) == before


# -- submit --file ----------------------------------------------------------------------------

GOOD_LINE = b'{"task": "jtasks:record", "args": ["ok"]}\n'
BAD_FILES = {
    "invalid-utf8": b'{"task": "jtasks:record", "args": ["\xff\xfe"]}\n',
    "raw-nul": b'{"task": "jtasks:record"}\x00\n',
    "deep-nesting": b'{"task": "jtasks:record", "args": ' + DEEP.encode() + b"}\n",
    "lone-surrogate": b'{"task": "jtasks:record", "args": ["\\ud800"]}\n',
    "nul-in-command": b'{"command": ["sh\\u0000"]}\n',
    "not-an-object": b"[1, 2]\n",
    "unknown-key": b'{"task": "jtasks:record", "tsak": 1}\n',
    "timeout-list": b'{"task": "jtasks:record", "timeout": [1]}\n',
    "memory-limit-float": b'{"task": "jtasks:record", "memory_limit": 5000.5}\n',
    "huge-priority": b'{"task": "jtasks:record", "priority": ' + b"9" * 30 + b"}\n",
    "at-out-of-range": b'{"task": "jtasks:record", "at": "0001-01-01T00:00:00+05:00"}\n',
    "utf16": '{"task": "jtasks:record"}\n'.encode("utf-16"),
    "5000-digits": b'{"task": "jtasks:record", "args": [' + b"9" * 5000 + b"]}\n",
}


@pytest.mark.parametrize("content", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_line_after_good_ones_writes_nothing(
    here: Path, db: Path, one_job: int, content: bytes
) -> None:
    (here / "jobs.jsonl").write_bytes(GOOD_LINE * 3 + content + GOOD_LINE)
    before = db_content(db)
    run = run_in_process(["submit", "--file", "jobs.jsonl"])
    assert_clean_error(run)
    assert "jobs.jsonl:" in run.err
    assert db_content(db) == before


def test_a_10mb_line_and_a_bom_are_fine(here: Path, db: Path) -> None:
    line = json.dumps({"task": "jtasks:record", "args": ["y" * BIG]}).encode() + b"\r\n"
    (here / "jobs.jsonl").write_bytes(b"\xef\xbb\xbf" + GOOD_LINE + line)
    run = run_in_process(["submit", "--file", "jobs.jsonl"])
    assert run.code == 0, run.err[:500]
    first, second = (int(x) for x in run.out.split())
    record = json.loads(run_in_process(["status", str(second), "--json"]).out)
    assert record["args"] == ["y" * BIG]


# -- job ids ----------------------------------------------------------------------------------

BAD_IDS = [
    "-1",
    "0",
    "1e9",
    "99999999999999999999999",
    "9223372036854775808",
    "abc",
    "",
    "\u0661\u0662",
    " 1",
    "1 ",
    "+1",
    "1_0",
    "0x1",
    "1.0",
    "\ud800",
    "\x00",
    "1\n2",  # a newline must not split the one-line error
]
ID_COMMANDS = [["status"], ["cancel"], ["logs"], ["wait"], ["dlq", "retry"], ["dlq", "show"]]


def with_id(command: list[str], job_id: str) -> list[str]:
    return [*command, job_id, *(["--timeout", "0s"] if command == ["wait"] else [])]


@pytest.mark.parametrize("command", ID_COMMANDS, ids=[" ".join(c) for c in ID_COMMANDS])
def test_bad_job_ids_are_one_line_errors(
    here: Path, db: Path, one_job: int, command: list[str]
) -> None:
    before = db_content(db)
    for bad in BAD_IDS:
        run = run_in_process(with_id(command, bad))
        assert_clean_error(run)
        assert "job id" in run.err, (bad, run.err)
    # the largest id there can be is merely not found
    run = run_in_process(with_id(command, "9223372036854775807"))
    assert_clean_error(run)
    assert "no job with id" in run.err
    assert db_content(db) == before


# -- argv bytes that are not UTF-8: real processes -------------------------------------------

ARGV_BYTES = {
    "args": [b"submit", b"jtasks:record", b"--args", b'["\xff"]'],
    "kwargs": [b"submit", b"jtasks:record", b"--kwargs", b'{"k": "\xc3\x28"}'],
    "task": [b"submit", b"jtasks:rec\xfford"],
    "queue": [b"submit", b"jtasks:record", b"--queue", b"q\xfe"],
    "key": [b"submit", b"jtasks:record", b"--key", b"\xed\xa0\x80"],  # an encoded surrogate
    "command": [b"submit", b"--cmd", b"--", b"echo", b"\xff"],
    "db": [b"--db", b"\xff.db", b"submit", b"jtasks:record"],
    "config": [b"--config", b"\xff.toml", b"status"],
    "file-name": [b"submit", b"--file", b"\xff.jsonl"],
    "job-id": [b"status", b"\xd9\xa1"],
    "duration": [b"submit", b"jtasks:record", b"--timeout", b"1\xffs"],
}


@pytest.mark.parametrize("argv", ARGV_BYTES.values(), ids=ARGV_BYTES.keys())
def test_undecodable_argv_bytes_are_one_line_errors(
    workdir: Path, db: Path, tasks: Path, argv: list[bytes]
) -> None:
    run = run_subprocess(workdir, db, argv)
    assert_clean_error(run)
    assert sorted(p.name for p in workdir.iterdir()) == ["jobrunner.toml", "jtasks.py"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=1, max_size=12))
def test_random_argv_bytes_in_args(workdir: Path, db: Path, tasks: Path, raw: bytes) -> None:
    before = db_content(db)
    run = run_subprocess(
        workdir,
        db,
        [b"submit", b"jtasks:record", b"--args", b'["' + raw.replace(b"\0", b"") + b'"]'],
    )
    assert_ok_or_clean_error(run)
    if run.code != 0:
        assert db_content(db) == before


@pytest.mark.parametrize(
    "argv",
    [["status", "1", "x\ny"], ["list", "--state", "a\nb"], ["schedules", "pause", "a", "b\r\n"]],
    ids=["unrecognized", "bad-choice", "carriage-return"],
)
def test_control_characters_in_rejected_arguments_stay_on_one_line(
    here: Path, db: Path, one_job: int, argv: list[str]
) -> None:
    assert_clean_error(run_in_process(argv))


def test_submit_file_from_stdin_decodes_utf8_itself(workdir: Path, db: Path, tasks: Path) -> None:
    """stdin is decoded as UTF-8 whatever the locale: a bad byte is 'not UTF-8 text', not
    'malformed JSON' (the C locale passes it through as a surrogate); a BOM is skipped."""
    for env_locale in ("C.UTF-8", "C"):
        run = run_subprocess(
            workdir,
            db,
            [b"submit", b"--file", b"-"],
            stdin=GOOD_LINE + b'{"task": "\xff"}\n',
            locale=env_locale,
        )
        assert_clean_error(run)
        assert "not UTF-8" in run.err, run.err
        assert db_files(db) == []
    run = run_subprocess(
        workdir, db, [b"submit", b"--file", b"-"], stdin=b"\xef\xbb\xbf" + GOOD_LINE
    )
    assert run.code == 0, run.err
    assert run.out.strip().isdigit()
