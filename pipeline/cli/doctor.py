"""`counterpoint doctor`: which model backends are usable here, and the settings in force."""

from __future__ import annotations

import json
import os

import click

from .common import BaseURL, echo, fail, friendly_errors, model_option


@click.command()
@click.option("--base-url", envvar="OPENAI_BASE_URL", show_envvar=True, type=BaseURL(), help="An endpoint to probe.")
@model_option("The model a run would send; warned about when the endpoint does not list it.")
@click.option("--json", "as_json", is_flag=True, help="Print the settings and checks as JSON.")
@friendly_errors
def doctor(base_url: str | None, model: str, as_json: bool) -> None:
    """Show the settings in force and where each comes from (option, environment, counterpoint.toml,
    default), and which model backends are usable here: API key, endpoint, local runtime, demo model."""
    from dataclasses import asdict

    from click.core import ParameterSource

    from .. import config
    from .. import doctor as checks_mod

    context = click.get_current_context()
    given = {
        name: value
        for name, value in (("base_url", base_url), ("model", model))
        if context.get_parameter_source(name) == ParameterSource.COMMANDLINE
    }
    settings = checks_mod.shown_settings(config.sources(context.meta.get("counterpoint.config", {}), given, os.environ))
    in_force = next(setting for setting in settings if setting.name == "model")
    report = checks_mod.diagnose(base_url, os.environ.get("OPENAI_API_KEY"), in_force)
    url_source = next(setting.source for setting in settings if setting.name == "base_url")
    usable = checks_mod.usable_backends(report.checks, url_source)
    if as_json:
        payload = {
            "settings": [asdict(s) for s in settings],
            "checks": [asdict(c) for c in report.checks],
            "warnings": report.warnings,
            "usable": usable,
        }
        echo(json.dumps(payload, indent=2), as_json=True)
    else:
        for setting in settings:
            echo(f"set  {setting.name} = {setting.value} ({setting.source})")
        for check in report.checks:
            echo(f"{'ok ' if check.ok else 'no '} {check.name}: {check.detail}")
        for warning in report.warnings:
            echo(f"warn {warning}")
        echo(f"usable: {', '.join(usable)}" if usable else "usable: none")
    if not usable:
        fail(
            "no usable backend: set OPENAI_API_KEY, pass --base-url for a running server, or install the "
            "'local' extra for --local"
        )
