"""The rules every stored value keeps: bounded nesting, valid Unicode."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobrunner.jsonutil import MAX_DEPTH, depth_error, dumps, storable, storable_json


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        (nested(MAX_DEPTH), False),
        (nested(MAX_DEPTH + 1), True),
        ('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), True),
        (json.dumps(["[" * 500, {"k": "{{{{" * 100}]), False),  # brackets inside strings
        (json.dumps(['\\"[[[' * 200]), False),  # escaped quotes do not end the string
        ("[" + ",".join(["[]"] * 500) + "]", False),  # many, but side by side
    ],
)
def test_depth_is_the_nesting_of_arrays_and_objects(text: str, deep: bool) -> None:
    assert (depth_error(text) is not None) is deep


@given(
    st.recursive(
        st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_depth_agrees_with_a_walk_of_the_value(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    text = dumps(value)
    assert (depth_error(text) is None) == (depth(value) <= MAX_DEPTH)


def test_lone_surrogates_are_escaped_as_the_bytes_they_stood_for() -> None:
    name = b"report-\xff.csv".decode("utf-8", "surrogateescape")  # os.fsdecode's way
    assert storable(name) == "report-\\xff.csv"
    assert storable("half \ud800 pair") == "half \\ud800 pair"
    assert storable("ü and € stay") == "ü and € stay"
    text = storable_json(dumps({name: [name, "\ud800"]}))
    text.encode()  # valid UTF-8 now
    assert json.loads(text) == {"report-\\xff.csv": ["report-\\xff.csv", "\\ud800"]}
