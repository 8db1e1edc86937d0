"""The [http] table of the config: where the server listens and what it lets in."""

from __future__ import annotations

from jobrunner.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_LISTEN = "127.0.0.1:8765"
DEFAULT_MAX_BODY = 1 << 20  # bytes of a request body (a batch of 10,000 small jobs fits)
HTTP_KEYS = frozenset({"listen", "token", "allow_tasks", "allow_commands", "max_body", "dashboard"})
DASHBOARD_MODES = ("on", "read-only", "off")


class HttpConfig(Record):
    listen: str = DEFAULT_LISTEN
    token: str | None = None  # or JOBRUNNER_TOKEN; never logged, never shown
    # globs of module names whose functions may run over HTTP; None: the modules in
    # `imports`. [tasks.NAME] entries may always run.
    allow_tasks: list[str] | None = None
    allow_commands: bool = False
    max_body: int = DEFAULT_MAX_BODY
    dashboard: str = "on"  # "read-only": pages without actions; "off": no pages


def split_listen(text: str, where: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets) -> (host, port); ValueError saying why."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{where}: expected HOST:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{where}: the port must be a number from 0 to 65535, got {port!r}")
    return host, int(port)


def parse_http(r: Any, data: dict[str, Any]) -> HttpConfig:
    """The [http] table, checked with the config reader `r` (errors carry file:line)."""
    r.unknown_keys("http", data, HTTP_KEYS)
    cfg = HttpConfig(
        listen=r.string("http", data, "listen", DEFAULT_LISTEN),
        token=r.string("http", data, "token", None),
        allow_tasks=r.string_list("http", data, "allow_tasks"),
        max_body=r.integer("http", data, "max_body", DEFAULT_MAX_BODY, 1024),
        dashboard=r.string("http", data, "dashboard", "on"),
    )
    if cfg.dashboard not in DASHBOARD_MODES:
        raise r.fail(
            "http",
            "dashboard",
            f"expected one of {', '.join(DASHBOARD_MODES)}, got {cfg.dashboard!r}",
        )
    try:
        split_listen(cfg.listen, "value")
    except ValueError as exc:
        raise r.fail("http", "listen", str(exc).removeprefix("value: ")) from None
    if cfg.token == "":
        raise r.fail("http", "token", "must not be empty (leave it out for no token)")
    allow = data.get("allow_commands", False)
    if not isinstance(allow, bool):
        raise r.fail("http", "allow_commands", f"expected true or false, got {allow!r}")
    cfg.allow_commands = allow
    return cfg
