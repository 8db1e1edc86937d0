"""Checking a parsed TOML file's values against its text, so every error names the file
and line it came from (`jobrunner.toml:12: queues.api.rate: ...`): what config.py and
config_schedules.py read their tables through."""

from __future__ import annotations

import re

from jobrunner.durations import parse_duration
from jobrunner.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Set
    from typing import Any

# a task's or a schedule's name: what a table key and a log line can hold plainly
TASK_NAME = re.compile(r"^[A-Za-z_][\w-]*$")


class Reader:
    """Checks values against the text they came from, to name file:line in errors."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, table: str, key: str | None = None) -> int:
        current = ""
        header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")
        # "schedules[2]" is the third [[schedules]] entry
        indexed = re.match(r"^(.*)\[(\d+)\]$", table)
        seen: dict[str, int] = {}
        for number, raw in enumerate(self.lines, 1):
            m = header.match(raw)
            if m:
                current = re.sub(r"\s*\.\s*", ".", m.group(1).replace('"', ""))
                if raw.lstrip().startswith("[["):
                    seen[current] = seen.get(current, -1) + 1
                    if indexed and current == indexed.group(1):
                        current = f"{current}[{seen[current]}]"
                if key is None and current == table:
                    return number
                continue
            if (
                key is not None
                and current == table
                and re.match(rf'^\s*"?{re.escape(key)}"?\s*[=.]', raw)  # `k =` or dotted `k.x =`
            ):
                return number
        # Not written as a [table] header or a key line: an inline table or dotted keys.
        # Fall back to where the enclosing table or key is written.
        if key is not None:
            return self.line_of(table, None) if table else 1
        if table:
            parent, _, last = table.rpartition(".")
            # an inline array entry `schedules = [{...}]`: the line of `schedules =`
            return self.line_of(parent, re.sub(r"\[\d+\]$", "", last))
        return 1

    def fail(self, table: str, key: str | None, message: str) -> ConfigError:
        where = f"{table}.{key}" if table and key else (key or table or "config")
        return ConfigError(f"{self.path}:{self.line_of(table, key)}: {where}: {message}")

    def unknown_keys(self, table: str, data: dict[str, Any], allowed: Set[str]) -> None:
        for key in data:
            if key not in allowed:
                import difflib

                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(sorted(allowed))
                raise self.fail(table, key, f"unknown key{hint}; allowed: {known}")

    def integer(self, table: str, data: dict[str, Any], key: str, default: int, low: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(table, key, f"expected a whole number, got {value!r}")
        if value < low:
            raise self.fail(table, key, f"must be at least {low}, got {value}")
        return value

    def duration(self, table: str, data: dict[str, Any], key: str, default: Any) -> Any:
        if key not in data:
            return default
        try:
            return parse_duration(data[key], where="value")
        except Exception as exc:  # noqa: BLE001 - re-raised with file:line
            raise self.fail(table, key, str(exc).removeprefix("value: ")) from None

    def string_list(self, table: str, data: dict[str, Any], key: str) -> list[str] | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(table, key, f"expected a list of non-empty strings, got {value!r}")
        for item in value:
            self._no_nul(table, key, item)
        return list(value)

    def string(self, table: str, data: dict[str, Any], key: str, default: Any) -> Any:
        value = data.get(key, default)
        if value is not default and not isinstance(value, str):
            raise self.fail(table, key, f"expected a string, got {value!r}")
        if isinstance(value, str):
            self._no_nul(table, key, value)
        return value

    def _no_nul(self, table: str, key: str, value: str) -> None:
        # Paths, argv and module names end at a NUL byte in the OS: refuse it here, with
        # file:line, rather than as a ValueError when the file is opened or the job runs.
        if "\0" in value:
            raise self.fail(table, key, f"{value!r} holds a NUL byte")
