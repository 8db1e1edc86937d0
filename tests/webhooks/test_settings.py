"""The [webhooks] table: defaults, each refusal with file:line and no secret in any
message, and the secret read from an environment variable when named so."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from jobrunner.config import load_config
from jobrunner.errors import ConfigError
from jobrunner.webhooks.settings import FINAL_EVENTS, url_problem

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def load(tmp_path: Path, text: str):  # noqa: ANN201
    path = tmp_path / "jobrunner.toml"
    path.write_text(text)
    return load_config(str(path))


def refused(tmp_path: Path, text: str, line: int, *words: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'jobrunner.toml'}:{line}: "), message
    for word in words:
        assert word in message, message
    assert SECRET.removeprefix("whsec_") not in message
    return message


def test_defaults_and_an_endpoint(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        f'[webhooks]\nsecret = "{SECRET}"\n\n[[webhooks.endpoints]]\nurl = "https://h.example/in"\n'
        '\n[[webhooks.endpoints]]\nurl = "https://r.example/"\nevents = ["job.dead"]\n'
        'queues = ["reports"]\n',
    )
    hooks = cfg.webhooks
    assert hooks is not None
    assert hooks.key() == b"k" * 32
    assert hooks.retry_schedule == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert (hooks.timeout, hooks.allow_private) == (15, False)
    first, second = hooks.endpoints
    assert first.events == FINAL_EVENTS and first.queues is None
    assert first.wants("job.cancelled", "any") and not first.wants("job.started", "any")
    assert second.wants("job.dead", "reports") and not second.wants("job.dead", "default")
    assert not second.wants("job.succeeded", "reports")


def test_the_secret_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load(tmp_path, '[webhooks]\nsecret_env = "HOOK_SECRET"\n')
    assert cfg.webhooks is not None
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="HOOK_SECRET is not set"):
        cfg.webhooks.key()
    monkeypatch.setenv("HOOK_SECRET", "whsec_!!")
    with pytest.raises(ConfigError, match="not base64") as info:
        cfg.webhooks.key()
    assert "!!" not in str(info.value)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    assert cfg.webhooks.key() == b"k" * 32


def test_each_mistake_is_refused_with_its_line(tmp_path: Path) -> None:
    head = f'[webhooks]\nsecret = "{SECRET}"\n'
    refused(tmp_path, "[webhooks]\nallow_private = true\n", 1, "secret or secret_env")
    refused(tmp_path, f'{head}secret_env = "X"\n', 1, "exactly one")
    refused(tmp_path, '[webhooks]\nsecret = "plain"\n', 2, "whsec_")
    refused(tmp_path, '[webhooks]\nsecret = "whsec_c2hvcnQ="\n', 2, "at least 16")
    refused(tmp_path, f'{head}timeout = "0s"\n', 3, "timeout")
    refused(tmp_path, f'{head}retry_schedule = ["5s", "soon"]\n', 3, "retry_schedule")
    refused(tmp_path, f'{head}allow_private = "yes"\n', 3, "true or false")
    refused(tmp_path, f"{head}colour = 1\n", 3, "unknown key")
    endpoint = f"{head}\n[[webhooks.endpoints]]\n"
    refused(tmp_path, f'{endpoint}url = "ftp://h.example/"\n', 5, "http:// or https://")
    refused(tmp_path, f'{endpoint}url = "https://u:p@h.example/"\n', 5, "user or password")
    refused(tmp_path, f"{endpoint}events = []\n", 4, "url")
    refused(
        tmp_path,
        f'{endpoint}url = "https://h.example/"\nevents = ["job.done"]\n',
        6,
        "unknown event 'job.done'",
    )
    refused(
        tmp_path,
        f'{endpoint}url = "https://h.example/"\n[[webhooks.endpoints]]\nurl = "https://h.example/"\n',
        7,
        "named twice",
    )


def test_url_problems() -> None:
    assert url_problem("https://hooks.example:8443/in?x=1") is None
    assert url_problem("http://[::1]:9000/") is None
    for bad, words in [
        ("hooks.example/in", "http:// or https://"),
        ("https:///path", "no host"),
        ("https://h.example:99999/", "not a URL"),
        ("https://h.example/a b", "whitespace"),
        ("https://" + "a" * 2050, "longer than"),
        (3, "expected"),
    ]:
        problem = url_problem(bad)
        assert problem is not None and words in problem, (bad, problem)
