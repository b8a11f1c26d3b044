"""`counterpoint serve`: the local review app over the runs directory (pipeline/review/)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import echo, friendly_errors, runs_dir_option


@click.command()
@runs_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it on loopback).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--reviewer",
    envvar="COUNTERPOINT_REVIEWER",
    show_envvar=True,
    help="Your name, recorded with every decision in review.json.",
)
@friendly_errors
def serve(runs_dir: Path, host: str, port: int, reviewer: str | None) -> None:
    """Review briefs in the browser: accept, reject, edit and annotate rebuttals (saved to each run's
    review.json). The last line printed is the address to open, with this start's token."""
    from ..review.server import WILDCARDS
    from ..review.server import serve as run_server

    if host in WILDCARDS or not host.startswith(("127.", "::1", "localhost")):
        echo(f"warning: listening on {host}: anyone who can reach it and has the token can read briefs", err=True)

    def announce(url: str) -> None:
        echo(url)
        sys.stdout.flush()

    try:
        run_server(runs_dir, host=host, port=port, reviewer=(reviewer or "").strip() or None, announce=announce)
    except KeyboardInterrupt:  # Ctrl-C is how the server is stopped: a normal end, exit 0
        return
