"""docs/http-api.md is the served OpenAPI document rendered: regenerate it with
`python -m jobrunner.http.apidoc > docs/http-api.md` when an endpoint changes."""

from __future__ import annotations

from pathlib import Path

from jobrunner.http.apidoc import render
from jobrunner.http.openapi import document

PAGE = Path(__file__).resolve().parents[2] / "docs" / "http-api.md"


def test_the_committed_reference_is_the_served_document_rendered() -> None:
    assert PAGE.read_text() == render(document()), (
        "docs/http-api.md is stale: python -m jobrunner.http.apidoc > docs/http-api.md"
    )


def test_every_path_and_method_is_in_the_reference() -> None:
    text = PAGE.read_text()
    for path, item in document()["paths"].items():
        for method in ("get", "post", "delete"):
            if method in item:
                assert f"## `{method.upper()} {path}`" in text
