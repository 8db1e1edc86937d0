"""`submit --callback` and `jobrunner webhooks` refusals: exit 2, one line, nothing
written."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.cli.support import db_files
from tests.helpers import cli

SECRET = "whsec_" + base64.b64encode(b"cli-test-key-0123456789abcdefgh").decode()


def test_a_callback_needs_webhooks_configured_and_a_good_url(workdir: Path, db: Path) -> None:
    bare = cli(workdir, db, "submit", "--cmd", "--callback", "https://me.example/", "--", "true")
    assert bare.code == 2
    assert "callback: the config" in bare.err and "[webhooks]" in bare.err
    assert len(bare.err.strip().splitlines()) == 1
    (workdir / "jobrunner.toml").write_text(f'[webhooks]\nsecret = "{SECRET}"\n')
    bad = cli(workdir, db, "submit", "--cmd", "--callback", "me.example/hook", "--", "true")
    assert bad.code == 2 and "--callback: expected an http:// or https:// URL" in bad.err
    assert db_files(db) == []  # nothing written
    private = cli(workdir, db, "submit", "--cmd", "--callback", "http://10.0.0.7/", "--", "true")
    assert private.code == 2 and "10.0.0.7 is private" in private.err
    line = '{"command": ["true"], "callback": "gopher://x"}\n'
    batch = cli(workdir, db, "submit", "--file", "-", input=line)
    assert batch.code == 2 and "callback" in batch.err
    good = cli(
        workdir, db, "submit", "--cmd", "--callback", "https://me.example/h?k=s", "--", "true"
    )
    assert good.code == 0, good.err
    record = cli(workdir, db, "status", good.out.strip(), "--json").json()
    assert record["callback"] == "https://me.example/h?..."


def test_webhooks_commands_refuse_bad_input(workdir: Path, db: Path) -> None:
    no_table = cli(workdir, db, "webhooks", "list")
    assert no_table.code == 2 and "no [webhooks] table" in no_table.err
    (workdir / "jobrunner.toml").write_text(f'[webhooks]\nsecret = "{SECRET}"\n')
    both = cli(workdir, db, "webhooks", "deliveries", "--failed", "--pending")
    assert both.code == 2 and "not both" in both.err
    assert cli(workdir, db, "webhooks", "show", "x1").code == 2
    assert cli(workdir, db, "submit", "--cmd", "--", "true").code == 0  # a database
    missing = cli(workdir, db, "webhooks", "show", "4")
    assert missing.code == 2 and "no webhook delivery 4" in missing.err
    assert cli(workdir, db, "webhooks", "test", "ftp://x").code == 2
    assert cli(workdir, db, "webhooks", "deliveries").out.strip() == "No deliveries."
