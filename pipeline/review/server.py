"""Running the review app (`counterpoint serve`): bind the socket, make the per-start token, serve
with uvicorn, and announce the address with its token once the server answers. Imported only by
the serve command (uvicorn and starlette load here, not at start-up)."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from ..errors import ConfigError
from .app import create_app

WILDCARDS = {"0.0.0.0", "::", ""}


def check_serve(runs_dir: Path, host: str) -> tuple[str, bool]:
    """Before anything is printed or bound: the runs folder exists, and the address to listen on
    (`localhost` as 127.0.0.1) with whether it is loopback. A wildcard is refused: the Host check
    needs the one address browsers will use."""
    if not runs_dir.is_dir():
        raise ConfigError(
            f"the runs folder {runs_dir} does not exist; pass --runs-dir with the folder your runs are in"
        )
    host = "127.0.0.1" if host == "localhost" else host  # the address, not a name to resolve
    if host in WILDCARDS or host == "::0":
        raise ConfigError(
            f"--host {host or repr(host)} listens on every address; pass this machine's own address "
            "(the one browsers will use), or keep the default 127.0.0.1"
        )
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"--host {host!r} is not an IP address; give one such as 127.0.0.1") from None
    if address.is_unspecified:
        raise ConfigError(f"--host {host} listens on every address; pass this machine's own address")
    return host, address.is_loopback


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one), before the server starts, so the address
    printed is the real one."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pass --port 0 to pick a free port"
        ) from None
    return sock


def url_host(host: str) -> str:
    """The host as it goes in the printed address and in the Host header browsers send."""
    return f"[{host}]" if ":" in host else host


def serve(runs_dir: Path, *, host: str, port: int, reviewer: str | None, announce: Callable[[str], None]) -> None:
    """Serve until interrupted; `announce` gets `http://HOST:PORT/?token=TOKEN` once it answers."""
    host, _ = check_serve(runs_dir, host)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    address = f"{url_host(host)}:{bound}"
    app = create_app(runs_dir, token=token, hosts=[address], reviewer=reviewer)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", server_header=False, proxy_headers=False
    )
    server = AnnouncingServer(config, lambda: announce(f"http://{address}/?token={token}"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server, calling `started` once it listens (uvicorn has no hook for it)."""

    def __init__(self, config: uvicorn.Config, started: Callable[[], None]) -> None:
        super().__init__(config)
        self.started_hook = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self.started_hook()
