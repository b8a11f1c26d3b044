"""What every command shares: printing through the terminal filter, one-line errors, exit codes,
and the option types that check values before anything runs."""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from .. import defaults

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_BY_STATUS = {"complete": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED}


def echo(text: str, *, err: bool = False, nl: bool = True, as_json: bool = False) -> None:
    """Print through the terminal filter: model text and titles must not drive the terminal."""
    from ..terminal import clean, clean_json

    click.echo(clean_json(text) if as_json else clean(text), err=err, nl=nl)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    from ..terminal import clean

    click.echo(f"error: {clean(message, one_line=True)}", err=True)
    sys.exit(code)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """One-line errors instead of tracebacks (COUNTERPOINT_DEBUG=1 shows the traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import CounterpointError

        try:
            return command(*args, **kwargs)
        except CounterpointError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            # A run's own interrupt is reported by `run` with its directory; this one came before a
            # run had anything to save (or in another command), so there is nothing to resume.
            fail("interrupted", 130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except BrokenPipeError:  # the reader stopped early (`counterpoint runs | head`): nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail too
            sys.exit(EXIT_FAILED)
        except Exception as exc:  # a bug: say so in one line, keep the details for whoever debugs it
            if os.environ.get("COUNTERPOINT_DEBUG"):
                raise
            fail(f"internal error ({type(exc).__name__}: {exc}); rerun with COUNTERPOINT_DEBUG=1 and report it")

    return wrapper


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf: nan passes every range check (each comparison
    with it is false), and an infinite timeout is no timeout."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class BaseURL(click.ParamType):
    """An http(s) endpoint URL, checked before anything is sent or created; the value is kept as
    given (credentials in it are used, never recorded)."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..endpoints import check_base_url
        from ..errors import ConfigError

        try:
            check_base_url(value)
        except ConfigError as exc:
            self.fail(str(exc).removeprefix("--base-url "), param, ctx)
        return value


class ISODate(click.ParamType):
    """A calendar date as YYYY-MM-DD (--date), checked as the library checks it."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..article import iso_date
        from ..errors import InputError

        try:
            return iso_date(value)
        except InputError as exc:
            self.fail(str(exc), param, ctx)


runs_dir_option = click.option(
    "--runs-dir",
    envvar="COUNTERPOINT_RUNS_DIR",
    show_envvar=True,
    default=defaults.RUNS_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where run directories are written.",
)


def defaulted(name: str) -> bool:
    """Whether the current command's option `name` was left at its default; a value from
    counterpoint.toml is a default too (on --resume the run's recorded value wins over it)."""
    from click.core import ParameterSource

    source = click.get_current_context().get_parameter_source(name)
    return source in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def apply_config(ctx: click.Context) -> None:
    """counterpoint.toml's values become the invoked command's defaults (Click's `default_map`:
    its options and their environment variables still win), each checked as its option checks
    a value; a bad one is a one-line error naming the file and the key."""
    from .. import config
    from ..errors import ConfigError

    try:
        loaded = config.load()
    except ConfigError as exc:
        fail(str(exc))
    ctx.meta["counterpoint.config"] = loaded
    name = ctx.invoked_subcommand
    command = ctx.command.commands.get(name) if name and isinstance(ctx.command, click.Group) else None
    if name is None or command is None or not loaded:
        return
    taken = {}
    for param in command.params:
        if param.name in loaded:
            value = loaded[param.name]
            try:
                param.type_cast_value(ctx, value.value)
            except click.BadParameter as exc:
                fail(f"{value.path}: {param.name} = {value.value!r} cannot be used: {exc.message}")
            taken[param.name] = value.value
    ctx.default_map = {name: taken}


def model_option(help: str = "Model name.") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--model`, the same in every command that names one (COUNTERPOINT_MODEL, defaults.MODEL)."""
    return click.option(
        "--model", envvar="COUNTERPOINT_MODEL", show_envvar=True, default=defaults.MODEL, show_default=True, help=help
    )


response_format_option = click.option(
    "--response-format",
    envvar="COUNTERPOINT_RESPONSE_FORMAT",
    show_envvar=True,
    default=defaults.RESPONSE_FORMAT,
    show_default=True,
    type=click.Choice(defaults.RESPONSE_FORMATS),
    help="How to ask for JSON.",
)


# The model-call options every command that calls a model shares (run, batch through run, eval).
reasks_option = click.option(
    "--reasks",
    default=defaults.REASKS,
    show_default=True,
    type=click.IntRange(*defaults.INT_BOUNDS["reasks"]),
    help="Re-asks when an output fails validation.",
)
timeout_option = click.option(
    "--timeout",
    default=defaults.TIMEOUT,
    show_default=True,
    type=FiniteFloatRange(*defaults.FLOAT_BOUNDS["timeout"]),
    help="Seconds to wait for one model call.",
)
max_retries_option = click.option(
    "--max-retries",
    default=defaults.MAX_RETRIES,
    show_default=True,
    type=click.IntRange(*defaults.INT_BOUNDS["max_retries"]),
    help="Retries of a call after a timeout, dropped connection, 429 or 5xx.",
)
