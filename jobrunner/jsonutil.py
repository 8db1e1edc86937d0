"""The one JSON encoding of job data: compact, UTF-8, strict (no NaN), and fast.

json.dumps builds its C encoder afresh on every call (~2 us); bulk submits encode
every job's args, so the C encoder is built once here and called directly (~0.4 us).

Two rules keep every stored value readable by every reader (docs/architecture.md,
"Data a job brings in"):
- JSON nests at most MAX_DEPTH levels. Deeper values are refused where they come in
  (submit, results): a row nested ~1000 deep would make readers hit Python's
  recursion limit.
- Text is valid Unicode. A lone surrogate (what os.fsdecode makes of a non-UTF-8 file
  name) cannot be stored as UTF-8; text a job produces is made storable by escaping
  each one (`storable`), the way Python's backslashreplace shows the byte it stood for.
"""

from __future__ import annotations

import json
import json.encoder
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _unserializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_c_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_encoder is not None:
    # markers=None: no cycle check; a cyclic value ends in RecursionError instead
    _iterencode = _c_encoder(
        None, _unserializable, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def _encode(value: Any) -> str:
        return "".join(_iterencode(value, 0))

else:  # pragma: no cover - interpreters without the C accelerator
    _fallback = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def _encode(value: Any) -> str:
        return _fallback.encode(value)


def dumps(value: Any) -> str:
    if not value:  # the common empty args and kwargs, without the encoder
        if isinstance(value, list):
            return "[]"
        if isinstance(value, dict):
            return "{}"
    return _encode(value)


MAX_DEPTH = 100  # levels of nested arrays and objects in args, kwargs and results
_structure_chars = re.compile(r'[\[\]{}"\\]').findall


def depth_error(text: str) -> str | None:
    """Why the JSON `text` nests too deep to store, or None. Cheap for the common case:
    a text with at most MAX_DEPTH brackets cannot nest deeper, whatever they are."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth = deepest = 0
    in_string = escaped = False
    for char in _structure_chars(text):  # only the characters that can change the depth
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif char in "]}":
            depth -= 1
    if deepest <= MAX_DEPTH:
        return None
    return f"nested {deepest} levels deep; at most {MAX_DEPTH} are allowed"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def storable(text: str) -> str:
    """`text` as valid Unicode: each lone surrogate escaped (\\xff for the byte that
    os.fsdecode turned into '\\udcff', \\ud800 for others). Valid text is returned
    as it is, at the cost of one check."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escape, text)
    return text


def _escape_in_json(match: re.Match[str]) -> str:
    return "\\" + _escape(match)  # the backslash itself escaped: JSON text


def storable_json(text: str) -> str:
    """JSON `text` (from `dumps`) as valid Unicode: a lone surrogate can only be inside
    a string, where it becomes the same escape as `storable` makes, as JSON."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escape_in_json, text)
    return text
