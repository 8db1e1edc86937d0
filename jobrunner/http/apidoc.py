"""docs/http-api.md, rendered from the OpenAPI document the server serves at
/openapi.json (http/openapi.py): one reference, never written by hand twice.

    python -m jobrunner.http.apidoc > docs/http-api.md

tests/http/test_apidoc.py fails when the committed page and the document differ."""

from __future__ import annotations

from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")


def _schema(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    bounds = [f"{word} {schema[key]}" for key, word in (("minimum", ">="), ("maximum", "<="))
              if key in schema]  # fmt: skip
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(document: dict[str, Any]) -> str:
    info = document["info"]
    lines = [
        f"# HTTP API reference ({info['title']} {info['version']})",
        "",
        "Generated from `GET /openapi.json` by `python -m jobrunner.http.apidoc`; [http.md](http.md)",
        "explains how to use it. With `[http] token` set, every request needs",
        "`Authorization: Bearer TOKEN`. Errors are RFC 9457 problem details.",
        "",
        _cell(info.get("description", "")),
        "",
    ]
    for path, item in document["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            lines += [f"## `{method.upper()} {path}`", "", _cell(op.get("summary", "")), ""]
            if op.get("description"):
                lines += [_cell(op["description"]), ""]
            params = op.get("parameters", []) + item.get("parameters", [])
            if params:
                lines += ["| parameter | in | type | |", "|---|---|---|---|"]
                for p in params:
                    name = p["name"] + (" (required)" if p.get("required") else "")
                    lines.append(
                        f"| `{name}` | {p['in']} | {_schema(p.get('schema', {}))} "
                        f"| {_cell(p.get('description', ''))} |"
                    )
                lines.append("")
            body = op.get("requestBody")
            if body:
                kinds = ", ".join(f"`{k}`" for k in body.get("content", {}))
                lines += [f"Body: {kinds}. {_cell(body.get('description', ''))}".rstrip(), ""]
            lines += ["| status | |", "|---|---|"]
            for status, answer in op.get("responses", {}).items():
                lines.append(f"| {status} | {_cell(answer.get('description', ''))} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    from jobrunner.http.openapi import document

    sys.stdout.write(render(document()))
