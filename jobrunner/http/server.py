"""Starting the server: the refusals that come first, binding, running uvicorn."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

from jobrunner.config import Config
from jobrunner.errors import UsageError
from jobrunner.http.settings import split_listen

TOKEN_ENV = "JOBRUNNER_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def token_of(config: Config) -> str | None:
    """JOBRUNNER_TOKEN, else [http] token; None for none."""
    env = os.environ.get(TOKEN_ENV)
    if env:
        return env
    return config.http.token if config.http is not None else None


def bind(listen: str, token: str | None) -> socket.socket:
    """The listening socket for HOST:PORT (port 0: any free one), after the refusals:
    a non-loopback address needs a token."""
    try:
        host, port = split_listen(listen, "--listen")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if token is None and not is_loopback(host):
        raise UsageError(
            f"--listen {listen}: refusing to listen beyond this machine without a token "
            f"(set [http] token or {TOKEN_ENV}; or listen on 127.0.0.1)"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"--listen {listen}: cannot listen there: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: Config, db_path: str, listen: str) -> int:
    """Run the HTTP server until SIGTERM or SIGINT. The first line on stdout says where
    it listens (with the port the kernel chose for port 0)."""
    import uvicorn

    from jobrunner.http.app import make_app
    from jobrunner.http.state import ServerState
    from jobrunner.store import open_store

    token = token_of(config)
    sock = bind(listen, token)
    open_store(db_path, synchronous=config.synchronous).close()  # made if missing
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    sys.stdout.write(f"jobrunner serve: listening on http://{shown}:{port}\n")
    sys.stdout.flush()
    state = ServerState(config, db_path, token)
    settings = uvicorn.Config(
        make_app(state),
        log_level="warning",
        access_log=False,  # request lines are not logged: nothing a caller sends leaks
        lifespan="on",
        timeout_graceful_shutdown=5,
        # X-Forwarded-For is not trusted (nothing here depends on the client's address),
        # and the layer that reads it costs every request
        proxy_headers=False,
        server_header=False,
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            state.hub.stop()  # live streams end first: left open, they would hold it
            await super().shutdown(sockets)

    Server(settings).run(sockets=[sock])
    return 0
